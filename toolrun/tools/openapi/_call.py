"""Calling an operation with a model's arguments.

The model controls argument values, never where a request goes: path values
are percent-encoded whole (a ``/``, ``?``, ``#`` or ``..`` cannot reach the
URL's structure), only declared header and cookie parameters are sent,
every request and every redirect it follows must stay on the operation's
server origin (never a link-local or metadata address: see ``_address``), and
credentials and override headers are only ever added to those requests. What
comes back is read within ``max_response_bytes``, decompression included.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
import logging
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from ..._errors import InvalidInputError, ToolExecutionError
from ..._json import check_json
from ._address import new_client
from ._convert import GROUPS, Operation, Param
from ._read import BodyError, read_capped
from ._redirect import InvalidRedirect, redirect_target, url_origin

logger = logging.getLogger("toolrun.openapi")

MAX_RESPONSE_BYTES = 32 * 1024
MAX_REDIRECTS = 5
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Never taken from a model's arguments, declared or not: they decide where and how a request goes.
_FORBIDDEN_HEADERS = frozenset(
    (
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "cookie",
        "authorization",
        "proxy-authorization",
        "te",
        "upgrade",
        "keep-alive",
        "expect",
    )
)


class ArgumentError(Exception):
    """The model's arguments cannot make a request; told to the model, which can try again."""


class MatcherURL(httpx.URL):
    """The URL an override's ``matcher`` gets: an :class:`httpx.URL` that also answers the
    WHATWG ``URL`` names that code ported from JavaScript uses.

    ``hostname``, ``href``, ``pathname`` (percent-encoded, as in a browser: the template's
    ``{username}`` reads ``%7Busername%7D``), ``protocol`` (``"https:"``), ``search`` (``"?a=1"``
    or ``""``), ``hash``, ``origin``, ``searchParams`` and ``toString()`` are the WHATWG ones;
    ``host`` and ``port`` stay httpx's (the host without the port; the port as an int or None),
    which for a URL without an explicit port is what WHATWG's ``host`` says too.
    """

    @property
    def hostname(self) -> str:
        return self.host

    @property
    def href(self) -> str:
        return str(self)

    @property
    def pathname(self) -> str:
        return self.raw_path.split(b"?", 1)[0].decode("ascii") or "/"

    @property
    def protocol(self) -> str:
        return f"{self.scheme}:"

    @property
    def search(self) -> str:
        query = self.query.decode("ascii")
        return f"?{query}" if query else ""

    @property
    def hash(self) -> str:
        return f"#{self.fragment}" if self.fragment else ""

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port is not None else "")

    @property
    def searchParams(self) -> httpx.QueryParams:  # noqa: N802 - the WHATWG name
        return self.params

    def toString(self) -> str:  # noqa: N802 - the WHATWG name
        return str(self)


@dataclass
class Override:
    matcher: Callable[[MatcherURL, str], Any]
    values: Mapping[str, Any]
    where: str = "overrides"


@dataclass
class CallSettings:
    """What every tool of one spec shares."""

    overrides: list[Override] = field(default_factory=list)
    credentials: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 30.0
    max_response_bytes: int = MAX_RESPONSE_BYTES
    client: httpx.AsyncClient | None = None
    verbose: bool = False
    allow_link_local: bool = False


# ------------------------------------------------------------- the client

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def shared_client(allow_link_local: bool = False) -> httpx.AsyncClient:
    """One client per event loop (a client's connections belong to the loop that made them), and
    per address policy: the default one connects only where :mod:`._address` allows."""
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    client = clients.get(allow_link_local)
    if client is None or client.is_closed:
        # A jar that accepts no cookies: one API's Set-Cookie must not ride along on later calls.
        jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        client = new_client(allow_link_local=allow_link_local, cookies=jar, follow_redirects=False)
        clients[allow_link_local] = client
    return client


# ------------------------------------------------------------- the caller


def make_tool_function(op: Operation, settings: CallSettings) -> Callable[..., Any]:
    """The tool's function: ``await function({"path": {...}, "query": {...}})`` -> text for the model.

    A real ``async def`` (not a callable object), so callers that check
    ``inspect.iscoroutinefunction`` await it instead of running it in a thread.
    """

    async def function(args: Any = None, /) -> str:
        return await call_operation(op, settings, args)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = op.description
    function.op = op  # type: ignore[attr-defined]
    function.settings = settings  # type: ignore[attr-defined]
    return function


