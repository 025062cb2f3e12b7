"""OpenAPI documents as tools: the Python form of ai-utils' ``createToolsFromOpenAPISpec``.

>>> tools = await create_tools_from_openapi_spec(
...     "https://example.com/openapi.json",   # or a file path, the text itself, or a parsed mapping
...     match_patterns=[r"^https://api\\.github\\.com/users/([^/]+)$"],
...     overrides=[{"matcher": lambda url, method: url.hostname == "api.github.com",
...                 "values": {"headers": {"User-Agent": "toolrun"}}}],
... )

Each operation becomes one :class:`~toolrun.tools.Tool` whose parameters
group the operation's inputs like ai-utils does — ``path``, ``query``,
``header``, ``cookie``, ``formData`` and ``body`` objects — and whose
function makes the HTTP request and returns the response text.

A document is input like any other: what it says can make toolrun parse,
allocate and send only within limits (see ``create_tools_from_openapi_spec``).
"""

from __future__ import annotations

import gc
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ..._errors import InvalidInputError, OpenAPISpecError
from .._patterns import compiled_pattern
from .._tool import Tool
from ._call import MAX_RESPONSE_BYTES, CallSettings, MatcherURL, Override, make_tool_function
from ._convert import GROUPS, Operation, ServerResolver, assign_names, make_server
from ._document import Document, parse
from ._load import MAX_SPEC_BYTES, read_source
from ._schema import NODE_BUDGET
from ._yaml import MAX_ALIAS_NODES, MAX_DEPTH

__all__ = ["GROUPS", "MatcherURL", "OpenAPISpecError", "create_tools_from_openapi_spec"]


