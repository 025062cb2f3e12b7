"""OpenAPI / Swagger schemas to self-contained JSON Schema (draft 2020-12).

Every ``$ref`` is inlined; a reference met again inside its own expansion
(a tree of nodes, a person's ``parent``) is cut to a short stand-in that says
so. Keywords are kept only when they are valid JSON Schema with a valid value,
so whatever a document carries (``nullable``, boolean ``exclusiveMinimum``,
``type: file``, ``discriminator``, ``x-`` extensions, stray ``required: true``)
the result passes the meta-schema. ``allOf`` is merged into one schema when
its parts do not conflict.

Sizes are counted as the model would see them: a sub-schema reached through
several references (or YAML aliases) counts each time it appears, since that
is what the JSON sent to a model holds, both in nodes and in (estimated)
characters. Once a schema passes ``budget`` nodes or TEXT_BUDGET characters,
further references and repeated sub-schemas are cut like recursive ones, so
a "``$ref`` bomb" (each level's properties pointing at the level below: 4**12
nodes from 2 KB) yields a usable, cut schema. What cannot be cut that way —
one huge inline schema, a ``default`` or ``enum`` of millions of values or
megabytes, or nesting deeper than the engines accept — raises
:class:`SchemaLimitError`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..._json import MAX_DEPTH as _JSON_MAX_DEPTH
from ..._schema import MAX_SCHEMA_NODES
from ._document import MISSING, Document

TYPES = frozenset(("string", "number", "integer", "boolean", "array", "object", "null"))
DESCRIPTION_LIMIT = 400
#: A schema bigger than this many nodes stops expanding references: a prompt has no room for more.
NODE_BUDGET = 4000
#: Past this many nodes (values inside ``enum``/``default``/``const`` included) a schema is an
#: error: every tool schema is refused beyond it later (toolrun._schema), so say it here, by name.
HARD_NODE_LIMIT = MAX_SCHEMA_NODES
#: The same two limits on the schema's JSON text (estimated: the strings it holds, and a few
#: characters of punctuation per node), since one node can be a megabyte-long string: GitHub's
#: biggest tool schema is 24 KB, and a prompt has room for far less than a megabyte.
TEXT_BUDGET = 256 * 1024
HARD_TEXT_LIMIT = 1024 * 1024
_NODE_TEXT = 16
#: Schema levels inside one tool's parameters. A level adds at most two levels of JSON
#: (``properties`` + name), and the tool's own wrapper adds four, so the result stays within the
#: nesting every tool schema is held to (toolrun._json.MAX_DEPTH, 100).
MAX_LEVELS = (_JSON_MAX_DEPTH - 4) // 2
_WRAPPER_DEPTH = 4

_STR_KEYS = ("title", "format", "contentMediaType", "contentEncoding")
_NUM_KEYS = ("minimum", "maximum")
_COUNT_KEYS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)
_BOOL_KEYS = ("uniqueItems", "deprecated", "readOnly", "writeOnly")
_SCHEMA_KEYS = ("not", "propertyNames", "contains", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties")
_LIST_KEYS = ("allOf", "anyOf", "oneOf")


class SchemaLimitError(Exception):
    """A schema that cannot be built within the limits; the caller names the operation."""

    def __init__(self, message: str, ref: str | None) -> None:
        self.ref = ref  # the reference being expanded when it happened: where in the document to look
        super().__init__(message)


def valid_text(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: JSON's ``"\\ud800"`` decodes to a lone surrogate,
    which every encoder (and toolrun's own input checks) refuses."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def trim(text: Any, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` stripped and cut at a word boundary to at most ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    shown: str = text if valid_text(text) else text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates: "?"
    shown = shown.strip()
    if len(shown) <= limit:
        return shown
    cut = shown[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _count(value: Any) -> int | None:
    if _is_number(value) and value >= 0 and float(value).is_integer():
        return int(value)
    return None


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] or ref


class SchemaConverter:
    """Converts the schemas of one tool; remembers references it already expanded."""

    def __init__(
        self,
        doc: Document,
        *,
        request: bool = True,
        budget: int = NODE_BUDGET,
        hard_limit: int = HARD_NODE_LIMIT,
        max_levels: int = MAX_LEVELS,
    ) -> None:
        self.doc = doc
        self.request = request  # readOnly properties never go into a request
        self.budget = budget
        self.hard_limit = max(hard_limit, budget)
        self.max_levels = max_levels
        self.nodes = 0  # nodes of the result so far, a shared part counted each time it appears
        self.text = 0  # characters of the result's JSON so far, estimated the same way
        # ref, or id of a mapping met again (a YAML alias): (result, nodes, text, levels, the mapping)
        self._memo: dict[Any, tuple[Any, int, int, int, Any]] = {}
        self._expanding: list[str] = []
        self._active: set[int] = set()
        self._seen: dict[int, Any] = {}  # id -> mapping converted once already (kept: the id stays its own)
        self._cuts = 0
        self._level = 0  # schema levels open now
        self._deepest = 0  # deepest level reached inside the expansion being measured

    def convert(self, schema: Any) -> Any:
        return self._conv(schema)

    # ---------------------------------------------------------------- core

    def _fail(self, message: str) -> SchemaLimitError:
        return SchemaLimitError(message, self._expanding[-1] if self._expanding else None)

    def _add(self, count: int, text: int) -> None:
        self.nodes += count
        self.text += text
        if self.nodes > self.hard_limit:
            raise self._fail(f"the parameter schema would be larger than {self.hard_limit:,} nodes")
        if self.text > HARD_TEXT_LIMIT:
            raise self._fail(f"the parameter schema's JSON would be longer than {HARD_TEXT_LIMIT:,} characters")

    def _over_budget(self, nodes: int = 0, text: int = 0) -> bool:
        return self.nodes + nodes > self.budget or self.text + text > TEXT_BUDGET

    def _conv(self, node: Any) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, Mapping):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._enter(self._conv_ref, ref, node)
        key = id(node)
        if key in self._active:  # a structure that contains itself (a Python mapping; YAML refuses them)
            self._cuts += 1
            self._add(1, _NODE_TEXT)
            return {"description": "(recursive schema, not expanded)"}
        hit = self._memo.get(key)
        if hit is not None:  # met before: a YAML alias, or a mapping shared in Python
            return self._reuse(hit, None)
        if key in self._seen and self._over_budget():  # met before, not reusable (it holds cuts)
            return self._cut(None, "not expanded: schema too large")
        self._seen[key] = node
        self._active.add(key)
        try:
            return self._remember(key, node, lambda: self._enter(self._conv_plain_counted, node))
        finally:
            self._active.discard(key)

    def _enter(self, convert: Any, *args: Any) -> Any:
        self._level += 1
        if self._level > self.max_levels:
            raise self._fail(f"the schema is nested more than {self.max_levels} levels deep")
        self._deepest = max(self._deepest, self._level)
        try:
            return convert(*args)
        finally:
            self._level -= 1

    def _conv_plain_counted(self, node: Mapping[str, Any]) -> Any:
        self._add(1, _NODE_TEXT)
        return self._conv_plain(node)

    def _remember(self, key: Any, node: Any, build: Any) -> Any:
        """``build()``, kept for reuse when it did not depend on where it was met."""
        cuts, nodes, text, outer_deepest = self._cuts, self.nodes, self.text, self._deepest
        self._deepest = self._level
        try:
            result = build()
            if self._cuts == cuts:
                self._memo[key] = (result, self.nodes - nodes, self.text - text, self._deepest - self._level, node)
        finally:
            self._deepest = max(outer_deepest, self._deepest)
        return result

    def _reuse(self, hit: tuple[Any, int, int, int, Any], ref: str | None) -> Any:
        result, nodes, text, levels, _ = hit
        if (nodes > 1 or text > 64) and self._over_budget(nodes, text):
            return self._cut(ref, "not expanded: schema too large")
        if self._level + levels > self.max_levels:
            raise self._fail(f"the schema is nested more than {self.max_levels} levels deep")
        self._deepest = max(self._deepest, self._level + levels)
        self._add(nodes, text)
        return result

    def _cut(self, ref: str | None, why: str) -> dict[str, Any]:
        self._cuts += 1
        self._add(1, _NODE_TEXT + 60)
        if ref is None:
            return {"description": f"(repeated schema, {why})"}
        result = {"description": f"a {_ref_name(ref)} ({why})"}
        target = self.doc.follow({"$ref": ref})
        if isinstance(target, Mapping) and isinstance(target.get("type"), str) and target["type"] in TYPES:
            result["type"] = target["type"]
        return result

    def _conv_ref(self, ref: str, node: Mapping[str, Any]) -> Any:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        hit = self._memo.get(ref)
        if hit is not None:
            result = self._reuse(hit, ref)
        elif ref in self._expanding:
            result = self._cut(ref, "recursive, not expanded here")
        elif self._over_budget():
            result = self._cut(ref, "not expanded: schema too large")
        else:
            target = self.doc.resolve(ref)
            if target is MISSING:
                where = "another document" if not ref.startswith("#") else "nothing in this document"
                self._add(1, _NODE_TEXT + 60 + len(ref))
                result = {"description": f"(reference {ref!r} points at {where}; any value)"}
            else:
                self._expanding.append(ref)
                try:
                    result = self._remember(ref, None, lambda: self._conv(target))
                finally:
                    self._expanding.pop()
        if not siblings:
            return result
        # 3.1 allows keywords next to $ref; 3.0 documents use them anyway (description, nullable).
        extra = self._conv_plain(siblings)
        if not extra or result is False:
            return result
        if result is True:
            return extra
        out = {**result, **{k: v for k, v in extra.items() if k in _FIRST_WINS}}
        constraints = {k: v for k, v in extra.items() if k not in _FIRST_WINS}
        if constraints:
            merged = _merge([out, constraints])
            out = merged if merged is not None else {"allOf": [out, constraints]}
        return out

    def _value(self, value: Any) -> Any:
        """``value`` if it is plain, finite JSON (counted in the schema's size), else MISSING."""
        room = self.hard_limit - self.nodes
        levels = _JSON_MAX_DEPTH - _WRAPPER_DEPTH - 2 * self._level - 1
        count = _json_nodes(value, room, levels, HARD_TEXT_LIMIT - self.text)
        if count is None:
            return MISSING
        if count == _TOO_BIG:
            raise self._fail(
                f"the parameter schema would be larger than {self.hard_limit:,} nodes or "
                f"{HARD_TEXT_LIMIT:,} characters (with its enum, default and const values)"
            )
        if count == _TOO_DEEP:
            raise self._fail(
                f"an enum, default or const value is nested too deeply ({levels} levels are left "
                "at that place in the schema)"
            )
        self._add(*count)
        return value

    def _conv_plain(self, node: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = node.get
        _put_type(get, out)
        self._put_text(get, out)
        _put_bounds(get, out)
        self._put_values(node, out)
        self._put_properties(get, out)
        self._put_subschemas(get, out)
        if "type" not in out and ("properties" in out or "additionalProperties" in out) and "allOf" not in out:
            out["type"] = "object"
        if "allOf" in out:
            members = out.pop("allOf")
            merged = _merge([out, *members])
            out = merged if merged is not None else {**out, "allOf": members}
        return out

    def _put_text(self, get: Callable[[str], Any], out: dict[str, Any]) -> None:
        """The description, titles, formats and pattern, counted as this node's own text."""
        description = trim(get("description"))
        if description:
            out["description"] = description
        for key in _STR_KEYS:
            value = get(key)
            if isinstance(value, str) and key not in out and valid_text(value):
                out[key] = value if key != "title" else trim(value, 120)
        pattern = get("pattern")
        if isinstance(pattern, str) and valid_text(pattern) and _usable_pattern(pattern):
            out["pattern"] = pattern
        self._add(0, sum(len(v) for v in out.values() if isinstance(v, str)))

    def _put_values(self, node: Mapping[str, Any], out: dict[str, Any]) -> None:
        """``enum``, ``const`` and ``default``: only plain JSON values, counted in the schema's size."""
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            values = [v for v in (self._value(v) for v in enum) if v is not MISSING]
            if values:
                out["enum"] = _unique(values)
        for key in ("const", "default"):
            if key in node:
                value = self._value(node[key])
                if value is not MISSING:
                    out[key] = value

    def _put_properties(self, get: Callable[[str], Any], out: dict[str, Any]) -> None:
        """``properties`` and ``required``, less what a request cannot send (readOnly, unwritable names)."""
        props = get("properties")
        required = [r for r in get("required") or () if isinstance(r, str)] if isinstance(get("required"), list) else []
        if isinstance(props, Mapping):
            converted = {}
            for name, sub in props.items():
                if isinstance(name, str) and not valid_text(name):
                    continue  # no JSON text can carry this name: the property cannot be sent
                self._add(0, len(str(name)) + 4)
                schema = self._conv(sub)
                if self.request and isinstance(schema, Mapping) and schema.get("readOnly") is True:
                    continue
                converted[str(name)] = schema
            out["properties"] = converted
            dropped = {str(n) for n in props} - converted.keys()
            required = [r for r in required if r not in dropped]
        if required:
            out["required"] = list(dict.fromkeys(required))
            self._add(0, sum(len(r) + 4 for r in out["required"]))

    def _put_subschemas(self, get: Callable[[str], Any], out: dict[str, Any]) -> None:
        """The other applicators: each sub-schema converted in turn (``items``' tuple form as ``prefixItems``)."""
        pattern_props = get("patternProperties")
        if isinstance(pattern_props, Mapping):
            out["patternProperties"] = {
                str(k): self._conv(v)
                for k, v in pattern_props.items()
                if not isinstance(k, str) or (valid_text(k) and _usable_pattern(k))
            }
            self._add(0, sum(len(k) + 4 for k in out["patternProperties"]))
        extra = get("additionalProperties")
        if isinstance(extra, (bool, Mapping)):
            out["additionalProperties"] = self._conv(extra)
        items = get("items")
        if isinstance(items, (bool, Mapping)):
            out["items"] = self._conv(items)
        elif isinstance(items, list) and items:  # tuple form of draft 4 and OpenAPI 3.0
            out["prefixItems"] = [self._conv(i) for i in items]
        prefix = get("prefixItems")
        if isinstance(prefix, list) and prefix and "prefixItems" not in out:
            out["prefixItems"] = [self._conv(i) for i in prefix]
        for key in _SCHEMA_KEYS:
            value = get(key)
            if isinstance(value, (bool, Mapping)):
                out[key] = self._conv(value)
        for key in _LIST_KEYS:
            value = get(key)
            if isinstance(value, list) and value:
                out[key] = [self._conv(v) for v in value]


# ----------------------------------------------------------------- helpers


def _put_type(get: Callable[[str], Any], out: dict[str, Any]) -> None:
    """``type``, with OpenAPI's ``file`` as a binary string and 3.0's ``nullable`` as a ``null`` type."""
    kind = get("type")
    if isinstance(kind, str):
        if kind in TYPES:
            out["type"] = kind
        elif kind == "file":
            out["type"] = "string"
            out["format"] = "binary"
    elif isinstance(kind, list):
        kinds = list(dict.fromkeys(k for k in kind if isinstance(k, str) and k in TYPES))
        if kinds:
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if get("nullable") is True and "type" in out:
        kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
        if "null" not in kinds:
            out["type"] = [*kinds, "null"]


def _put_bounds(get: Callable[[str], Any], out: dict[str, Any]) -> None:
    """The numeric, count and boolean keywords whose values are valid (draft 4's boolean exclusive bounds too)."""
    for key in _NUM_KEYS:
        value = get(key)
        if _is_number(value):
            out[key] = value
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = get(key)
        if _is_number(value):
            out[key] = value
        elif value is True and bound in out:  # draft 4 / OpenAPI 3.0 form
            out[key] = out.pop(bound)
    value = get("multipleOf")
    if _is_number(value) and value is not None and value > 0:
        out["multipleOf"] = value
    for key in _COUNT_KEYS:
        count = _count(get(key))
        if count is not None:
            out[key] = count
    for key in _BOOL_KEYS:
        value = get(key)
        if isinstance(value, bool):
            out[key] = value


_TOO_BIG, _TOO_DEEP = -1, -2


def _json_nodes(value: Any, room: int, levels: int, text_room: int) -> Any:
    """``(values, characters)`` of ``value`` as JSON (a shared part counted each time it appears,
    characters estimated): None when it is not plain finite JSON, _TOO_BIG when it holds more than
    ``room`` values or ``text_room`` characters, _TOO_DEEP when it nests deeper than ``levels``.
    Iterative, and it stops at the limit: a YAML "billion laughs" costs ``room`` steps."""
    count = 0
    text = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        count += 1
        text += 4
        if count > room or text > text_room:
            return _TOO_BIG
        if node is None or isinstance(node, (bool, int)):
            continue
        if isinstance(node, str):
            if not valid_text(node):
                return None
            text += len(node)
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                return None  # NaN and infinities have no JSON form
            continue
        if depth >= levels:
            return _TOO_DEEP
        if isinstance(node, list):
            todo.extend((v, depth + 1) for v in node)
        elif isinstance(node, Mapping):
            for k, v in node.items():
                if not isinstance(k, str) or not valid_text(k):
                    return None
                text += len(k)
                todo.append((v, depth + 1))
        else:
            return None
    return count, text


def _unique(values: list[Any]) -> list[Any]:
    """``values`` without repeats, in linear time for scalars."""
    out: list[Any] = []
    seen: set[Any] = set()
    for v in values:
        # JSON Schema's uniqueness: 1 and True differ, 1 and 1.0 do not.
        key: Any = (
            (isinstance(v, bool), v)
            if v is None or isinstance(v, (str, bool, int, float))
            else json.dumps(_same_numbers(v), sort_keys=True)
        )
        if key in seen:
            continue
        seen.add(key)
        out.append(v)
    return out


def _same_numbers(value: Any) -> Any:
    """``value`` with 1.0 written as 1, so that equal JSON values have equal text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_same_numbers(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _same_numbers(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=1024)
def _usable_pattern(pattern: str) -> bool:
    """Whether ``pattern`` compiles: a validator meeting one that does not would fail every call."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return False
    return True


_FIRST_WINS = ("description", "title", "default", "deprecated")


def _merge(parts: list[Any]) -> dict[str, Any] | None:
    """One schema equal to all of ``parts`` together, or None when they conflict."""
    merged: dict[str, Any] = {}
    for part in parts:
        if part is True or part == {}:
            continue
        if not isinstance(part, Mapping):
            return None
        for key, value in part.items():
            if key not in merged:
                merged[key] = dict(value) if key == "properties" else (list(value) if key == "required" else value)
            elif key == "properties":
                props = merged["properties"]
                for name, sub in value.items():
                    if name not in props or props[name] == sub:
                        props[name] = sub
                    else:
                        both = _merge([props[name], sub])
                        props[name] = both if both is not None else {"allOf": [props[name], sub]}
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*merged["required"], *value]))
            elif key == "type":
                if merged["type"] != value:
                    common = _common_type(merged["type"], value)
                    if common is None:
                        return None
                    merged["type"] = common
            elif key in _FIRST_WINS:
                continue
            elif merged[key] != value:
                return None
    return merged


def _common_type(a: Any, b: Any) -> Any:
    left = set(a) if isinstance(a, list) else {a}
    right = set(b) if isinstance(b, list) else {b}
    both = left & right
    if ("integer" in left and "number" in right) or ("number" in left and "integer" in right):
        both.add("integer")
    if not both:
        return None
    ordered = [t for t in ("string", "number", "integer", "boolean", "array", "object", "null") if t in both]
    if "integer" in ordered and "number" in ordered:
        ordered.remove("number")
    return ordered[0] if len(ordered) == 1 else ordered
