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
from typing import Any

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


def load(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """The single document in ``data``, like ``yaml.safe_load`` (timestamps stay strings).

    Raises :class:`YamlError` (with the line and column) for what JSON cannot hold and for
    documents past the limits (see the module's docstring).
    """
    parser = _event_parser(data)
    get = parser.get_event
    anchors: dict[str, Any] = {}
    open_anchors: set[int] = set()  # ids of anchored containers still being read
    measured: dict[int, tuple[int, int, Any]] = {}  # id -> (values, depth, the container: keeps the id taken)
    expanded = 0  # values that aliases stand for so far
    stack: list[Any] = []  # open containers
    keys: list[Any] = []  # per open mapping: the pending key (_NO_KEY when none)
    merges: list[Any] = []  # per open mapping: mappings merged in with "<<", or None
    root: Any = _NO_VALUE
    documents = 0
    while True:
        event = get()
        cls = event.__class__
        if cls is ScalarEvent:
            value = _scalar(event)
            if event.anchor is not None:
                anchors[event.anchor] = value
        elif cls is MappingStartEvent:
            if event.tag not in _MAP_TAGS:
                raise YamlError(f"unsupported YAML tag {event.tag!r}", event.start_mark)
            if len(stack) >= max_depth:
                raise YamlError(f"the document is nested more than {max_depth} levels deep", event.start_mark)
            container: Any = {}
            if event.anchor is not None:
                anchors[event.anchor] = container
                open_anchors.add(id(container))
            stack.append(container)
            keys.append(_NO_KEY)
            merges.append(None)
            continue
        elif cls is SequenceStartEvent:
            if event.tag not in _SEQ_TAGS:
                raise YamlError(f"unsupported YAML tag {event.tag!r}", event.start_mark)
            if len(stack) >= max_depth:
                raise YamlError(f"the document is nested more than {max_depth} levels deep", event.start_mark)
            container = []
            if event.anchor is not None:
                anchors[event.anchor] = container
                open_anchors.add(id(container))
            stack.append(container)
            continue
        elif cls is MappingEndEvent:
            value = stack.pop()
            keys.pop()
            merged = merges.pop()
            if merged:
                # "<<" keys never win over the mapping's own; the first merged mapping wins over later ones.
                base: dict[Any, Any] = {}
                for source in reversed(merged):
                    base.update(source)
                for k in list(base):
                    if k in value:
                        del base[k]
                base.update(value)
                value.clear()
                value.update(base)
            if open_anchors:
                open_anchors.discard(id(value))
        elif cls is SequenceEndEvent:
            value = stack.pop()
            if open_anchors:
                open_anchors.discard(id(value))
        elif cls is AliasEvent:
            if event.anchor not in anchors:
                raise YamlError(f"found undefined alias {event.anchor!r}", event.start_mark)
            value = anchors[event.anchor]
            if value.__class__ is dict or value.__class__ is list:
                if id(value) in open_anchors:
                    raise YamlError(
                        f"alias *{event.anchor} is used inside the node it names: "
                        "a structure that contains itself, which JSON cannot hold",
                        event.start_mark,
                    )
                size, depth = _measure(value, measured)
                if len(stack) + depth > max_depth:
                    raise YamlError(
                        f"alias *{event.anchor} nests the document more than {max_depth} levels deep", event.start_mark
                    )
            else:
                size = 1
            expanded += size
            if expanded > max_alias_nodes:
                raise YamlError(
                    f"the document's aliases stand for more than {max_alias_nodes:,} values "
                    "(each alias counts everything it names: a 'billion laughs' document)",
                    event.start_mark,
                )
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise YamlError("expected a single document in the stream, but found another", event.start_mark)
            continue
        elif cls is StreamEndEvent:
            return None if root is _NO_VALUE else root
        else:  # StreamStart, DocumentEnd
            continue

        if not stack:
            root = value
            continue
        top = stack[-1]
        if top.__class__ is list:
            top.append(value)
            continue
        key = keys[-1]
        if key is _NO_KEY:
            if value is _MERGE:
                keys[-1] = _MERGE
                continue
            if isinstance(value, (dict, list)):
                raise YamlError("found an unhashable key (a mapping or list)", event.start_mark)
            keys[-1] = value
            continue
        keys[-1] = _NO_KEY
        if key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(s, dict) for s in sources):
                raise YamlError("'<<' expects a mapping or a list of mappings", event.start_mark)
            merges[-1] = (merges[-1] or []) + sources
            continue
        top[key] = value


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
    value = text.replace("_", "")
    sign = 1
    if value[:1] in "+-":
        sign = -1 if value[0] == "-" else 1
        value = value[1:]
    try:
        if value == "0":
            return 0
        if value.startswith("0b"):
            return sign * int(value[2:], 2)
        if value.startswith("0x"):
            return sign * int(value[2:], 16)
        if value[0] == "0":
            return sign * int(value, 8)
        if ":" in value:
            total = 0
            for part in value.split(":"):
                total = total * 60 + int(part)
            return sign * total
        return sign * int(value)
    except ValueError:
        raise YamlError(f"invalid integer {text!r}", event.start_mark) from None


def _float(text: str, event: Any) -> float:
    value = text.replace("_", "").lower()
    sign = 1.0
    if value[:1] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == ".inf":
        return sign * math.inf
    if value == ".nan":
        return math.nan
    try:
        if ":" in value:
            total = 0.0
            for part in value.split(":"):
                total = total * 60 + float(part)
            return sign * total
        return sign * float(value)
    except ValueError:
        raise YamlError(f"invalid number {text!r}", event.start_mark) from None