async def call_operation(op: Operation, settings: CallSettings, args: Any) -> str:
    if op.server.base is None:
        raise ToolExecutionError(f"tool {op.name!r} cannot be called: {op.server.error}")
    try:
        request = _build(op, settings, args)
    except ArgumentError as exc:
        return json.dumps({"error": str(exc)})
    except (httpx.InvalidURL, UnicodeEncodeError) as exc:  # the latter: a path in the document that is not text
        return json.dumps({"error": f"cannot make a URL from these arguments: {exc}"})
    log = logger.info if settings.verbose else logger.debug
    log("%s: %s %s", op.name, request.method, request.url.copy_with(query=None))
    try:
        async with asyncio.timeout(settings.timeout):
            result = await _send(request, op, settings)
    except TimeoutError:
        result = json.dumps({"error": f"the request timed out after {settings.timeout:g}s"})
    except httpx.HTTPError as exc:
        result = json.dumps({"error": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__})
    log("%s: answered %d characters", op.name, len(result))
    return result


@dataclass
class _Request:
    method: str
    url: httpx.URL
    headers: list[tuple[str, str]]
    content: bytes | None = None
    files: list[tuple[str, tuple[None, str]]] | None = None
    form: list[tuple[str, str]] | None = None


# ------------------------------------------------------------ building


def _build(op: Operation, settings: CallSettings, args: Any) -> _Request:
    plan = op.plan()
    args = _decode_args(args)
    if args and not any(key in GROUPS for key in args):
        args = _route_flat(args, plan)
    for group in ("path", "query", "header", "cookie", "formData"):
        if group in args and args[group] is not None and not isinstance(args[group], Mapping):
            raise ArgumentError(f"'{group}' must be an object of parameter names to values")

    method = op.method.upper()
    ov = _collect_overrides(op, settings)

    # path: every value encoded whole, so it stays one segment
    path_args = {**(args.get("path") or {}), **ov["path"]}
    styles = {p.name: p for p in plan.params.get("path", ())}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in path_args or path_args[name] is None:
            raise ArgumentError(f"missing path parameter '{name}'")
        return _path_value(name, path_args[name], styles.get(name))

    path = _PLACEHOLDER.sub(fill, op.path)
    assert op.server.base is not None  # call_operation refuses a tool without a server first
    url = httpx.URL(op.server.base + path)

    # query: overrides replace the model's values of the same name
    query: list[tuple[str, str]] = []
    declared = {p.name: p for p in plan.params.get("query", ())}
    model_query = args.get("query") or {}
    for name, value in model_query.items():
        if str(name) not in ov["query"]:
            query.extend(_query_pairs(str(name), value, declared.get(str(name))))
    for name, value in ov["query"].items():
        query.extend(_query_pairs(name, value, declared.get(name)))

    headers: dict[str, tuple[str, str]] = {}  # lower name -> (name, value)
    declared_headers = {p.name.lower(): p for p in plan.params.get("header", ())}
    for name, value in (args.get("header") or {}).items():
        low = str(name).lower()
        if low in declared_headers and low not in _FORBIDDEN_HEADERS and value is not None:
            _check_name(declared_headers[low].name, "header")
            headers[low] = (declared_headers[low].name, _header_value(str(name), value))
    for name, value in ov["headers"].items():
        headers[name.lower()] = (name, _header_value(name, value))

    cookies: dict[str, str] = {}
    declared_cookies = {p.name for p in plan.params.get("cookie", ())}
    for name, value in (args.get("cookie") or {}).items():
        if name in declared_cookies and value is not None:
            _check_name(name, "cookie")
            cookies[str(name)] = _scalar(value) if not isinstance(value, (list, dict)) else _joined(value)
    cookies.update({k: _scalar(v) for k, v in ov["cookies"].items()})

    _apply_auth(plan.security, settings.credentials, headers, query, cookies)
    if cookies:
        headers["cookie"] = ("Cookie", "; ".join(f"{k}={quote(v, safe=_COOKIE_SAFE)}" for k, v in cookies.items()))

    request = _Request(method, httpx.URL(str(url), params=query) if query else url, [])
    _build_body(request, plan, args, ov, headers)
    request.headers = list(headers.values())
    return request


def _decode_args(args: Any) -> dict[str, Any]:
    if args is None or args == "":
        return {}
    if isinstance(args, (str, bytes)):
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nested past the parser
            raise ArgumentError("the arguments are not a JSON object") from None
    if not isinstance(args, Mapping):
        raise ArgumentError("the arguments must be an object")
    try:  # nothing below has to meet a lone surrogate, NaN, a cycle or a thousand levels
        check_json(args, "arguments")
    except InvalidInputError as exc:
        raise ArgumentError(str(exc)) from None
    return dict(args)


