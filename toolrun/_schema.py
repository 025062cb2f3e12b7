"""JSON Schema for tool parameters: checked once, validated without ever leaving the schema.

A tool's ``parameters`` comes from whoever sends the request. jsonschema's
default resolver dereferences ``{"$ref": "http://…"}`` and ``file:///…`` by
fetching or opening them, which would let any client of ``toolrun serve`` make
the server send requests or read files. Here every ``$ref`` must point inside
the schema itself (``#…``), and validators get a registry that retrieves
nothing, so no reference can reach the network or the disk.

Validators are cached by a digest of the schema's canonical JSON text: the same
tools come back on every round of a tool loop, and checking a schema against the
meta-schema costs more than the rest of a request. The caches hold digests, not
texts, and are bounded by count and by the bytes of the schemas they keep alive,
so a stream of big unique schemas (each answered 400 or not) leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import jsonschema
import regex
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource

from ._errors import InvalidInputError, ToolSchemaError
from ._json import check_json, path_text

#: A tool schema is text for the model's prompt and rules for the grammar: far below a request's size.
MAX_SCHEMA_NODES = 100_000

_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _retrieve_nothing(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class; its stub lacks the field


#: Resolves references inside the schema being validated and nothing else.
NO_FETCH_REGISTRY: Registry[Any] = Registry(retrieve=_retrieve_nothing)  # type: ignore[call-arg]


#: Seconds one ``pattern`` may take against one string. Patterns come from whoever sent the tool,
#: strings from the model: a backtracking pattern such as ``(a+)+$`` must not hang a worker.
PATTERN_TIMEOUT = 0.5


#: How deeply a ``pattern``'s groups may nest. Python's ``re`` (the meta-schema's ``format: regex``
#: check) and the ``regex`` module both parse a group by recursing: ~330 levels exhaust the interpreter's
#: recursion limit. Real patterns nest a handful of levels.
MAX_PATTERN_NESTING = 100


def pattern_nesting(pattern: str) -> int:
    """How deeply the groups of a regular expression nest, read the way Python's parser reads them
    (escapes and ``[...]`` classes skipped), without parsing it: linear, no recursion."""
    depth = deepest = 0
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a "]" first in a class is a literal
                i += 1
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` matches somewhere in ``text``; None when it cannot tell in time (or at all)."""
    if pattern_nesting(pattern) > MAX_PATTERN_NESTING:
        return None
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT) is not None
    except (TimeoutError, regex.error, RecursionError):  # RecursionError: nested sets under (?V1)
        return None


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string"):
        found = _search(pattern, instance)
        if found is None:
            yield ValidationError(f"{pattern!r} could not be checked against {instance[:80]!r} in time")
        elif not found:
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield ValidationError(f"{pattern!r} could not be checked against {key[:80]!r} in time")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_SAFE_CLASSES: dict[type[Validator], type[Validator]] = {}


def validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    """The validator class for a schema's ``$schema`` (Draft 2020-12 when it names none), its
    ``pattern`` keywords run by ``regex`` with a time limit."""
    base: type[Validator] = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    safe = _SAFE_CLASSES.get(base)
    if safe is None:
        extend: Any = jsonschema.validators.extend
        safe = _SAFE_CLASSES[base] = extend(base, {"pattern": _pattern, "patternProperties": _pattern_properties})
    return safe


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


#: The validator cache keeps at most this many bytes of schemas (as canonical JSON) alive.
VALIDATOR_CACHE_BYTES = 4 * 1024 * 1024
#: How many schema digests :func:`check_tool_schema` remembers as checked (32 bytes each).
CHECKED_SCHEMAS = 2048


