"""Operations to tools: names, descriptions, server URLs, and (lazily) parameters.

Everything a tool needs before it is sent to a model — its name, its
description, the URL it calls — is worked out for every operation up front;
its parameter schema and call plan (references resolved, request body
chosen) only the first time they are asked for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..._errors import OpenAPISpecError
from ._address import check_url, url_host
from ._document import MISSING, Document, OpSource
from ._schema import NODE_BUDGET, SchemaConverter, SchemaLimitError, trim, valid_text

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NAME_LIMIT = 64
TOOL_DESCRIPTION_LIMIT = 1024
GROUPS = ("path", "query", "header", "cookie", "formData", "body")

logger = logging.getLogger("toolrun.openapi")

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_SERVER_VAR = re.compile(r"\{([^{}]*)\}")
# The spec says these header parameters "SHALL be ignored": the client sets them.
_IGNORED_HEADERS = frozenset(("accept", "content-type", "authorization"))
_OAS3_LOCATIONS = frozenset(("path", "query", "header", "cookie"))
_SWAGGER_LOCATIONS = frozenset(("path", "query", "header", "formData", "body"))


# ------------------------------------------------------------------- names


def sanitize_name(raw: str) -> str:
    """``raw`` made into ``^[a-zA-Z0-9_-]{1,64}$`` ("" if nothing usable is left)."""
    if "/" in raw and "//" not in raw:
        # GitHub-style "repos/get-content": the same answer as below, without a regex per name.
        quick = raw.replace("/", "_")
        if quick[0] != "_" and quick[-1] != "_" and NAME_PATTERN.match(quick):
            return quick
    name = _NAME_BAD.sub("_", raw)
    if name != raw:
        name = name.strip("_")
    return name[:NAME_LIMIT]


def fallback_name(method: str, path: str) -> str:
    name = sanitize_name(f"{method}_{path.replace('{', '').replace('}', '')}".replace("/", "_"))
    return re.sub(r"_+", "_", name) or method


def assign_names(ops: list[tuple[Any, str, str]]) -> list[str]:
    """Unique, deterministic names for ``(operationId, method, path)`` in document order.

    Valid operationIds keep their exact name; the others get the sanitized form (or
    ``method_path``) with ``_2``, ``_3``... added on a clash.
    """
    # A YAML operationId like 12 is a number; its text is the name it means.
    ops = [(str(i) if isinstance(i, (int, float)) and not isinstance(i, bool) else i, m, p) for i, m, p in ops]
    names: list[str | None] = [None] * len(ops)
    taken: set[str] = set()
    tried: dict[str, int] = {}  # base -> the suffix number it last got
    for i, (op_id, _, _) in enumerate(ops):
        if isinstance(op_id, str) and NAME_PATTERN.match(op_id) and op_id not in taken:
            names[i] = op_id
            taken.add(op_id)
    for i, (op_id, method, path) in enumerate(ops):
        if names[i] is not None:
            continue
        base = sanitize_name(op_id) if isinstance(op_id, str) else ""
        base = base or fallback_name(method, path)
        # Start where the last clash of this base ended: every suffix below it is taken already,
        # so the names are the same as counting from 1, without 10,000 ids of "x" costing 10**8 steps.
        n = tried.get(base, 1)
        name = base if n == 1 else base[: NAME_LIMIT - len(f"_{n}")] + f"_{n}"
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: NAME_LIMIT - len(suffix)] + suffix
        tried[base] = n
        names[i] = name
        taken.add(name)
    return names  # type: ignore[return-value]


def describe(src: OpSource) -> str:
    """Summary and description (the path item's when the operation has none), trimmed."""
    summary = _text(src.summary) or _text(src.path_summary)
    details = _text(src.description) or _text(src.path_description)
    text = f"{summary}\n\n{details}" if summary and details and not details.startswith(summary) else details or summary
    return trim(text or f"{src.method.upper()} {src.path}", TOOL_DESCRIPTION_LIMIT)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# ----------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """Where an operation's requests go: ``base`` (no trailing slash) or why there is none.

    ``refused``: the document names a host toolrun will not call (see :mod:`._address`);
    making the tools fails then, at ``where``.
    """

    base: str | None
    origin: tuple[str, str, int | None] | None = None
    error: str | None = None
    refused: bool = False
    where: str = "servers"


def make_server(
    raw_url: str, source_url: str | None, what: str, *, allow_link_local: bool = False, where: str = "servers"
) -> Server:
    url = raw_url.strip()
    try:
        parsed = httpx.URL(url)
        if not parsed.is_absolute_url:
            if parsed.scheme or not source_url:
                return Server(
                    None,
                    error=f"{what} {raw_url!r} is relative and the document was not fetched "
                    "from a URL to resolve it against; pass base_url=",
                    where=where,
                )
            parsed = httpx.URL(source_url).join(url)
    except (httpx.InvalidURL, ValueError) as exc:
        return Server(None, error=f"{what} {raw_url[:200]!r} is not a valid URL: {exc}", where=where)
    if parsed.scheme not in ("http", "https"):
        return Server(
            None, error=f"{what} {raw_url!r} uses {parsed.scheme!r}; only http and https are supported", where=where
        )
    host = url_host(parsed)
    if not host:
        return Server(None, error=f"{what} {raw_url!r} has no host", where=where)
    try:
        parsed.host  # noqa: B018 - httpx decodes "xn--" labels here, and raises for a broken one
    except ValueError as exc:
        return Server(None, error=f"{what} {raw_url[:200]!r} is not a valid URL: {exc}", where=where)
    if parsed.userinfo:
        # Never sent (the base below has no user part); say so rather than drop them silently.
        logger.warning(
            "%s %s has credentials in it (user:password@); toolrun does not send them: give them "
            "as credentials= (for the document's security schemes) or as an override header",
            what,
            str(parsed.copy_with(username="***", password=None)),
        )
    netloc = parsed.netloc.decode("ascii")
    base = f"{parsed.scheme}://{netloc}{parsed.raw_path.decode('ascii').split('?', 1)[0].rstrip('/')}"
    if not allow_link_local:
        problem = check_url(httpx.URL(base), what)
        if problem:
            return Server(None, error=problem, refused=True, where=where)
    return Server(base, origin=(parsed.scheme, host, parsed.port), where=where)


class ServerResolver:
    """The server of each operation, worked out once per distinct ``servers`` list."""

    def __init__(
        self, doc: Document, source_url: str | None, base_url: str | None, *, allow_link_local: bool = False
    ) -> None:
        self.doc = doc
        self.source_url = source_url
        self.allow_link_local = allow_link_local
        self._fixed = (
            make_server(base_url, None, "base_url", allow_link_local=allow_link_local, where="base_url")
            if base_url
            else None
        )
        self._cache: dict[int, Server] = {}
        self._keep: list[Any] = []  # keeps the lists alive so their ids stay unique
        self._doc_server: Server | None = None

    def for_op(self, src: OpSource) -> Server:
        if self._fixed is not None:
            return self._fixed
        if self.doc.kind == "swagger":
            if self._doc_server is None:
                self._doc_server = self._swagger()
            return self._doc_server
        for servers, own in ((src.servers, True), (src.path_servers, False)):
            if isinstance(servers, list) and servers:
                key = id(servers)
                if key not in self._cache:
                    self._keep.append(servers)
                    where = f"paths[{src.path!r}]" + (f".{src.method}.servers" if own else ".servers")
                    self._cache[key] = self._oas3(servers, where)
                return self._cache[key]
        if self._doc_server is None:
            servers = self.doc.get("servers")
            self._doc_server = self._oas3(servers if isinstance(servers, list) else [], "servers")
        return self._doc_server

    def _oas3(self, servers: list[Any], where: str) -> Server:
        server = self.doc.follow(servers[0]) if servers else {"url": "/"}  # the spec's default
        where = f"{where}[0]"
        if not isinstance(server, Mapping) or not isinstance(server.get("url"), str):
            return Server(None, error="the first server has no 'url'; pass base_url=", where=where)
        listed = server.get("variables")
        variables: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
        missing: list[str] = []

        def fill(match: re.Match[str]) -> str:
            var = variables.get(match.group(1))
            if isinstance(var, Mapping):
                for value in (var.get("default"), *(var["enum"][:1] if isinstance(var.get("enum"), list) else ())):
                    if isinstance(value, str) or _is_number(value):
                        return str(value)
            missing.append(match.group(1))
            return match.group(0)

        url = _SERVER_VAR.sub(fill, server["url"])
        if missing:
            return Server(
                None,
                error=f"server URL {server['url'][:200]!r} uses variable(s) "
                f"{', '.join(m[:40] for m in missing[:5])} with no default; pass base_url=",
                where=where,
            )
        return make_server(url, self.source_url, "server URL", allow_link_local=self.allow_link_local, where=where)

    def _swagger(self) -> Server:
        host = self.doc.get("host")
        base_path = self.doc.get("basePath")
        base_path = base_path if isinstance(base_path, str) else ""
        listed = self.doc.get("schemes")
        schemes = [s for s in listed if isinstance(s, str)] if isinstance(listed, list) else []
        if isinstance(host, str) and host:
            scheme = "https" if "https" in schemes or not schemes else schemes[0]
            return make_server(
                f"{scheme}://{host}{base_path}", None, "host", allow_link_local=self.allow_link_local, where="host"
            )
        # No host: "the host serving the documentation".
        return make_server(
            base_path or "/", self.source_url, "basePath", allow_link_local=self.allow_link_local, where="basePath"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------- plans


@dataclass
class Param:
    name: str
    location: str  # path, query, header, cookie, formData
    required: bool
    style: str
    explode: bool
    allow_reserved: bool = False
    binary: bool = False


@dataclass
class Body:
    kind: str  # json, form, multipart, text, raw
    media_type: str
    required: bool
    binary_fields: frozenset[str] = frozenset()


@dataclass
class Plan:
    """What calling an operation needs, and the parameter schema a model sees."""

    schema: dict[str, Any]
    params: dict[str, list[Param]] = field(default_factory=dict)  # by location
    body: Body | None = None
    form_kind: str = "form"  # Swagger 2 formData: form or multipart
    security: list[list[tuple[str, Mapping[str, Any]]]] = field(default_factory=list)


def build_plan(doc: Document, src: OpSource, *, budget: int = NODE_BUDGET) -> Plan:
    conv = SchemaConverter(doc, budget=budget)
    groups: dict[str, dict[str, Any]] = {}
    required: dict[str, list[str]] = {}
    params: dict[str, list[Param]] = {}
    swagger = doc.kind == "swagger"
    locations = _SWAGGER_LOCATIONS if swagger else _OAS3_LOCATIONS
    body: Body | None = None
    body_schema: Any = None
    body_required = False
    form_kind = "form"
    consumes = _consumes(doc, src)

    for p in _parameters(doc, src):
        name, location = p["name"], p["in"]
        if location not in locations or (location == "header" and name.lower() in _IGNORED_HEADERS):
            continue
        if location == "body":  # Swagger 2: the request body
            body_schema = conv.convert(p.get("schema"))
            body_schema = _with_description(body_schema, p.get("description"))
            body_required = p.get("required") is True
            body = _swagger_body(consumes, body_required)
            continue
        schema = _param_schema(conv, p, swagger)
        is_required = location == "path" or p.get("required") is True
        style, explode = _style(p, location, swagger)
        binary = isinstance(schema, Mapping) and schema.get("format") == "binary"
        if location == "formData" and binary:
            form_kind = "multipart"
        groups.setdefault(location, {})[name] = schema
        if is_required:
            required.setdefault(location, []).append(name)
        params.setdefault(location, []).append(
            Param(name, location, is_required, style, explode, p.get("allowReserved") is True, binary)
        )
    if "formData" in params and any("multipart" in c for c in consumes):
        form_kind = "multipart"

    if not swagger and src.request_body is not None:
        rb = doc.follow(doc.materialize(src.request_body, f"paths[{src.path!r}].{src.method}.requestBody"))
        if isinstance(rb, Mapping) and isinstance(rb.get("content"), Mapping):
            picked = _pick_media(rb["content"])
            if picked is not None:
                media_type, kind, media = picked
                body_required = rb.get("required") is True
                media = doc.follow(media)
                raw_schema = media.get("schema") if isinstance(media, Mapping) else None
                if kind in ("text", "raw"):
                    body_schema = {"type": "string", "description": f"the raw {media_type} request body"}
                else:
                    body_schema = conv.convert(raw_schema) if raw_schema is not None else {}
                body_schema = _with_description(body_schema, rb.get("description"))
                binary = frozenset()
                if kind == "multipart" and isinstance(body_schema, Mapping):
                    binary = frozenset(
                        n
                        for n, s in (body_schema.get("properties") or {}).items()
                        if (isinstance(s, Mapping) and s.get("format") in ("binary", "base64"))
                        or (
                            isinstance(s, Mapping)
                            and isinstance(s.get("items"), Mapping)
                            and s["items"].get("format") in ("binary", "base64")
                        )
                    )
                body = Body(kind, media_type, body_required, binary)

    properties: dict[str, Any] = {}
    for group in GROUPS[:-1]:
        if group in groups:
            group_schema: dict[str, Any] = {"type": "object", "properties": groups[group]}
            if required.get(group):
                group_schema["required"] = list(dict.fromkeys(required[group]))
            properties[group] = group_schema
    if body is not None:
        properties["body"] = body_schema if body_schema is not None else {}
    # The groups themselves are not listed as required, as in ai-utils (`required: []`): a
    # missing path parameter or body goes back to the model by name when it calls. Listing them
    # made the 0.5B default model echo its tool list instead of calling on the seed prompt.
    tool_schema: dict[str, Any] = {"type": "object", "properties": properties}
    return Plan(tool_schema, params, body, form_kind, _security(doc, src))


def _parameters(doc: Document, src: OpSource) -> Iterable[Mapping[str, Any]]:
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for group in (src.path_parameters, src.parameters):
        for raw in group if isinstance(group, list) else ():
            p = doc.follow(raw)
            if (
                isinstance(p, Mapping)
                and isinstance(p.get("name"), str)
                and isinstance(p.get("in"), str)
                and valid_text(p["name"])
            ):  # a name no request can carry is left out
                merged[(p["name"], p["in"])] = p  # the operation's own parameter wins over the path's
    return merged.values()


def _param_schema(conv: SchemaConverter, p: Mapping[str, Any], swagger: bool) -> Any:
    raw: Any
    if swagger:
        # A Swagger 2 parameter is its own schema (type, format, items, enum, default...).
        raw = {
            k: v
            for k, v in p.items()
            if k not in ("name", "in", "required", "description", "collectionFormat", "allowEmptyValue")
        }
    elif "schema" in p:
        raw = p["schema"]
    elif isinstance(p.get("content"), Mapping) and p["content"]:
        media = conv.doc.follow(next(iter(p["content"].values())))
        raw = media.get("schema") if isinstance(media, Mapping) else None
    else:
        raw = None
    schema = conv.convert(raw) if raw is not None else {}
    schema = _with_description(schema, p.get("description"), override=True)
    if p.get("deprecated") is True and isinstance(schema, dict):
        schema = {**schema, "deprecated": True}
    return schema


def _with_description(schema: Any, description: Any, *, override: bool = False) -> Any:
    text = trim(description)
    if not text or not isinstance(schema, Mapping):
        return schema
    if "description" in schema and not override:
        return schema
    return {**schema, "description": text}


def _style(p: Mapping[str, Any], location: str, swagger: bool) -> tuple[str, bool]:
    if swagger:
        given = p.get("collectionFormat")
        fmt = given if isinstance(given, str) else "csv"
        return {
            "csv": "form",
            "multi": "form",
            "ssv": "spaceDelimited",
            "pipes": "pipeDelimited",
            "tsv": "tabDelimited",
        }.get(fmt, "form"), fmt == "multi"
    default = "form" if location in ("query", "cookie") else "simple"
    given_style, given_explode = p.get("style"), p.get("explode")
    style = given_style if isinstance(given_style, str) else default
    explode = given_explode if isinstance(given_explode, bool) else style == "form"
    return style, explode


def _consumes(doc: Document, src: OpSource) -> list[str]:
    if src.consumes is None:  # the document's: worked out once, not once per operation
        if "consumes" not in doc.memo:
            doc.memo["consumes"] = _media_list(doc.get("consumes"))
        return doc.memo["consumes"]  # type: ignore[no-any-return]
    return _media_list(src.consumes)


def _media_list(value: Any) -> list[str]:
    return [c.lower() for c in value if isinstance(c, str)] if isinstance(value, list) else []


def _swagger_body(consumes: list[str], required: bool) -> Body:
    for media in consumes:
        if _is_json(media):
            return Body("json", media, required)
    if consumes:
        kind = _media_kind(consumes[0])
        return Body(kind if kind != "multipart" else "json", consumes[0], required)
    return Body("json", "application/json", required)


def _is_json(media: str) -> bool:
    base = media.split(";", 1)[0].strip().lower()
    return base in ("application/json", "*/*", "application/*") or base.endswith(("+json", "/json"))


def _media_kind(media: str) -> str:
    base = media.split(";", 1)[0].strip().lower()
    if _is_json(base):
        return "json"
    if base == "application/x-www-form-urlencoded":
        return "form"
    if base.startswith("multipart/"):
        return "multipart"
    if base.startswith("text/"):
        return "text"
    return "raw"


_KIND_ORDER = ("json", "form", "multipart", "text", "raw")


def _pick_media(content: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    best: tuple[int, str, str, Any] | None = None
    for media, value in content.items():
        if not isinstance(media, str):  # a YAML key such as 200
            continue  # type: ignore[unreachable]
        kind = _media_kind(media)
        rank = _KIND_ORDER.index(kind)
        if best is None or rank < best[0]:
            mt = "application/json" if media.split(";")[0].strip() in ("*/*", "application/*") else media
            best = (rank, mt, kind, value)
    return best[1:] if best else None


def _security(doc: Document, src: OpSource) -> list[list[tuple[str, Mapping[str, Any]]]]:
    if src.security is None:  # the document's: worked out once, not once per operation
        if "security" not in doc.memo:
            doc.memo["security"] = _security_list(doc, doc.get("security"))
        return doc.memo["security"]  # type: ignore[no-any-return]
    return _security_list(doc, src.security)


def _security_list(doc: Document, reqs: Any) -> list[list[tuple[str, Mapping[str, Any]]]]:
    if not isinstance(reqs, list):
        return []
    if "schemes" not in doc.memo:
        found = (
            doc.get("securityDefinitions")
            if doc.kind == "swagger"
            else doc.resolve_parts(("components", "securitySchemes"), None)
        )
        doc.memo["schemes"] = found if isinstance(found, Mapping) else {}
    schemes = doc.memo["schemes"]
    out = []
    for req in reqs:
        if not isinstance(req, Mapping):
            continue
        alternative = []
        for name in req:
            scheme = doc.follow(schemes.get(name, MISSING))
            if isinstance(scheme, Mapping):
                alternative.append((str(name), scheme))
        if len(alternative) == len(req):
            out.append(alternative)
    return out


class Operation:
    """One operation: what is known up front, and its plan once asked for."""

    __slots__ = (
        "_plan",
        "description",
        "doc",
        "match_url",
        "method",
        "name",
        "path",
        "schema_budget",
        "server",
        "src",
    )

    def __init__(
        self, doc: Document, src: OpSource, name: str, server: Server, schema_budget: int = NODE_BUDGET
    ) -> None:
        self.doc = doc
        self.schema_budget = schema_budget
        self.src = src
        self.name = name
        self.description = describe(src)
        self.method = src.method
        self.path = src.path if src.path.startswith("/") else "/" + src.path
        self.server = server
        # What match_patterns test, in ai-utils' form: origin + base path + path template.
        self.match_url = (server.base or "") + self.path
        self._plan: Plan | None = None

    def plan(self) -> Plan:
        if self._plan is None:
            where = f"paths[{self.src.path!r}].{self.method}"
            try:
                self._plan = build_plan(self.doc, self.src, budget=self.schema_budget)
            except SchemaLimitError as exc:
                at = f" (while expanding {exc.ref})" if exc.ref else ""
                raise OpenAPISpecError(f"tool {self.name!r}: {exc}{at}", where=where) from None
            except RecursionError:  # the limits above keep far from it; never let it out
                raise OpenAPISpecError(
                    f"tool {self.name!r}: the schema is nested too deeply to build", where=where
                ) from None
        return self._plan

    def schema(self) -> dict[str, Any]:
        return self.plan().schema
