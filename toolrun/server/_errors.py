"""HTTP-level errors and the two error shapes the server answers in.

The binding raises :class:`~toolrun._errors.ToolrunError` subclasses that
already carry an HTTP status, a short code and a ``where``; the server adds
only the errors that exist at the HTTP level (auth, body size, JSON syntax,
the OpenAI request's own shape) and renders every one of them in the caller's
dialect: Cloudflare's v4 envelope, OpenAI's ``{"error": {...}}`` or Anthropic's
``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse

from .._errors import InvalidInputError, OverloadedError, ToolrunError


class AuthenticationError(ToolrunError, status_code=401, code="unauthorized"):
    """The request carries no API key, or one this server does not accept."""


class ForbiddenError(ToolrunError, status_code=403, code="forbidden"):
    """A request this server refuses whoever sends it: a browser's cross-site request, a foreign Host."""


class PayloadTooLargeError(InvalidInputError, status_code=413, code="payload_too_large"):
    """The request body is over the server's limit."""


class InvalidJSONError(InvalidInputError, code="invalid_json"):
    """The request body is not a JSON object: empty, not UTF-8, not JSON, or nested too deeply."""


class RouteNotFoundError(ToolrunError, status_code=404, code="not_found"):
    """No endpoint answers at this path."""


class MethodNotAllowedError(ToolrunError, status_code=405, code="method_not_allowed"):
    """The path has an endpoint, but not for this HTTP method."""


# Cloudflare's integer code for each error code. Where Workers AI has a well-known code (5006 input
# validation, 5007 no such model, 3040 capacity exceeded, 10000 authentication, 3006 request too large) it
# is used, so clients that branch on them keep working; the rest are toolrun's own in the same ranges.
_CLOUDFLARE_CODES: dict[str, int] = {
    "invalid_input": 5006,
    "invalid_json": 5006,
    "invalid_tool_schema": 5006,
    "invalid_tool_choice": 5006,
    "invalid_openapi_spec": 5006,
    "context_length_exceeded": 5021,
    "model_not_found": 5007,
    "model_unavailable": 5016,
    "model_fetch_failed": 5016,
    "overloaded": 3040,
    "unauthorized": 10000,
    "forbidden": 7403,
    "payload_too_large": 3006,
    "not_found": 7003,
    "method_not_allowed": 7001,
    "engine_error": 3043,
    "mcp_server_error": 3043,
}

# OpenAI's and Anthropic's error types by HTTP status (their SDKs pick the exception class by status, people
# read the type). A status not listed is the client's error below 500, the server's from 500.
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _cloudflare_code(exc: ToolrunError) -> int:
    return _CLOUDFLARE_CODES.get(exc.code) or (5000 if exc.status_code < 500 else 3043)


def _error_type(exc: ToolrunError, by_status: dict[int, str], *, server_error: str) -> str:
    return by_status.get(exc.status_code) or ("invalid_request_error" if exc.status_code < 500 else server_error)


def as_toolrun_error(exc: BaseException) -> ToolrunError:
    """Unexpected exceptions become a 500 that says nothing about internals."""
    if isinstance(exc, ToolrunError):
        return exc
    return ToolrunError("internal server error; the server log has the details")


def json_pointer(where: str | None) -> str | None:
    """``messages[2].content`` → ``/messages/2/content`` (RFC 6901, for Cloudflare's ``source.pointer``)."""
    if not where:
        return None
    parts = [p for p in re.split(r"\.|\[|\]", where) if p]
    return "/" + "/".join(p.strip("'\"").replace("~", "~0").replace("/", "~1") for p in parts)


def _headers(exc: ToolrunError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, OverloadedError):
        # Retry-After is whole seconds; never tell a client to retry at once.
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="toolrun"'
    return headers


def cloudflare_error_body(exc: ToolrunError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": _cloudflare_code(exc), "message": str(exc)}
    pointer = json_pointer(exc.where)
    if pointer:
        error["source"] = {"pointer": pointer}
    return {"result": None, "success": False, "errors": [error], "messages": []}


def openai_error_body(exc: ToolrunError) -> dict[str, Any]:
    kind = _error_type(exc, _OPENAI_TYPES, server_error="server_error")
    return {"error": {"message": str(exc), "type": kind, "param": exc.where, "code": exc.code}}


def anthropic_error_body(exc: ToolrunError) -> dict[str, Any]:
    """Anthropic's ``{"type": "error", "error": {"type", "message"}}``; the message names the field."""
    kind = _error_type(exc, _ANTHROPIC_TYPES, server_error="api_error")
    return {"type": "error", "error": {"type": kind, "message": str(exc)}}


def error_renderer(path: str) -> Callable[[ToolrunError], JSONResponse]:
    """Cloudflare's envelope under /client/v4 (except its OpenAI-compatible /ai/v1), Anthropic's under
    /v1/messages, OpenAI's elsewhere."""
    if path.startswith("/client/v4") and "/ai/v1/" not in path:
        return cloudflare_error
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return anthropic_error
    return openai_error


def cloudflare_error(exc: ToolrunError) -> JSONResponse:
    return JSONResponse(cloudflare_error_body(exc), status_code=exc.status_code, headers=_headers(exc))


def openai_error(exc: ToolrunError) -> JSONResponse:
    return JSONResponse(openai_error_body(exc), status_code=exc.status_code, headers=_headers(exc))


def anthropic_error(exc: ToolrunError) -> JSONResponse:
    return JSONResponse(anthropic_error_body(exc), status_code=exc.status_code, headers=_headers(exc))
