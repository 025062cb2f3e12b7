"""OpenAPI / Swagger schemas to self-contained JSON Schema (draft 2020-12).

Every ``$ref`` is inlined; a reference met again inside its own expansion
(a tree of nodes, a person's ``parent``) is cut to a short stand-in that says
so. Keywords are kept only when they are valid JSON Schema with a valid value,
so whatever a document carries (``nullable``, boolean ``exclusiveMinimum``,
``type: file``, ``discriminator``, ``x-`` extensions, stray ``required: true``)
the result passes the meta-schema. ``allOf`` is merged into one schema when
its parts do not conflict.
"""

from __future__ import annotations

from typing import Any, Mapping

from ._document import MISSING, Document

TYPES = frozenset(("string", "number", "integer", "boolean", "array", "object", "null"))
DESCRIPTION_LIMIT = 400
# A schema bigger than this many nodes stops expanding references: a prompt has no room for more.
NODE_BUDGET = 4000

_STR_KEYS = ("title", "format", "pattern", "contentMediaType", "contentEncoding")
_NUM_KEYS = ("minimum", "maximum")
_COUNT_KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
               "minContains", "maxContains")
_BOOL_KEYS = ("uniqueItems", "deprecated", "readOnly", "writeOnly")
_SCHEMA_KEYS = ("not", "propertyNames", "contains", "if", "then", "else", "unevaluatedItems",
                "unevaluatedProperties")
_LIST_KEYS = ("allOf", "anyOf", "oneOf")


def trim(text: Any, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` stripped and cut at a word boundary to at most ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any) -> int | None:
    if _is_number(value) and value >= 0 and float(value).is_integer():
        return int(value)
    return None


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] or ref


class SchemaConverter:
    """Converts the schemas of one tool; remembers references it already expanded."""

    def __init__(self, doc: Document, *, request: bool = True, budget: int = NODE_BUDGET) -> None:
        self.doc = doc
        self.request = request  # readOnly properties never go into a request
        self.budget = budget
        self.nodes = 0
        self._memo: dict[str, Any] = {}
        self._expanding: list[str] = []
        self._active: set[int] = set()
        self._cuts = 0

    def convert(self, schema: Any) -> Any:
        return self._conv(schema)

    # ---------------------------------------------------------------- core

    def _conv(self, node: Any) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, Mapping):
            return {}
        self.nodes += 1
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._conv_ref(ref, node)
        key = id(node)
        if key in self._active:  # a YAML alias that contains itself
            self._cuts += 1
            return {"description": "(recursive schema, not expanded)"}
        self._active.add(key)
        try:
            return self._conv_plain(node)
        finally:
            self._active.discard(key)

    def _conv_ref(self, ref: str, node: Mapping[str, Any]) -> Any:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if ref in self._memo:
            result = self._memo[ref]
        elif ref in self._expanding or self.nodes > self.budget:
            self._cuts += 1
            target = self.doc.follow({"$ref": ref})
            result = {"description": f"a {_ref_name(ref)} (recursive, not expanded here)"
                      if ref in self._expanding else f"a {_ref_name(ref)} (not expanded: schema too large)"}
            if isinstance(target, Mapping) and isinstance(target.get("type"), str) and target["type"] in TYPES:
                result["type"] = target["type"]
        else:
            target = self.doc.resolve(ref)
            if target is MISSING:
                where = "another document" if not ref.startswith("#") else "nothing in this document"
                result = {"description": f"(reference {ref!r} points at {where}; any value)"}
            else:
                cuts = self._cuts
                self._expanding.append(ref)
                try:
                    result = self._conv(target)
                finally:
                    self._expanding.pop()
                if self._cuts == cuts:  # did not depend on where it was met: reuse it
                    self._memo[ref] = result
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

    def _conv_plain(self, node: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = node.get

        # type, with OpenAPI's "file" and 3.0's nullable
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
                out["type"] = kinds + ["null"]

        description = trim(get("description"))
        if description:
            out["description"] = description
        for key in _STR_KEYS:
            value = get(key)
            if isinstance(value, str) and key not in out:
                out[key] = value if key != "title" else trim(value, 120)
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
        if _is_number(value) and value > 0:
            out["multipleOf"] = value
        for key in _COUNT_KEYS:
            count = _count(get(key))
            if count is not None:
                out[key] = count
        for key in _BOOL_KEYS:
            value = get(key)
            if isinstance(value, bool):
                out[key] = value
        enum = get("enum")
        if isinstance(enum, list) and enum:
            values = [v for v in enum if _jsonable(v)]
            if values:
                out["enum"] = _unique(values)
        if "const" in node and _jsonable(node["const"]):
            out["const"] = node["const"]
        if "default" in node and _jsonable(node["default"]):
            out["default"] = node["default"]

        # applicators
        props = get("properties")
        required = [r for r in get("required") or () if isinstance(r, str)] if isinstance(get("required"), list) else []
        if isinstance(props, Mapping):
            converted = {}
            for name, sub in props.items():
                schema = self._conv(sub)
                if self.request and isinstance(schema, Mapping) and schema.get("readOnly") is True:
                    continue
                converted[str(name)] = schema
            out["properties"] = converted
            dropped = {str(n) for n in props} - converted.keys()
            required = [r for r in required if r not in dropped]
        if required:
            out["required"] = list(dict.fromkeys(required))
        pattern_props = get("patternProperties")
        if isinstance(pattern_props, Mapping):
            out["patternProperties"] = {str(k): self._conv(v) for k, v in pattern_props.items()}
        extra = get("additionalProperties")
        if isinstance(extra, (bool, Mapping)):
            out["additionalProperties"] = self._conv(extra)
        items = get("items")
        if isinstance(items, (bool, Mapping)):
            out["items"] = self._conv(items)
        elif isinstance(items, list):  # tuple form of draft 4 and OpenAPI 3.0
            if items:
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

        if "type" not in out and ("properties" in out or "additionalProperties" in out) and "allOf" not in out:
            out["type"] = "object"
        if "allOf" in out:
            members = out.pop("allOf")
            merged = _merge([out, *members])
            out = merged if merged is not None else {**out, "allOf": members}
        return out


# ----------------------------------------------------------------- helpers


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_jsonable(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        # JSON Schema's uniqueness: 1 and True differ, 1 and 1.0 do not.
        if not any(v == o and isinstance(v, bool) == isinstance(o, bool) for o in out):
            out.append(v)
    return out


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
    if "integer" in left and "number" in right or "number" in left and "integer" in right:
        both.add("integer")
    if not both:
        return None
    ordered = [t for t in ("string", "number", "integer", "boolean", "array", "object", "null") if t in both]
    if "integer" in ordered and "number" in ordered:
        ordered.remove("number")
    return ordered[0] if len(ordered) == 1 else ordered
