"""Deciding whether to call a tool, before sampling anything.

With ``tool_choice: "auto"`` the choice between answering and calling used to
be sampled like any other token: at the default temperature (0.6) a small
model that is 70 % sure it should call a tool answered in text three times in
ten. Here the choice is taken from the model's own probability mass, read from
the raw logits (before temperature, top-p or penalties), and compared with a
per-model threshold from the catalog:

* at the first generated token: the mass on every token that can open a call
  — the format's tag (``<tool_call>``), the drifts small models write (a
  ```` ```json ```` fence, bare ``{``, ``<name>``, ``<function``) — decides
  between "call" (the call is then written under the grammar from that very
  token) and "answer" (openers are forbidden for that token);
* after each call closes: the mass on going on (a separator, or the next call's
  opener) against ending the turn decides between "another call" and "done".

Only the call's content and the text are sampled. The decision is the same at
any temperature, and with the same prompt it is the same every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...formats import ToolCallFormat


@dataclass(frozen=True)
class DecisionTokens:
    """Token ids the decisions read, computed once per model and format."""

    #: Tokens that can begin a call as the first thing the model writes.
    openers: list[int]
    #: End-of-generation tokens (ending the turn).
    end: list[int]
    #: Tokens that begin the separator between two calls (the format's ``call_separator``).
    separators: list[int]
    #: The single tokens of "yes" and of "no" (the relevance question, ``ask_relevance``).
    yes: list[int]
    no: list[int]

    @property
    def go_on(self) -> list[int]:
        """Tokens that, right after a call, begin another: a separator or an opener."""
        return sorted(set(self.separators) | set(self.openers))


def decision_tokens(llm: Any, fmt: ToolCallFormat) -> DecisionTokens:
    """Scan the vocabulary once: a token opens a call if its text (leading spaces aside) is a
    prefix of an opener, or an opener is a prefix of it."""
    import llama_cpp as lc

    openers = tuple(fmt.inline_openers + fmt.start_openers)
    separator = fmt.call_separator
    vocab = llm._model.vocab
    opening: list[int] = []
    end: list[int] = []
    separators: list[int] = []
    for token in range(llm.n_vocab()):
        if lc.llama_vocab_is_eog(vocab, token):
            end.append(token)
            continue
        text = llm.detokenize([token], special=True).decode("utf-8", "replace")
        stripped = text.lstrip(" ")
        if stripped and any(o.startswith(stripped) or stripped.startswith(o) for o in openers):
            opening.append(token)
        if text and text.strip() == separator.strip() and (separator.startswith(text) or text.startswith(separator)):
            separators.append(token)
    return DecisionTokens(opening, end, separators, answer_tokens(llm, "yes"), answer_tokens(llm, "no"))


def probability_mass(logits: np.ndarray[Any, Any], tokens: Sequence[int]) -> float:
    """The model's probability, before any sampler, that the next token is one of ``tokens``."""
    shifted = np.exp(logits.astype(np.float64) - float(logits.max()))
    return float(shifted[list(tokens)].sum() / shifted.sum())


def share(logits: np.ndarray[Any, Any], chosen: Sequence[int], rest: Sequence[int]) -> float:
    """The model's probability on ``chosen`` as a share of its probability on ``chosen`` and ``rest``."""
    shifted = np.exp(logits.astype(np.float64) - float(logits.max()))
    ours = float(shifted[list(chosen)].sum())
    total = ours + float(shifted[list(rest)].sum())
    return ours / total if total > 0 else 0.0


def continue_share(logits: np.ndarray[Any, Any], tokens: DecisionTokens) -> float:
    """After a call: the share of "go on to another call" in (go on + end the turn).

    Going on is a separator or, where the separator is already written (Qwen's ``</tool_call>\n``),
    the next call's opener: the 1.5B puts 0.998 on ``<`` there, and a share of separators alone
    compared two masses of 0.001.
    """
    return share(logits, tokens.go_on, tokens.end)


def yes_share(logits: np.ndarray[Any, Any], tokens: DecisionTokens) -> float:
    """Asked a yes/no question: the share of "yes" in (yes + no)."""
    return share(logits, tokens.yes, tokens.no)


def answer_tokens(llm: Any, word: str) -> list[int]:
    """The single tokens that spell ``word`` (as written, capitalised, in capitals, after a space)."""
    tokens: set[int] = set()
    for form in (word, word.capitalize(), word.upper(), " " + word, " " + word.capitalize()):
        ids = llm.tokenize(form.encode(), add_bos=False, special=False)
        if len(ids) == 1:
            tokens.add(ids[0])
    return sorted(tokens)
