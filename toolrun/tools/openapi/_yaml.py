"""A fast, bounded YAML loader for OpenAPI documents, on libyaml's event stream.

PyYAML's ``CSafeLoader`` parses in C but builds a Python node object (with
marks, path-resolver calls and a tag lookup) for every scalar before
constructing values: about 4 s for GitHub's 10 MB description in YAML. Building
the values straight from libyaml's events, with PyYAML's own implicit-type
rules, gives the same result (``yaml.safe_load`` with dates kept as strings,
since a JSON Schema ``default`` must stay JSON) several times faster.

Reading events one at a time also lets the loader stop a hostile document
early, in time linear in what it read: nesting deeper than ``max_depth``
(libyaml's scanner is quadratic in flow nesting: 100,000 ``[`` took 40 s),
aliases that would expand to more than ``max_alias_nodes`` values once every
alias is replaced by what it names ("billion laughs": 9 levels of 9 aliases
are a few hundred bytes and 387 million values), and an alias used inside
the node it names, which JSON cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

_CParser: Any
try:
    from yaml._yaml import CParser as _CParser  # libyaml
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

#: Nesting deeper than this is refused while loading. Real descriptions stay under 30
#: (GitHub's: 21); examples and vendor extensions may nest more than schemas do.
MAX_DEPTH = 256
#: Values the document would hold with every alias replaced by what it names (what a
#: JSON copy of it would hold): far above any real use of anchors, far below a blow-up.
MAX_ALIAS_NODES = 1_000_000

_T = "tag:yaml.org,2002:"
_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_FIRST = frozenset(k for k in _RESOLVERS if k)
_MAP_TAGS = (None, "!", _T + "map")
_SEQ_TAGS = (None, "!", _T + "seq")


class YamlError(ValueError):
    def __init__(self, message: str, mark: Any = None) -> None:
        self.line = mark.line + 1 if mark is not None else None
        self.column = mark.column + 1 if mark is not None else None
        at = f" at line {self.line}, column {self.column}" if mark is not None else ""
        super().__init__(message + at)


def _event_parser(data: str | bytes) -> Any:
    """Something with ``get_event()``: libyaml's parser, or PyYAML's pure-Python one."""
    if _CParser is not None:
        return _CParser(data)
    return yaml.SafeLoader(data)  # pragma: no cover - its Parser half gives the same events


class _Anchors:
    """What anchors name, and the bookkeeping that keeps their aliases bounded (see the module's docstring)."""

    def __init__(self, max_depth: int, max_alias_nodes: int) -> None:
        self.max_depth = max_depth
        self.max_alias_nodes = max_alias_nodes
        self.named: dict[str, Any] = {}
        self.unfinished: set[int] = set()  # ids of anchored containers still being read
        self._measured: dict[int, tuple[int, int, Any]] = {}  # id -> (values, depth, the container: keeps the id)
        self._expanded = 0  # values that aliases stand for so far

    def open(self, event: Any, container: Any, tags: tuple[str | None, ...], stack: list[Any]) -> None:
        """Start reading ``container`` (a mapping's or sequence's start ``event``) on top of ``stack``."""
        if event.tag not in tags:
            raise YamlError(f"unsupported YAML tag {event.tag!r}", event.start_mark)
        if len(stack) >= self.max_depth:
            raise YamlError(f"the document is nested more than {self.max_depth} levels deep", event.start_mark)
        if event.anchor is not None:
            self.named[event.anchor] = container
            self.unfinished.add(id(container))
        stack.append(container)

    def expand(self, event: Any, depth: int) -> Any:
        """The value alias ``event`` names, met ``depth`` levels deep, once it is known to fit the limits."""
        if event.anchor not in self.named:
            raise YamlError(f"found undefined alias {event.anchor!r}", event.start_mark)
        value = self.named[event.anchor]
        if value.__class__ is dict or value.__class__ is list:
            if id(value) in self.unfinished:
                raise YamlError(
                    f"alias *{event.anchor} is used inside the node it names: "
                    "a structure that contains itself, which JSON cannot hold",
                    event.start_mark,
                )
            size, levels = _measure(value, self._measured)
            if depth + levels > self.max_depth:
                raise YamlError(
                    f"alias *{event.anchor} nests the document more than {self.max_depth} levels deep",
                    event.start_mark,
                )
        else:
            size = 1
        self._expanded += size
        if self._expanded > self.max_alias_nodes:
            raise YamlError(
                f"the document's aliases stand for more than {self.max_alias_nodes:,} values "
                "(each alias counts everything it names: a 'billion laughs' document)",
                event.start_mark,
            )
        return value


def load(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """The single document in ``data``, like ``yaml.safe_load`` (timestamps stay strings).

    Raises :class:`YamlError` (with the line and column) for what JSON cannot hold and for
    documents past the limits (see the module's docstring).
    """
    get = _event_parser(data).get_event
    anchors = _Anchors(max_depth, max_alias_nodes)
    named, unfinished = anchors.named, anchors.unfinished
    stack: list[Any] = []  # open containers
    keys: list[Any] = []  # per open mapping: the pending key (_NO_KEY when none)
    merges: list[Any] = []  # per open mapping: mappings merged in with "<<", or None
    root: Any = _NO_VALUE
    documents = 0
    # One loop over the events, scalars first: this is the hot path of every YAML document.
    while True:
        event = get()
        cls = event.__class__
        if cls is ScalarEvent:
            value = _scalar(event)
            if event.anchor is not None:
                named[event.anchor] = value
        elif cls is MappingStartEvent:
            anchors.open(event, {}, _MAP_TAGS, stack)
            keys.append(_NO_KEY)
            merges.append(None)
            continue
        elif cls is SequenceStartEvent:
            anchors.open(event, [], _SEQ_TAGS, stack)
            continue
        elif cls is MappingEndEvent:
            value = stack.pop()
            keys.pop()
            merged = merges.pop()
            if merged:
                _merge_into(value, merged)
            if unfinished:
                unfinished.discard(id(value))
        elif cls is SequenceEndEvent:
            value = stack.pop()
            if unfinished:
                unfinished.discard(id(value))
        elif cls is AliasEvent:
            value = anchors.expand(event, len(stack))
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise YamlError("expected a single document in the stream, but found another", event.start_mark)
            continue
        elif cls is StreamEndEvent:
            return None if root is _NO_VALUE else root
        else:  # StreamStart, DocumentEnd
            continue

        # Where the value goes: the root, a sequence, a mapping's pending key, or under that key.
        if not stack:
            root = value
            continue
        top = stack[-1]
        if top.__class__ is list:
            top.append(value)
            continue
        key = keys[-1]
        if key is _NO_KEY:
            if value.__class__ is dict or value.__class__ is list:
                raise YamlError("found an unhashable key (a mapping or list)", event.start_mark)
            keys[-1] = value  # _MERGE for "<<"
            continue
        keys[-1] = _NO_KEY
        if key is _MERGE:
            merges[-1] = _merge_sources(merges[-1], value, event)
            continue
        top[key] = value


def _merge_sources(merged: list[dict[Any, Any]] | None, value: Any, event: Any) -> list[dict[Any, Any]]:
    """``merged`` and the mapping or mappings of a ``<<`` key's ``value``."""
    sources = value if isinstance(value, list) else [value]
    if not all(isinstance(s, dict) for s in sources):
        raise YamlError("'<<' expects a mapping or a list of mappings", event.start_mark)
    return (merged or []) + sources


def _merge_into(mapping: dict[Any, Any], merged: list[dict[Any, Any]]) -> None:
    """Put the mappings merged in with ``<<`` under ``mapping``'s own keys, in place.

    ``<<`` keys never win over the mapping's own; the first merged mapping wins over later ones.
    """
    base: dict[Any, Any] = {}
    for source in reversed(merged):
        base.update(source)
    for k in list(base):
        if k in mapping:
            del base[k]
    base.update(mapping)
    mapping.clear()
    mapping.update(base)


def _measure(root: Any, measured: dict[int, tuple[int, int, Any]]) -> tuple[int, int]:
    """``(values, depth)`` of a finished container with aliases expanded, without expanding them:
    each container is visited once (``measured`` remembers it), so this is linear in the document."""
    hit = measured.get(id(root))
    if hit is None:
        todo: list[tuple[Any, bool]] = [(root, False)]
        while todo:
            node, children_done = todo.pop()
            if id(node) in measured:
                continue
            children = node.values() if node.__class__ is dict else node
            if not children_done:
                todo.append((node, True))
                todo.extend(
                    (c, False)
                    for c in children
                    if (c.__class__ is dict or c.__class__ is list) and id(c) not in measured
                )
                continue
            size, depth = 1, 0
            for child in children:
                if child.__class__ is dict or child.__class__ is list:
                    child_size, child_depth, _ = measured[id(child)]
                    size += child_size
                    depth = max(depth, child_depth)
                else:
                    size += 1
            measured[id(node)] = (size, depth + 1, node)
        hit = measured[id(root)]
    return hit[0], hit[1]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NO_KEY = _Marker("NO_KEY")
_NO_VALUE = _Marker("NO_VALUE")
_MERGE = _Marker("MERGE")


def _scalar(event: Any) -> Any:
    value: str = event.value
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0] or tag == "!":
            return value  # quoted, or the non-specific tag: a string
        if value and value[0] not in _FIRST:
            return value
        for resolved, regexp in _RESOLVERS.get(value[:1], ()):
            if regexp.match(value):
                return _construct(resolved, value, event)
        return value
    return _construct(tag, value, event)


def _construct(tag: str, value: str, event: Any) -> Any:
    if tag == _T + "str" or tag == _T + "timestamp":
        return value
    if tag == _T + "null":
        return None
    if tag == _T + "bool":
        return value.lower() in ("yes", "true", "on")
    if tag == _T + "int":
        return _int(value, event)
    if tag == _T + "float":
        return _float(value, event)
    if tag == _T + "merge":
        return _MERGE
    if tag == _T + "value" or tag == _T + "yaml":
        return value
    raise YamlError(f"unsupported YAML tag {tag!r}", event.start_mark)


def _int(text: str, event: Any) -> int:
    sign, value = _signed(text.replace("_", ""))
    try:
        if value == "0":
            return 0
        if value.startswith("0b"):
            return sign * int(value[2:], 2)
        if value.startswith("0x"):
            return sign * int(value[2:], 16)
        if value[0] == "0":
            return sign * int(value, 8)
        return sign * _base_60(value, int)
    except ValueError:
        raise YamlError(f"invalid integer {text!r}", event.start_mark) from None


def _float(text: str, event: Any) -> float:
    sign, value = _signed(text.replace("_", "").lower())
    if value == ".inf":
        return sign * math.inf
    if value == ".nan":
        return math.nan
    try:
        return sign * _base_60(value, float)
    except ValueError:
        raise YamlError(f"invalid number {text!r}", event.start_mark) from None


def _signed(value: str) -> tuple[int, str]:
    """``(sign, the rest)`` of a YAML number, which may start with ``+`` or ``-``."""
    if value[:1] in "+-":
        return (-1 if value[0] == "-" else 1), value[1:]
    return 1, value


_Number = TypeVar("_Number", int, float)


def _base_60(value: str, parse: Callable[[str], _Number]) -> _Number:
    """``value`` read by ``parse``, or as YAML 1.1's sexagesimal form when it has colons (``1:30`` is 90)."""
    if ":" not in value:
        return parse(value)
    total = parse("0")
    for part in value.split(":"):
        total = total * 60 + parse(part)
    return total
