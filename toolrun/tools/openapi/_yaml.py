"""A fast YAML loader for OpenAPI documents, on libyaml's event stream.

PyYAML's ``CSafeLoader`` parses in C but builds a Python node object (with
marks, path-resolver calls and a tag lookup) for every scalar before
constructing values: about 4 s for GitHub's 10 MB description in YAML. Building
the values straight from libyaml's events, with PyYAML's own implicit-type
rules, gives the same result (``yaml.safe_load`` with dates kept as strings,
since a JSON Schema ``default`` must stay JSON) several times faster.
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

try:
    from yaml._yaml import CParser as _Parser  # libyaml
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None

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


def load(data: str | bytes) -> Any:
    """The single document in ``data``, like ``yaml.safe_load`` (timestamps stay strings)."""
    if _Parser is None:  # pragma: no cover
        from ._document import _YamlLoader

        return yaml.load(data, Loader=_YamlLoader)
    parser = _Parser(data)
    get = parser.get_event
    anchors: dict[str, Any] = {}
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
            container: Any = {}
            if event.anchor is not None:
                anchors[event.anchor] = container
            stack.append(container)
            keys.append(_NO_KEY)
            merges.append(None)
            continue
        elif cls is SequenceStartEvent:
            if event.tag not in _SEQ_TAGS:
                raise YamlError(f"unsupported YAML tag {event.tag!r}", event.start_mark)
            container = []
            if event.anchor is not None:
                anchors[event.anchor] = container
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
        elif cls is SequenceEndEvent:
            value = stack.pop()
        elif cls is AliasEvent:
            if event.anchor not in anchors:
                raise YamlError(f"found undefined alias {event.anchor!r}", event.start_mark)
            value = anchors[event.anchor]
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
