"""Trim functions: pick the tools worth offering before the (token-hungry) tool-calling request.

Both take ``(tools, ai, model, messages)`` and return a sub-list of ``tools``,
the ``trim_function`` contract of ``run_with_tools`` (and of ai-utils).

- :func:`auto_trim_tools` asks the model, as ai-utils' ``autoTrimTools`` does:
  one extra model call.
- :func:`bm25_trim_tools` ranks the tools by BM25 over their names and
  descriptions against the user's request: no model call, well under a millisecond.

The BM25 here is a few lines of pure Python rather than ``bm25s``: the corpus is
rebuilt on every request (it is the request's tools, tens to a few hundred short
texts), where an index library's numpy/scipy set-up costs more than the scoring,
and tool names need identifier splitting (``getGithubUser``, ``math.triangle_area``)
that a general tokenizer does not do.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .._types import ToolSpec
from .._wire import decode_arguments, function_body, openai_tool, openai_tool_choice
from ..tools import tool_name_and_description
from ._client import call_model

logger = logging.getLogger("toolrun.embedded")

#: ai-utils' autoTrimTools leaves lists of 4 tools or fewer alone; so do we.
AUTO_TRIM_MIN_TOOLS = 5
CHOOSE_TOOL_NAME = "chooseTool"
_DESCRIPTION_CHARS = 200


async def auto_trim_tools(
    tools: Sequence[Any], ai: Any, model: str, messages: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Let the model pick the relevant tools with one ``chooseTool`` call (only for 5 tools or more).

    Unlike ai-utils 1.0.1 it shows the model each tool's description as well as
    its name, restricts the answer to the real names (an ``enum``), forces the
    ``chooseTool`` call (``tool_choice``), and keeps every tool when the answer
    names none of them — ai-utils would then offer the model no tools at all.
    """
    tools = list(tools)
    if len(tools) < AUTO_TRIM_MIN_TOOLS:
        logger.debug("auto_trim_tools: %d tools, fewer than %d: nothing to trim", len(tools), AUTO_TRIM_MIN_TOOLS)
        return tools
    described = [tool_name_and_description(t) for t in tools]
    names = [str(name) for name, _ in described]
    listing = "\n".join(f"- {name}: {_first_sentence(desc)}" for name, desc in described)
    conversation = "\n".join(
        f"{m.get('role')}: {m.get('content')}"
        for m in messages
        if m.get("role") in ("system", "user", "assistant") and m.get("content")
    )
    prompt = (
        f'Choose the tools needed to complete the task in the conversation below, and call "{CHOOSE_TOOL_NAME}" '
        f"with their names.\n\nTools:\n{listing}\n\nConversation:\n{conversation}"
    )
    choose_tool = ToolSpec(
        CHOOSE_TOOL_NAME,
        "Choose the best tools for the task",
        {
            "type": "object",
            "properties": {"tools": {"type": "array", "items": {"type": "string", "enum": names}}},
            "required": ["tools"],
        },
    )
    response = await call_model(
        ai,
        model,
        {
            "messages": [{"role": "user", "content": prompt}],
            "stream": False,
            "tools": [openai_tool(choose_tool)],
            "tool_choice": openai_tool_choice(CHOOSE_TOOL_NAME),
        },
    )
    chosen = _chosen_names(response)
    kept = [t for t, name in zip(tools, names, strict=True) if name.lower() in chosen]
    logger.debug("auto_trim_tools: model chose %s; keeping %d of %d", sorted(chosen), len(kept), len(tools))
    return kept or tools


def _chosen_names(response: Any) -> set[str]:
    calls = response.get("tool_calls") if isinstance(response, Mapping) else None
    for call in calls or []:
        if not isinstance(call, Mapping):
            continue
        # A call the model got wrong (arguments not a JSON object) picks nothing; the next may.
        arguments, _ = decode_arguments(function_body(call).get("arguments"))
        picked = arguments.get("tools") if arguments is not None else None
        if isinstance(picked, str):  # small models sometimes answer "a, b"
            picked = re.split(r"[,\s]+", picked)
        if isinstance(picked, list):
            return {str(p).strip().lower() for p in picked if str(p).strip()}
    return set()


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    text = text[: end + 1] if 0 < end < _DESCRIPTION_CHARS else text
    return text if len(text) <= _DESCRIPTION_CHARS else text[:_DESCRIPTION_CHARS] + "..."


# -------------------------------------------------------------------- BM25

BM25_K1 = 1.2
BM25_B = 0.75
#: A tool's name counts this many times: it is the densest description there is.
NAME_WEIGHT = 2

# A paragraph of words reads better than a column of them.
_STOPWORDS = frozenset(
    (  # noqa: SIM905
        "a an and are as at be by can could do does for from get given has have how i if in into is it its "
        "me my of on or please should so than that the their them then there these this those to was what "
        "when where which who will with would you your"
    ).split()
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Words of a name or sentence: identifiers split (``getGithubUser`` → get, github, user), light stemming."""
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    return [_stem(w) for w in words if w not in _STOPWORDS]


def _stem(word: str) -> str:
    # Plural and -ing/-ed endings, then a final "e": enough for "cities"/"city",
    # "triangles"/"triangle", "calculating"/"calculate". Not a real stemmer, on purpose.
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif (len(word) > 4 and word.endswith("ed")) or (len(word) > 3 and word.endswith("es") and word[-3] in "sxz"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def bm25_scores(query: str, documents: Sequence[str]) -> list[float]:
    """Okapi BM25 of each document for the query (Lucene's always-positive IDF)."""
    return _bm25([tokenize(d) for d in documents], tokenize(query))


def _bm25(docs: list[list[str]], query: list[str]) -> list[float]:
    if not docs:
        return []
    average = sum(len(d) for d in docs) / len(docs) or 1.0
    frequency = Counter(term for d in docs for term in set(d))
    idf = {t: math.log(1 + (len(docs) - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in set(query)}
    scores = []
    for doc in docs:
        counts = Counter(doc)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(doc) / average)
        scores.append(sum(idf[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t in query if t in counts))
    return scores


def bm25_trim_tools(
    tools: Sequence[Any],
    ai: Any = None,
    model: str | None = None,
    messages: Sequence[Mapping[str, Any]] = (),
    *,
    top_k: int = 5,
) -> list[Any]:
    """Keep the ``top_k`` tools whose name and description best match the user's last message.

    No model call. The kept tools stay in their original order. When no tool
    shares a single word with the request, there is no evidence to trim on,
    and every tool is kept. ``functools.partial(bm25_trim_tools, top_k=3)``
    makes a trimmer with another ``top_k``.
    """
    tools = list(tools)
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if len(tools) <= top_k:
        return tools
    query = _request_text(messages)
    documents = []
    for item in tools:
        name, description = tool_name_and_description(item)
        documents.append(tokenize(str(name)) * NAME_WEIGHT + tokenize(description))
    scores = _bm25(documents, tokenize(query))
    if not any(scores):
        logger.debug("bm25_trim_tools: no tool matches the request; keeping all %d", len(tools))
        return tools
    ranked = sorted(range(len(tools)), key=lambda i: (-scores[i], i))[:top_k]
    return [tools[i] for i in sorted(ranked)]


def _request_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """What the user asked: the last user turn (earlier turns as well when it is very short)."""
    user_turns: list[str] = [
        m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)
    ]
    if not user_turns:
        return " ".join(str(m.get("content") or "") for m in messages)
    text = user_turns[-1]
    if len(tokenize(text)) < 3 and len(user_turns) > 1:  # "and in Paris?" leans on the turn before
        text = user_turns[-2] + " " + text
    return text