class _ValidatorCache:
    """Least-recently-used validators by (digest of the canonical schema text, formats checked), bounded
    by count and by the total size of the schemas they hold; a schema over the budget is never cached."""

    def __init__(self, size: int = 512, max_bytes: int = VALIDATOR_CACHE_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self.held_bytes = 0
        self._items: OrderedDict[tuple[bytes, bool], tuple[Validator, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, schema: Mapping[str, Any], *, check_formats: bool) -> Validator:
        text = _canonical(schema)
        key = (_digest(text), check_formats)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found[0]
        cls = validator_class(schema)
        checker = cls.FORMAT_CHECKER if check_formats else None
        made: Validator = cls(schema, registry=NO_FETCH_REGISTRY, format_checker=checker)
        if len(text) <= self._max_bytes:
            self._items[key] = (made, len(text))
            self.held_bytes += len(text)
            while len(self._items) > self._size or self.held_bytes > self._max_bytes:
                _, (_, size) = self._items.popitem(last=False)
                self.held_bytes -= size
        return made


_VALIDATORS = _ValidatorCache()
_CHECKED: OrderedDict[bytes, None] = OrderedDict()  # digests of schemas that passed check_tool_schema


def validator(schema: Mapping[str, Any], *, check_formats: bool = False) -> Validator:
    """A validator for a schema that :func:`check_tool_schema` accepted (cached, never fetches)."""
    return _VALIDATORS.get(schema, check_formats=check_formats)


def check_tool_schema(parameters: Any, where: str, tool_name: str) -> None:
    """Raise :class:`ToolSchemaError` unless ``parameters`` is a safe JSON Schema for an object.

    ``where`` names the ``parameters`` field (``tools[0].parameters``) for the error.
    """
    if not isinstance(parameters, Mapping):
        raise ToolSchemaError(
            f"tool {tool_name!r}: parameters must be a JSON Schema object, not {type(parameters).__name__}", where=where
        )
    try:
        check_json(parameters, where, max_nodes=MAX_SCHEMA_NODES)
    except InvalidInputError as exc:
        raise ToolSchemaError(f"tool {tool_name!r}: parameters {exc.message}", where=exc.where) from None
    digest = _digest(_canonical(parameters))
    if digest in _CHECKED:
        _CHECKED.move_to_end(digest)
        return
    _check_references(parameters, where, tool_name)
    _check_pattern_nesting(parameters, where, tool_name)
    cls = validator_class(parameters)
    try:
        cls.check_schema(dict(parameters))
    except jsonschema.SchemaError as exc:
        raise ToolSchemaError(
            f"tool {tool_name!r}: parameters is not valid JSON Schema: {exc.message}",
            where=path_text(where, list(exc.path)),
        ) from None
    except RecursionError:  # a backstop: deep patterns are refused above, deep schemas by check_json
        raise ToolSchemaError(f"tool {tool_name!r}: parameters is nested too deeply to check", where=where) from None
    kind = parameters.get("type", "object")
    if kind != "object":
        raise ToolSchemaError(
            f"tool {tool_name!r}: parameters must describe an object (type 'object'), not {kind!r}",
            where=f"{where}.type",
        )
    _CHECKED[digest] = None
    if len(_CHECKED) > CHECKED_SCHEMAS:
        _CHECKED.popitem(last=False)


def _check_pattern_nesting(schema: Mapping[str, Any], where: str, tool_name: str) -> None:
    """Refuse a ``pattern`` (or ``patternProperties`` key) nested deeper than :data:`MAX_PATTERN_NESTING`,
    before the meta-schema's ``format: regex`` check recurses on it."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            found: list[tuple[str, tuple[Any, ...]]] = []
            if isinstance(node.get("pattern"), str):
                found.append((node["pattern"], (*path, "pattern")))
            if isinstance(node.get("patternProperties"), Mapping):
                found.extend((key, (*path, "patternProperties", key)) for key in node["patternProperties"])
            for pattern, at in found:
                if pattern_nesting(pattern) > MAX_PATTERN_NESTING:
                    raise ToolSchemaError(
                        f"tool {tool_name!r}: a pattern nests groups {pattern_nesting(pattern)} deep; "
                        f"at most {MAX_PATTERN_NESTING} are allowed",
                        where=path_text(where, at),
                    )
            stack.extend((child, (*path, key)) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))


def _check_references(schema: Mapping[str, Any], where: str, tool_name: str) -> None:
    """Every reference must stay inside the schema (``#``, ``#/json/pointer``, ``#anchor``) and resolve there."""
    refs: list[tuple[str, str, tuple[Any, ...]]] = []
    anchors: set[str] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            for key, child in node.items():
                if key in _REF_KEYWORDS and isinstance(child, str):
                    refs.append((key, child, path))
                elif key in ("$anchor", "$dynamicAnchor") and isinstance(child, str):
                    anchors.add(child)
                elif key == "$id" and isinstance(child, str) and path:
                    # A nested $id changes the base that '#…' resolves against; keep one document.
                    raise ToolSchemaError(
                        f"tool {tool_name!r}: a nested $id ({child!r}) is not supported; "
                        "use $defs and '#/…' references",
                        where=path_text(where, (*path, key)),
                    )
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
    for key, ref, path in refs:
        at = path_text(where, (*path, key))
        if not ref.startswith("#"):
            raise ToolSchemaError(
                f"tool {tool_name!r}: {key} {ref!r} points outside the schema; only local references "
                "('#/$defs/…') are allowed, and toolrun never fetches or opens one",
                where=at,
            )
        fragment = unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            if fragment not in anchors:
                raise ToolSchemaError(f"tool {tool_name!r}: {key} {ref!r} names no $anchor in the schema", where=at)
            continue
        if _pointer_target(schema, fragment) is None:
            raise ToolSchemaError(f"tool {tool_name!r}: {key} {ref!r} points at nothing in the schema", where=at)
    loop = _same_place_loop(schema)
    if loop is not None:
        raise ToolSchemaError(
            f"tool {tool_name!r}: {loop!r} leads back to itself without describing anything "
            "(a schema that only refers to itself cannot be checked)",
            where=where,
        )


def _pointer_target(schema: Any, fragment: str) -> Any:
    """The node a JSON Pointer fragment (``/a/b``) names, or None."""
    target: Any = schema
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            return None
    return target


# Keywords whose subschemas apply to the same value as the schema holding them.
_SAME_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")


def _same_place_loop(schema: Mapping[str, Any]) -> str | None:
    """A ``$ref`` that reaches itself again without stepping into a property or an item: validating any
    value would recurse forever (``{"$ref": "#"}``). Returns that reference, or None."""
    state: dict[int, int] = {}  # id(node) -> 1 while on the path, 2 when done

    def visit(node: Any, via: str) -> str | None:
        if not isinstance(node, Mapping):
            return None
        mark = state.get(id(node))
        if mark == 1:
            return via
        if mark == 2:
            return None
        state[id(node)] = 1
        following: list[tuple[Any, str]] = []
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if isinstance(ref, str) and ref.startswith("#") and unquote(ref[1:])[:1] in ("", "/"):
                following.append((_pointer_target(schema, unquote(ref[1:])), ref))
        for keyword in _SAME_PLACE:
            value = node.get(keyword)
            for sub in value if isinstance(value, list) else [value]:
                following.append((sub, via))
        for sub, name in following:
            found = visit(sub, name)
            if found is not None:
                return found
        state[id(node)] = 2
        return None

    # Every subschema starts a walk (a loop may hide under a property); "done" marks carry over.
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            found = visit(node, "#")
            if found is not None:
                return found
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None