def _route_flat(args: dict[str, Any], plan: Any) -> dict[str, Any]:
    """Arguments given without groups (small models often flatten them).

    ai-utils sends them all as the query; here a name that is a declared path, header,
    cookie or form parameter goes there, a property of the JSON body goes in the body,
    and everything else is the query, as in ai-utils.
    """
    where = {p.name: loc for loc in ("path", "header", "cookie", "formData") for p in plan.params.get(loc, ())}
    query_names = {p.name for p in plan.params.get("query", ())}
    body_schema = plan.schema.get("properties", {}).get("body")
    body_props = body_schema.get("properties", {}) if isinstance(body_schema, Mapping) else {}
    routed: dict[str, Any] = {}
    for name, value in args.items():
        if name in where:
            routed.setdefault(where[name], {})[name] = value
        elif name in body_props and name not in query_names and plan.body is not None:
            routed.setdefault("body", {})[name] = value
        else:
            routed.setdefault("query", {})[name] = value
    return routed


def _collect_overrides(op: Operation, settings: CallSettings) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {k: {} for k in ("headers", "path", "query", "body", "cookies", "form")}
    if not settings.overrides:
        return out
    url = MatcherURL(op.match_url if op.server.base else op.path)
    for rule in settings.overrides:
        try:
            matched = rule.matcher(url, op.method)
        except Exception as exc:
            # The user's code, not the model's doing: the caller sees it, named.
            raise ToolExecutionError(
                f"{rule.where}.matcher failed for {op.method.upper()} {url}: {type(exc).__name__}: {exc}"
            ) from exc
        if not matched:
            continue
        values = rule.values
        for key, target in (
            ("headers", "headers"),
            ("path_data", "path"),
            ("pathData", "path"),
            ("query", "query"),
            ("body", "body"),
            ("cookies", "cookies"),
            ("form_data", "form"),
            ("formData", "form"),
        ):
            if isinstance(values.get(key), Mapping):
                out[target].update({str(k): v for k, v in values[key].items()})
    return out