async def create_tools_from_openapi_spec(
    spec: Any,
    *,
    match_patterns: Iterable[str | re.Pattern[str]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
    base_url: str | None = None,
    credentials: Mapping[str, Any] | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - ai-utils' shape: the limit of each call, not of this one
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    max_spec_bytes: int = MAX_SPEC_BYTES,
    client: httpx.AsyncClient | None = None,
    verbose: bool = False,
    allow_link_local: bool = False,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    max_schema_nodes: int = NODE_BUDGET,
) -> list[Tool]:
    """One tool per operation of an OpenAPI 3.0 / 3.1 or Swagger 2.0 document.

    ``spec``
        An ``http(s)://`` URL (fetched with httpx, ``timeout`` and ``max_spec_bytes`` apply;
        each redirect is checked like the URL itself), a file path, the document's JSON or YAML
        text (``str`` or ``bytes``), or a parsed mapping.
    ``match_patterns``
        Regular expressions (strings or compiled); an operation becomes a tool only if one of
        them matches (``re.search``) its URL, written as ai-utils does:
        ``https://api.github.com/users/{username}``.
    ``overrides``
        ``{"matcher": fn(url, method), "values": {...}}`` rules. ``url`` is the operation's URL
        (path template unfilled) as a :class:`MatcherURL`: an :class:`httpx.URL` that also
        answers the browser's names (``url.hostname``, ``url.pathname``, ``url.origin``...), so
        ai-utils' ``({ url, method }) => url.hostname === "api.github.com"`` ports as
        ``lambda url, method: url.hostname == "api.github.com"``. ``method`` is lower case
        (``"get"``). A matcher that cannot be called with ``(url, method)`` is refused here, and
        one that raises during a call makes that call fail with ToolExecutionError. ``values``
        may hold ``headers``, ``path_data``, ``query``, ``body``, ``cookies`` and ``form_data``
        (ai-utils' ``pathData`` / ``formData`` spellings work too); they win over the model's
        values of the same name.
    ``base_url``
        Sends every operation here instead of the document's servers (``base_url`` + path).
    ``credentials``
        Security scheme name -> secret, for the schemes in ``components.securitySchemes`` /
        ``securityDefinitions``: apiKey (header, query, cookie), HTTP bearer, HTTP basic
        (``"user:password"`` or a ``(user, password)`` pair), OAuth2 / OpenID tokens as bearer.
        Credentials written into a server URL (``https://user:pass@host``) are never sent: a
        warning on the ``toolrun.openapi`` logger says so; give them here instead.
    ``timeout``, ``max_response_bytes``
        Limits of each call: the whole exchange, and the response text the model gets (longer
        responses are cut and say so).
    ``client``
        An ``httpx.AsyncClient`` to fetch the document and make calls with (its cookies and
        settings are then yours); by default one shared client per event loop.
    ``allow_link_local``
        False (the default) refuses link-local and cloud metadata addresses wherever a URL
        comes from — the document's URL and its redirects, its servers (server variables
        filled in), Swagger's ``host``, ``base_url``: 169.254.0.0/16, fe80::/10,
        ``fd00:ec2::254``, ``metadata.google.internal`` and the like, in any spelling a resolver
        accepts (``http://2852039166/``). A document that points a selected operation there is
        an :class:`OpenAPISpecError`, ``base_url`` an :class:`InvalidInputError`. Without a
        ``client`` of yours (and no proxy in the environment), every connection is also
        checked after DNS, so a name that resolves to such an address is refused too.
        Loopback stays allowed. Pass True to call a service on a link-local address.
    ``max_depth``, ``max_alias_nodes``
        Limits of reading YAML: nesting deeper than ``max_depth`` levels (default 256), and
        aliases that stand for more than ``max_alias_nodes`` values in all (default 1,000,000:
        a "billion laughs" is refused, real anchors are far below), are an OpenAPISpecError
        with the line and column. JSON has no aliases, and its parsers refuse nesting past
        about 1,000 levels. Both stop in time linear in what they read.
    ``max_schema_nodes``
        How large one tool's parameter schema may grow (default 4,000 nodes, counting a
        schema that several references or YAML aliases reach each time it appears, as the JSON
        sent to a model holds it). References met after that are not expanded, like recursive
        ones (``"a Foo (not expanded: schema too large)"``), so a ``$ref`` bomb becomes a usable
        cut schema; the same happens past 256 KB of JSON text (a node can be a long string).
        What cannot be cut — a schema past 100,000 nodes (every tool schema's limit) or 1 MB
        of text with its ``enum``, ``default`` and ``const`` values, or nesting past 48 schema
        levels — is an OpenAPISpecError naming the operation when ``tool.parameters`` is
        first built.

    Calling a tool: ``await tool.function({"path": {...}, "query": {...}, "body": ...})``
    returns the response text on 2xx, ``{"error", "status", "body"}`` JSON otherwise, and an
    ``{"error": ...}`` JSON string on network errors and timeouts. Arguments with none of the
    group keys are routed by name: declared path / header / cookie / form parameters go there,
    properties of the JSON body go in the body, and the rest is the query (ai-utils sends all
    of them as the query).
    """
    patterns = [compiled_pattern(p, f"match_patterns[{i}]") for i, p in enumerate(match_patterns or ())]
    rules = [_override(o, i) for i, o in enumerate(overrides or ())]
    for name, value in (
        ("max_depth", max_depth),
        ("max_alias_nodes", max_alias_nodes),
        ("max_schema_nodes", max_schema_nodes),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError(f"must be a positive integer, not {value!r}", where=name)
    if base_url is not None:
        server = make_server(base_url, None, "base_url", allow_link_local=allow_link_local, where="base_url")
        if server.base is None:
            raise InvalidInputError(server.error or "invalid base_url", where="base_url")
    content, source_url, label = await read_source(
        spec, client=client, timeout=timeout, max_bytes=max_spec_bytes, allow_link_local=allow_link_local
    )
    settings = CallSettings(
        rules, dict(credentials or {}), timeout, max_response_bytes, client, verbose, allow_link_local
    )
    # Decoding a big document allocates many containers at once, which sets off the cyclic GC
    # again and again (half the time on GitHub's description); nothing here makes cycles to
    # collect, and no other task runs during this synchronous stretch.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        doc = parse(content, label, max_depth=max_depth, max_alias_nodes=max_alias_nodes)
        return build_tools(
            doc,
            source_url=source_url,
            match_patterns=patterns,
            base_url=base_url,
            settings=settings,
            schema_budget=max_schema_nodes,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def build_tools(
    doc: Document,
    *,
    source_url: str | None,
    match_patterns: list[re.Pattern[str]],
    base_url: str | None,
    settings: CallSettings,
    schema_budget: int = NODE_BUDGET,
) -> list[Tool]:
    servers = ServerResolver(doc, source_url, base_url, allow_link_local=settings.allow_link_local)
    found = []
    for src in doc.operations():
        server = servers.for_op(src)
        if match_patterns:
            url = (server.base or "") + (src.path if src.path.startswith("/") else "/" + src.path)
            if not any(p.search(url) for p in match_patterns):
                continue
        if server.refused:
            raise OpenAPISpecError(
                f"operation {src.method.upper()} {src.path[:200]}: {server.error}", where=server.where
            )
        found.append((src, server))
    names = assign_names([(src.operation_id, src.method, src.path) for src, _ in found])
    tools = []
    for (src, server), name in zip(found, names, strict=True):
        op = Operation(doc, src, name, server, schema_budget)
        tools.append(
            Tool(name, op.description, function=make_tool_function(op, settings), parameters_factory=op.schema)
        )
    return tools


def _override(rule: Any, index: int) -> Override:
    where = f"overrides[{index}]"
    if not isinstance(rule, Mapping):
        raise InvalidInputError("an override must be a mapping with 'matcher' and 'values'", where=where)
    matcher: Callable[..., Any] | None = rule.get("matcher")
    values = rule.get("values")
    if not callable(matcher):
        raise InvalidInputError("'matcher' must be a function (url, method) -> bool", where=f"{where}.matcher")
    _check_matcher(matcher, f"{where}.matcher")
    if not isinstance(values, Mapping):
        raise InvalidInputError("'values' must be a mapping", where=f"{where}.values")
    known = {"headers", "path_data", "pathData", "query", "body", "cookies", "form_data", "formData"}
    unknown = set(values) - known
    if unknown:
        raise InvalidInputError(
            f"unknown override value(s) {sorted(unknown)}; known: {sorted(known)}", where=f"{where}.values"
        )
    return Override(matcher, values, where)


def _check_matcher(matcher: Callable[..., Any], where: str) -> None:
    """A matcher must take ``(url, method)``: say so now, not inside every call."""
    try:
        signature = inspect.signature(matcher)
    except (TypeError, ValueError):  # a builtin without a signature: it gets its chance when called
        return
    try:
        signature.bind(MatcherURL("https://example.com/"), "get")
    except TypeError as exc:
        raise InvalidInputError(
            f"'matcher' must take two arguments (url, method), like lambda url, method: "
            f"url.hostname == 'api.github.com'; {getattr(matcher, '__name__', 'this one')}{signature} cannot ({exc})",
            where=where,
        ) from None
