"""Whether a call's argument values come from the conversation.

A model asked for "the weather in Boston and San Francisco" writes two calls
whose cities are both in the request. One that goes on writing calls after
the request is covered makes up values (``"city": "Chicago"``) or repeats an
earlier call. Checking each string and number in the arguments against the
text of the conversation tells the two apart, cheaply and without a model call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._wire import Message

_WORDS = re.compile(r"[^\w.@/:+-]+")


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WORDS.sub(" ", text.casefold()).strip()


def conversation_text(messages: Iterable[Message]) -> str:
    """What the user, the system prompt and the tools said, normalised for :func:`is_grounded`."""
    return " " + " ".join(_normal(m["content"]) for m in messages if m["role"] != "assistant") + " "


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _found(leaf: Any, text: str) -> bool:
    if isinstance(leaf, float) and leaf.is_integer():
        leaf = int(leaf)
    needle = _normal(str(leaf))
    return not needle or f" {needle} " in text or (len(needle) > 3 and needle in text)


def is_grounded(arguments: Mapping[str, Any], text: str, *, allowed: Iterable[Any] = ()) -> bool:
    """Every string and number in ``arguments`` appears in ``text`` (from :func:`conversation_text`).

    Booleans, nulls and values in ``allowed`` (a schema's enums and defaults) need not appear.
    """
    free = set(map(repr, allowed))
    return all(
        leaf is None or isinstance(leaf, bool) or repr(leaf) in free or _found(leaf, text)
        for _, leaf in _leaves(arguments)
    )


def grounded_values(arguments: Mapping[str, Any], text: str) -> frozenset[tuple[str, str]]:
    """The (place, value) pairs of ``arguments`` that the conversation itself says.

    Two calls of one tool with the same grounded values ask the same thing: a second that differs
    only in values the model chose itself (an enum's other option, a default) is not a new request.
    """
    return frozenset(
        (path, _normal(str(leaf)))
        for path, leaf in _leaves(arguments)
        if leaf is not None and not isinstance(leaf, bool) and _normal(str(leaf)) and _found(leaf, text)
    )


def schema_constants(schema: Mapping[str, Any]) -> list[Any]:
    """Values a schema names itself (enums, consts, defaults): a call may use them unprompted."""
    found: list[Any] = []
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    found.extend(value)
                elif key in ("const", "default"):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found