# ------------------------------------------------------------ values


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _joined(value: Any, sep: str = ",") -> str:
    if isinstance(value, Mapping):
        return sep.join(f"{k}{sep}{_scalar(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sep.join(_scalar(v) for v in value)
    return _scalar(value)


def _encode_segment(text: str) -> str:
    return quote(text, safe="")  # everything but letters, digits and -._~


def _path_value(name: str, value: Any, param: Param | None) -> str:
    style = param.style if param else "simple"
    explode = param.explode if param else False
    if isinstance(value, Mapping):
        items = [(str(k), _scalar(v)) for k, v in value.items()]
        parts = (
            [f"{_encode_segment(k)}={_encode_segment(v)}" for k, v in items]
            if explode
            else [_encode_segment(x) for kv in items for x in kv]
        )
    elif isinstance(value, (list, tuple)):
        parts = [_encode_segment(_scalar(v)) for v in value]
    else:
        text = _scalar(value)
        if text in ("", ".", ".."):
            raise ArgumentError(f"path parameter '{name}' cannot be {text!r}")
        parts = [_encode_segment(text)]
    if style == "label":
        segment = "." + ("." if explode else ",").join(parts)
    elif style == "matrix":
        if explode and isinstance(value, (list, tuple)):
            segment = "".join(f";{name}={p}" for p in parts)
        else:
            segment = f";{name}=" + ",".join(parts)
    else:
        segment = ",".join(parts)
    # httpx removes dot segments: "/items/../x" would be "/x". A label-style [] is "." too.
    if segment in ("", ".", ".."):
        raise ArgumentError(f"path parameter '{name}' cannot be {value!r} (it would make the path {segment!r})")
    return segment


def _query_pairs(name: str, value: Any, param: Param | None) -> list[tuple[str, str]]:
    if value is None:
        return []
    style = param.style if param else "form"
    explode = param.explode if param else True
    if isinstance(value, Mapping):
        if style == "deepObject":
            return [(f"{name}[{k}]", _scalar(v)) for k, v in value.items()]
        if explode:
            return [(str(k), _scalar(v)) for k, v in value.items()]
        return [(name, _joined(value))]
    if isinstance(value, (list, tuple)):
        sep = {"spaceDelimited": " ", "pipeDelimited": "|", "tabDelimited": "\t"}.get(style)
        if sep is None and explode:
            return [(name, _scalar(v)) for v in value]
        return [(name, (sep or ",").join(_scalar(v) for v in value))]
    return [(name, _scalar(value))]


def _text(value: Any) -> str:
    """A document's string field, or "" (never the text of whatever else it holds)."""
    return value if isinstance(value, str) else ""


def _check_name(name: str, where: str) -> None:
    """Header and cookie names come from the document: only an RFC 9110 token may reach the wire."""
    if not _TOKEN.match(name):
        raise ArgumentError(f"the document's {where} name {name[:80]!r} is not a valid {where} name")


def _header_value(name: str, value: Any) -> str:
    text = _joined(value) if isinstance(value, (list, tuple, Mapping)) else _scalar(value)
    if any(c in text for c in "\r\n\0"):
        raise ArgumentError(f"header '{name}' cannot contain line breaks")
    if not text.isascii():
        raise ArgumentError(f"header '{name}' must be ASCII text")
    return text


def _form_pairs(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, v in value.items():
        if isinstance(v, (list, tuple)):
            pairs.extend((str(name), _scalar(x)) for x in v)
        elif v is not None:
            pairs.append((str(name), _scalar(v)))
    return pairs


# ------------------------------------------------------------ body


def _build_body(
    request: _Request, plan: Any, args: Mapping[str, Any], ov: Mapping[str, Any], headers: dict[str, tuple[str, str]]
) -> None:
    body = plan.body
    value = args.get("body")
    if body is not None:
        if ov["body"] and (value is None or isinstance(value, Mapping)):
            value = {**(value or {}), **ov["body"]}
        if value is None:
            if body.required:
                raise ArgumentError(f"this operation needs a request body ('body', {body.media_type})")
            return
        if body.kind == "json":
            _set_content(request, headers, json.dumps(value).encode(), body.media_type)
        elif body.kind in ("form", "multipart"):
            if not isinstance(value, Mapping):
                raise ArgumentError(f"the {body.media_type} body must be an object of field names to values")
            if body.kind == "form":
                _set_content(request, headers, urlencode(_form_pairs(value)).encode(), body.media_type)
            else:
                _multipart(request, headers, value, body.binary_fields)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            _set_content(request, headers, text.encode(), body.media_type)
        return
    form = {**(args.get("formData") or {}), **ov["form"]} if ("formData" in plan.params or ov["form"]) else {}
    if form:
        binary = frozenset(p.name for p in plan.params.get("formData", ()) if p.binary)
        if plan.form_kind == "multipart":
            _multipart(request, headers, form, binary)
        else:
            _set_content(request, headers, urlencode(_form_pairs(form)).encode(), "application/x-www-form-urlencoded")
    elif ov["body"]:  # ai-utils sends an override body even when the operation declares none
        _set_content(request, headers, json.dumps(ov["body"]).encode(), "application/json")


def _set_content(request: _Request, headers: dict[str, tuple[str, str]], content: bytes, media_type: str) -> None:
    request.content = content
    headers["content-type"] = ("Content-Type", media_type)


def _multipart(
    request: _Request, headers: dict[str, tuple[str, str]], value: Mapping[str, Any], binary: frozenset[str]
) -> None:
    uploads = sorted(n for n in value if n in binary and value[n] is not None)
    if uploads:
        raise ArgumentError(
            f"uploading files is not supported: field(s) {', '.join(repr(u) for u in uploads)} are file parts"
        )
    request.files = [(name, (None, text)) for name, text in _form_pairs(value)]
    headers.pop("content-type", None)  # httpx writes it with the boundary


# ------------------------------------------------------------ auth


def _apply_auth(
    security: Sequence[Sequence[tuple[str, Mapping[str, Any]]]],
    credentials: Mapping[str, Any],
    headers: dict[str, tuple[str, str]],
    query: list[tuple[str, str]],
    cookies: dict[str, str],
) -> None:
    if not credentials:
        return
    for alternative in security:
        if not alternative or not all(name in credentials for name, _ in alternative):
            continue
        for name, scheme in alternative:
            _apply_scheme(scheme, credentials[name], headers, query, cookies)
        return


def _apply_scheme(
    scheme: Mapping[str, Any],
    value: Any,
    headers: dict[str, tuple[str, str]],
    query: list[tuple[str, str]],
    cookies: dict[str, str],
) -> None:
    kind = _text(scheme.get("type")).lower()
    if kind == "apikey":
        name, where = _text(scheme.get("name")), scheme.get("in")
        if not name:
            return
        if where in ("header", "cookie"):
            _check_name(name, where)
        if where == "header":
            headers[name.lower()] = (name, _header_value(name, value))
        elif where == "query":
            query[:] = [(k, v) for k, v in query if k != name]
            query.append((name, _scalar(value)))
        elif where == "cookie":
            cookies[name] = _scalar(value)
        return
    http_scheme = _text(scheme.get("scheme")).lower() if kind == "http" else None
    if kind == "basic" or http_scheme == "basic":
        if isinstance(value, (tuple, list)) and len(value) == 2:
            value = f"{value[0]}:{value[1]}"
        text = str(value)
        token = base64.b64encode(text.encode()).decode() if ":" in text else text
        headers["authorization"] = ("Authorization", f"Basic {token}")
    elif kind in ("oauth2", "openidconnect") or http_scheme in ("bearer", ""):
        headers["authorization"] = ("Authorization", _header_value("Authorization", f"Bearer {value}"))
    elif http_scheme is not None:  # another HTTP scheme: "Digest ...", "HOBA ..."
        label = _text(scheme.get("scheme")).capitalize()
        headers["authorization"] = ("Authorization", _header_value("Authorization", f"{label} {value}"))
    # mutualTLS and unknown types: nothing to put in a request


# ------------------------------------------------------------ sending


async def _send(request: _Request, op: Operation, settings: CallSettings) -> str:
    client = settings.client or shared_client(settings.allow_link_local)
    assert op.server.origin is not None
    scheme, host, port = op.server.origin
    origin = (scheme, host, port or {"http": 80, "https": 443}.get(scheme))
    method, url = request.method, request.url
    content, files = request.content, request.files
    headers = request.headers
    for _ in range(MAX_REDIRECTS + 1):
        if url_origin(url) != origin:  # defence in depth: the URL is built from the server base
            return json.dumps(
                {
                    "error": f"refused to send a request to {url.copy_with(query=None)}: "
                    f"not the operation's server {op.server.base}"
                }
            )
        built = client.build_request(
            method, url, headers=headers, content=content, files=files, timeout=settings.timeout
        )
        try:
            resp = await client.send(built, stream=True, follow_redirects=False)
        except ValueError as exc:  # httpx works out a redirect's URL even when not following it, and
            # idna raises its own error for a broken "xn--" host in a Location header
            return json.dumps({"error": f"the server's answer cannot be read: {type(exc).__name__}: {exc}"})
        try:
            try:
                target = redirect_target(resp, url)
            except InvalidRedirect as exc:
                return json.dumps(
                    {"error": f"the server redirected to an invalid URL {exc.location!r}", "status": resp.status_code}
                )
            if target is not None:
                if url_origin(target) != origin:
                    return json.dumps(
                        {
                            "error": f"the server redirected to {target.copy_with(query=None)}, another origin; "
                            "not followed",
                            "status": resp.status_code,
                        }
                    )
                if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                    method, content, files = ("GET" if method != "HEAD" else "HEAD"), None, None
                    headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
                url = target
                continue
            try:
                data, truncated = await read_capped(resp, settings.max_response_bytes)
            except BodyError as exc:
                return json.dumps({"error": str(exc), "status": resp.status_code})
            return _result(resp, data, truncated, settings.max_response_bytes)
        finally:
            await resp.aclose()
    return json.dumps({"error": f"more than {MAX_REDIRECTS} redirects"})


def _text_encoding(charset: str | None) -> str:
    """The server's charset when it names a text encoding, else UTF-8. Python also has codecs
    named like charsets that are nothing of the kind: "zlib" and "bz2" decompress (a bomb in
    32 KB), "hex" and "rot13" fail on bytes."""
    if charset:
        try:
            "".encode(charset)  # LookupError for unknown names and for bytes-to-bytes codecs
            return charset
        except LookupError:
            pass
    return "utf-8"


def _result(resp: httpx.Response, data: bytes, truncated: bool, limit: int) -> str:
    decoder = codecs.getincrementaldecoder(_text_encoding(resp.charset_encoding))(errors="replace")
    # A cut in the middle of a character drops that character instead of garbling it.
    text = decoder.decode(data, final=not truncated)
    if truncated:
        total = resp.headers.get("content-length")
        compressed = "content-encoding" in resp.headers  # then the length is of the compressed bytes
        size = f"{total} bytes" if total and total.isdigit() and not compressed else f"more than {limit} bytes"
        text += f"\n[response truncated: showing the first {limit} bytes of {size}]"
    if resp.is_success:
        return text if text else json.dumps({"status": resp.status_code})
    body: Any = text
    if not truncated and "json" in resp.headers.get("content-type", ""):
        try:
            parsed = json.loads(text)
            check_json(parsed, "body")  # nested deep enough to trouble whoever reads it next: keep the text
            body = parsed
        except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nested past the parser
            pass
    return json.dumps(
        {"error": f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip(), "status": resp.status_code, "body": body}
    )
