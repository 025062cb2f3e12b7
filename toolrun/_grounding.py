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

from ._wire import Message

_WORDS = re.compile(r"[^\w.@/:+-]+")
#: A sentence's full stop or colon is not part of its last word ("page 4." says 4; "4.5" stays whole).
_TRAILING = re.compile(r"[.:]+(?=\s|$)")


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _TRAILING.sub("", _WORDS.sub(" ", text.casefold())).strip()


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


def _as_text(leaf: Any) -> str:
    if isinstance(leaf, float) and leaf.is_integer():
        leaf = int(leaf)  # 6.0 and 6 are one value, as the text says "6"
    return _normal(str(leaf))


def _found(leaf: Any, text: str) -> bool:
    needle = _as_text(leaf)
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


def said_values(arguments: Mapping[str, Any], text: str) -> frozenset[str]:
    """The values in ``arguments`` that the conversation itself says (normalised), wherever they stand."""
    return frozenset(
        _as_text(leaf)
        for _, leaf in _leaves(arguments)
        if leaf is not None and not isinstance(leaf, bool) and _as_text(leaf) and _found(leaf, text)
    )


def asks_something_new(
    arguments: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]], text: str, *, not_from: Iterable[str] = ()
) -> bool:
    """Whether a further call in a turn brings a value the conversation says that no earlier call used.

    A request for several things names each ("Boston and San Francisco", "5, 10 and 15"); a call
    that only reuses the earlier calls' values — the same city with the other unit, the same numbers
    in another tool or in another order — adds nothing the user asked for. Values equal to one of
    ``not_from`` (a tool's whole earlier results, when that tool is called again) don't count either:
    ``sum(sum(a, b), b)`` feeds an answer back, where "the code is on page 4" points somewhere new.
    """
    used: set[str] = {_normal(value) for value in not_from}
    for args in earlier:
        used |= said_values(args, text)
    return bool(said_values(arguments, text) - used)


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
