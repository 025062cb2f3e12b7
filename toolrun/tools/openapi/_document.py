"""Parsing an OpenAPI document and reading it lazily.

A big JSON description (GitHub's is 13 MB, two thirds of it ``components``
and examples) is mostly never needed: building tools reads only each
operation's name, summary and parameters. With msgspec installed, JSON is
decoded in one typed pass that keeps every other part as undecoded bytes
(``msgspec.Raw``, still checked for syntax), and a ``$ref`` target is decoded
the first time something points at it. Without msgspec, or for YAML, the
document is decoded whole and read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

import yaml

from ..._errors import OpenAPISpecError
from . import _yaml

try:  # optional accelerator: the pure-Python path below gives the same result, slower
    import msgspec
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    msgspec = None  # type: ignore[assignment]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MISSING: Any = object()

# ------------------------------------------------------------- typed decode

if msgspec is not None:
    _Raw = msgspec.Raw
    _EMPTY = msgspec.Raw()

    class _Op(msgspec.Struct, gc=False):
        operationId: Any = None  # noqa: N815 - the document's own field name
        summary: Any = None
        description: Any = None
        parameters: Any = None
        requestBody: msgspec.Raw = _EMPTY  # noqa: N815 - decoded when the tool's schema is asked for
        servers: Any = None
        security: Any = None
        consumes: Any = None

    class _PathItem(msgspec.Struct, gc=False):
        ref: Any = msgspec.field(default=None, name="$ref")
        summary: Any = None
        description: Any = None
        parameters: Any = None
        servers: Any = None
        get: _Op | None = None
        put: _Op | None = None
        post: _Op | None = None
        delete: _Op | None = None
        options: _Op | None = None
        head: _Op | None = None
        patch: _Op | None = None
        trace: _Op | None = None

    class _Top(msgspec.Struct, gc=False):
        openapi: Any = None
        swagger: Any = None
        servers: Any = None
        host: Any = None
        basePath: Any = None  # noqa: N815 - the document's own field name
        schemes: Any = None
        consumes: Any = None
        security: Any = None
        paths: dict[str, _PathItem] | None = None
        # Kept as bytes: what ``$ref``s point into.
        components: msgspec.Raw = _EMPTY
        definitions: msgspec.Raw = _EMPTY
        parameters: msgspec.Raw = _EMPTY
        responses: msgspec.Raw = _EMPTY
        securityDefinitions: msgspec.Raw = _EMPTY  # noqa: N815 - the document's own field name

    _LAZY_KEYS = ("components", "definitions", "parameters", "responses", "securityDefinitions")
    _TOP_DECODER = msgspec.json.Decoder(_Top)
    _LEVEL_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw] | str | int | float | bool | None)
else:  # pragma: no cover
    _Raw = ()  # type: ignore[misc,unreachable]  # isinstance(x, ()) is always False


def is_raw(value: Any) -> bool:
    return isinstance(value, _Raw)


# ----------------------------------------------------------------- parsing


def parse(
    content: Any, label: str, *, max_depth: int = _yaml.MAX_DEPTH, max_alias_nodes: int = _yaml.MAX_ALIAS_NODES
) -> Document:
    """Parse JSON or YAML text (or take a mapping) into a :class:`Document`.

    YAML is read within ``max_depth`` and ``max_alias_nodes`` (see :mod:`._yaml`); JSON has no
    aliases, and its parsers refuse nesting past Python's recursion limit (about 1,000 levels),
    in time linear in what they read. Parts deeper than the schemas may be are refused when a
    tool's schema is built.
    """
    if isinstance(content, Mapping):
        return Document.from_tree(dict(content), label)
    text = content
    if isinstance(text, bytes):
        if text.startswith(b"\xef\xbb\xbf"):
            text = text[3:]
        head = text[:64].lstrip()
    else:
        text = text.lstrip("\ufeff")
        head = text[:64].lstrip()
    limits = {"max_depth": max_depth, "max_alias_nodes": max_alias_nodes}
    if head[:1] in ("{", b"{"):
        if msgspec is not None:
            if isinstance(text, str) and not text.isascii():
                # msgspec reads str as UTF-8; encoding it here is faster than letting it cache a
                # UTF-8 copy inside the str (a document with one emoji is a 4-byte-per-char str).
                try:
                    text = text.encode()
                except UnicodeEncodeError:  # lone surrogates: the generic path reports them
                    return _parse_json_slow(text, label, limits)
            try:
                return Document.from_typed(_TOP_DECODER.decode(text), text, label)
            except msgspec.ValidationError:
                pass  # an odd shape somewhere: the generic path below says exactly where
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                return _parse_json_slow(text, label, limits)
        return _parse_json_slow(text, label, limits)
    return Document.from_tree(_parse_yaml(text, label, limits), label)


def _too_deep(label: str) -> OpenAPISpecError:
    return OpenAPISpecError(f"{label} is nested too deeply to read (more than about 1,000 levels)", where="spec")


def _parse_json_slow(text: Any, label: str, limits: dict[str, int]) -> Document:
    try:
        tree = json.loads(text)
    except RecursionError:
        raise _too_deep(label) from None
    except json.JSONDecodeError as exc:
        try:  # JSON-looking YAML (flow style, comments) is still a valid document
            tree = _yaml.load(text, **limits)
        except (yaml.YAMLError, _yaml.YamlError):
            raise OpenAPISpecError(
                f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", where="spec"
            ) from None
    except UnicodeDecodeError as exc:
        raise OpenAPISpecError(f"{label} is not UTF-8 text: {exc.reason}", where="spec") from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int/str conversion limit)
        raise OpenAPISpecError(f"{label} cannot be read as JSON: {exc}", where="spec") from None
    return Document.from_tree(tree, label)


def _parse_yaml(text: Any, label: str, limits: dict[str, int]) -> Any:
    try:
        return _yaml.load(text, **limits)
    except _yaml.YamlError as exc:
        raise OpenAPISpecError(f"{label} is not a YAML document toolrun can read: {exc}", where="spec") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise OpenAPISpecError(f"{label} is neither JSON nor valid YAML: {exc.problem}{at}", where="spec") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise OpenAPISpecError(f"{label} is neither JSON nor valid YAML: {exc}", where="spec") from None


def _check_version(openapi: Any, swagger: Any, label: str) -> tuple[str, str]:
    for field, value in (("openapi", openapi), ("swagger", swagger)):
        # A version is text (YAML may read 2.0 as a number); anything else is not shown whole.
        if value is not None and (not isinstance(value, (str, int, float)) or isinstance(value, bool)):
            raise OpenAPISpecError(
                f"{label}: '{field}' must be a version string, not {type(value).__name__}", where=field
            )
    if openapi is not None:
        version = str(openapi)
        if not version.startswith("3."):
            raise OpenAPISpecError(
                f"{label}: OpenAPI version {version[:40]!r} is not supported (3.0 and 3.1 are, and Swagger 2.0)",
                where="openapi",
            )
        return "openapi", version
    if swagger is not None:
        version = str(swagger)
        if version not in ("2.0", "2"):
            raise OpenAPISpecError(
                f"{label}: Swagger version {version[:40]!r} is not supported (2.0 is)", where="swagger"
            )
        return "swagger", "2.0"
    raise OpenAPISpecError(
        f"{label} is not an OpenAPI document: it has neither an 'openapi' nor a 'swagger' field",
        where="openapi",
    )


class OpSource(NamedTuple):
    """One operation as found in the document, nothing resolved yet."""

    path: str
    method: str
    operation_id: Any
    summary: Any
    description: Any
    parameters: Any
    request_body: Any  # a mapping, a ``$ref`` mapping, or undecoded bytes (msgspec.Raw)
    servers: Any
    security: Any
    consumes: Any
    path_parameters: Any
    path_servers: Any
    path_summary: Any
    path_description: Any


# ---------------------------------------------------------------- document


class Document:
    """A parsed document: its version, top-level fields, operations, and ``$ref`` lookup."""

    def __init__(self, kind: str, version: str, top: dict[str, Any], label: str) -> None:
        self.kind = kind  # "openapi" or "swagger"
        self.version = version
        self.label = label
        self._top = top  # top-level fields; in typed mode the lazy ones are msgspec.Raw
        self._text: Any = None  # typed mode: the text, for pointers outside the lazy fields
        self._tree: Any = None  # the whole document decoded, when that was needed
        self._typed_paths: dict[str, Any] | None = None
        self._levels: dict[tuple[str, ...], Any] = {}
        self._values: dict[tuple[str, ...], Any] = {}
        self._other_keys: dict[int, tuple[Any, dict[str, Any]]] = {}
        #: Values worked out once for the whole document (its security, its consumes).
        self.memo: dict[str, Any] = {}

    # -- construction

    @classmethod
    def from_tree(cls, tree: Any, label: str) -> Document:
        if not isinstance(tree, Mapping):
            kind = "empty" if tree is None else type(tree).__name__
            kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number"}.get(kind, kind)
            raise OpenAPISpecError(f"{label} is not an OpenAPI document: it is {kind}, not an object", where="spec")
        kind, version = _check_version(tree.get("openapi"), tree.get("swagger"), label)
        doc = cls(kind, version, dict(tree), label)
        doc._tree = tree
        paths = tree.get("paths")
        if paths is not None and not isinstance(paths, Mapping):
            raise OpenAPISpecError(f"'paths' must be an object, not {type(paths).__name__}", where="paths")
        return doc

    @classmethod
    def from_typed(cls, top: Any, text: Any, label: str) -> Document:
        kind, version = _check_version(top.openapi, top.swagger, label)
        fields = {
            "servers": top.servers,
            "host": top.host,
            "basePath": top.basePath,
            "schemes": top.schemes,
            "consumes": top.consumes,
            "security": top.security,
        }
        for key in _LAZY_KEYS:
            raw = getattr(top, key)
            if len(raw):
                fields[key] = raw
        doc = cls(kind, version, fields, label)
        doc._text = text
        doc._typed_paths = top.paths or {}
        return doc

    # -- top level

    def get(self, key: str, default: Any = None) -> Any:
        if self._tree is not None:
            return self._tree.get(key, default)
        if key in self._top:
            value = self._top[key]
            return self.resolve_parts((key,)) if is_raw(value) else (default if value is None else value)
        return self.resolve_parts((key,), default)

    # -- operations

    def operations(self) -> Iterator[OpSource]:
        if self._typed_paths is not None:
            yield from self._typed_operations()
            return
        paths = self._tree.get("paths") or {}
        for path, item in paths.items():
            yield from self._dict_operations(str(path), item)

    def _typed_operations(self) -> Iterator[OpSource]:
        for path, item in self._typed_paths.items():  # type: ignore[union-attr]
            if item.ref is not None:
                # A path item that is itself a ``$ref``: read the target the generic way.
                yield from self._dict_operations(path, {"$ref": item.ref})
                continue
            for method in HTTP_METHODS:
                op = getattr(item, method)
                if op is None:
                    continue
                yield OpSource(
                    path,
                    method,
                    op.operationId,
                    op.summary,
                    op.description,
                    op.parameters,
                    op.requestBody if len(op.requestBody) else None,
                    op.servers,
                    op.security,
                    op.consumes,
                    item.parameters,
                    item.servers,
                    item.summary,
                    item.description,
                )

    def _dict_operations(self, path: str, item: Any) -> Iterator[OpSource]:
        where = f"paths[{path!r}]"
        item = self.follow(item)
        if item is MISSING:
            raise OpenAPISpecError("the path item's $ref points at nothing", where=where)
        if not isinstance(item, Mapping):
            raise OpenAPISpecError(f"a path item must be an object, not {type(item).__name__}", where=where)
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            if not isinstance(op, Mapping):
                raise OpenAPISpecError(
                    f"an operation must be an object, not {type(op).__name__}", where=f"{where}.{method}"
                )
            yield OpSource(
                path,
                method,
                op.get("operationId"),
                op.get("summary"),
                op.get("description"),
                op.get("parameters"),
                op.get("requestBody"),
                op.get("servers"),
                op.get("security"),
                op.get("consumes"),
                item.get("parameters"),
                item.get("servers"),
                item.get("summary"),
                item.get("description"),
            )

    # -- references

    def follow(self, node: Any, limit: int = 32) -> Any:
        """``node`` with ``$ref`` chains followed (a ``$ref`` to a ``$ref``...); MISSING if broken."""
        seen = 0
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            seen += 1
            if seen > limit:
                return MISSING
            node = self.resolve(node["$ref"])
        return node

    def resolve(self, ref: str) -> Any:
        """The value a local ``$ref`` (``#/components/schemas/Pet``) points at, or MISSING."""
        if not ref.startswith("#"):
            return MISSING  # another document: never fetched
        pointer = unquote(ref[1:])
        if pointer == "":
            return self._whole()
        if not pointer.startswith("/"):
            return MISSING  # a plain-name anchor ($anchor), not a JSON pointer
        parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))
        return self.resolve_parts(parts)

    def materialize(self, value: Any, where: str = "a request body") -> Any:
        """A value that may still be undecoded bytes, decoded."""
        return self._decode(value, where) if is_raw(value) else value

    def _decode(self, raw: Any, where: str, decoder: Any = None) -> Any:
        try:
            return (decoder or msgspec.json).decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # Skipped parts were checked for JSON syntax, but not for valid UTF-8 inside strings.
            raise OpenAPISpecError(f"{self.label} is broken at {where}: {exc}", where=where) from None
        except RecursionError:
            raise OpenAPISpecError(f"{self.label} is nested too deeply to read at {where}", where=where) from None

    def resolve_parts(self, parts: tuple[str, ...], default: Any = MISSING) -> Any:
        hit = self._values.get(parts, MISSING)
        if hit is not MISSING:
            return hit
        if self._tree is not None or parts[0] not in self._top or not is_raw(self._top[parts[0]]):
            value = self._walk(self._whole(), parts)
            return default if value is MISSING else value
        node: Any = self._top
        for i, part in enumerate(parts):
            if is_raw(node):
                prefix = parts[:i]
                level = self._levels.get(prefix)
                if level is None:
                    level = self._levels[prefix] = self._decode(node, _pointer(prefix), _LEVEL_DECODER)
                node = level
            node = self._step(node, part)
            if node is MISSING:
                return default
        value = self._decode(node, _pointer(parts)) if is_raw(node) else node
        self._values[parts] = value
        return value

    def _step(self, node: Any, part: str) -> Any:
        return _step(node, part, self._other_keys)

    def _walk(self, node: Any, parts: tuple[str, ...]) -> Any:
        for part in parts:
            node = self._step(node, part)
            if node is MISSING:
                return MISSING
        return node

    def _whole(self) -> Any:
        if self._tree is None:
            try:
                self._tree = json.loads(self._text)
            except RecursionError:  # msgspec read it, so this is the stdlib's lower limit
                raise _too_deep(self.label) from None
        return self._tree


def _pointer(parts: tuple[str, ...]) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _step(node: Any, part: str, other_keys: dict[int, tuple[Any, dict[str, Any]]]) -> Any:
    if isinstance(node, Mapping):
        if part in node:
            return node[part]
        # YAML turns keys like ``200`` into ints. The text of such keys is worked out once per
        # mapping: scanning a big mapping for every reference that misses was quadratic.
        known = other_keys.get(id(node))
        if known is None:
            texts = {str(k): k for k in node if not isinstance(k, str)}
            known = other_keys[id(node)] = (node, texts)  # the mapping is kept: its id stays its own
        key = known[1].get(part, MISSING)
        return MISSING if key is MISSING else node[key]
    if isinstance(node, list):
        if part.isdigit() and int(part) < len(node):
            return node[int(part)]
        return MISSING
    return MISSING
