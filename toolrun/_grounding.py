"""Whether a call's argument values come from the conversation, and whether its tool fits the request.

A model asked for "the weather in Boston and San Francisco" writes two calls
whose cities are both in the request. One that goes on writing calls after
the request is covered makes up values (``"city": "Chicago"``) or repeats an
earlier call. Checking each string and number in the arguments against the
text of the conversation tells the two apart, cheaply and without a model call.

A small model holding a tool that does not fit the question fills it anyway
("the capital of France?" → ``triangle_area(base=10, height=5)``). Such a call
neither shares a word with the request nor takes its values from it
(:func:`fits_request`); a call that fits does one or the other.
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


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _found(leaf: Any, text: str) -> bool:
    needle = _as_text(leaf)
    if not needle or f" {needle} " in text or (len(needle) > 3 and needle in text):
        return True
    # A number written against its unit ("a radius of 5cm", "100µF") is said too.
    return (
        bool(_NUMBER.fullmatch(needle)) and re.search(rf"(?<![\w.]){re.escape(needle)}(?=[^\W\d_])", text) is not None
    )


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


#: Words too common to tell what a request or a tool is about.
_STOP_WORDS = frozenset(
    """what which where when whom whose there here this that these those with from into about
    than then them they their your yours have having does doing done would could should shall
    will might must been being were some many much more most very also just only each every
    such like want need please tell give show find make help know used uses using given value
    values number numbers name names type kind thing things data information info return returns
    calculate compute""".split()  # noqa: SIM905 - a list of 80 words reads better as text
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _content_words(text: str) -> set[str]:
    """Words of four letters or more, bar common ones, cut to five letters ("weathers" ~ "weather")."""
    words = re.findall(r"[a-z]+", _CAMEL.sub(" ", text).casefold())
    return {w[:5] for w in words if len(w) >= 4 and w not in _STOP_WORDS}


def _name_text(name: str) -> str:
    return name.replace("_", " ").replace(".", " ").replace("-", " ")


def _user_text(messages: Iterable[Message]) -> str:
    return " ".join(m["content"] for m in messages if m["role"] == "user")


def tool_words(name: str, description: str, parameters: Mapping[str, Any]) -> set[str]:
    """What a tool is about: the words of its name, its description and its parameters' names and descriptions."""
    parts = [_name_text(name), description]
    stack: list[Any] = [parameters]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            properties = node.get("properties")
            if isinstance(properties, Mapping):
                parts.extend(str(key).replace("_", " ") for key in properties)
            if isinstance(node.get("description"), str):
                parts.append(node["description"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return _content_words(" ".join(parts))


def fits_request(
    arguments: Mapping[str, Any],
    tool: set[str],
    messages: Iterable[Message],
    *,
    allowed: Iterable[Any] = (),
) -> bool:
    """Whether a call can be what the user asked for: the user's words and the tool's (``tool``, from
    :func:`tool_words`) share one, or every value in the call was said (``"123 + 456"`` to ``sum(a, b)``).

    A model may well know what a request means for a tool whose words it shares ("the weather in
    London" to ``getWeather(latitude, longitude)``); a call that shares nothing with the request and
    makes up its values answers a question nobody asked.
    """
    messages = list(messages)
    if _content_words(_user_text(messages)) & tool:
        return True
    text = conversation_text(messages)
    return bool(said_values(arguments, text)) and is_grounded(arguments, text, allowed=allowed)


def names_tool(name: str, messages: Iterable[Message]) -> bool:
    """Whether the user named what a tool is for: every content word of its name is among the user's words
    ("the circumference of a circle" and ``calculate_circumference``; ``get_local_time`` needs "local" and
    "time"). A name of common or short words only (``get_info``) names nothing."""
    named = _content_words(_name_text(name))
    return bool(named) and named <= _content_words(_user_text(messages))
