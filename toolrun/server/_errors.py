"""HTTP-level errors and the two error shapes the server answers in.

The binding raises :class:`~toolrun._errors.ToolrunError` subclasses that
already carry an HTTP status, a short code and a ``where``; the server adds
only the errors that exist at the HTTP level (auth, body size, JSON syntax,
the OpenAI request's own shape) and renders every one of them in the caller's
dialect: Cloudflare's v4 envelope or OpenAI's ``{"error": {...}}``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.responses import JSONResponse

from .._errors import InvalidInputError, OverloadedError, ToolrunError


class AuthenticationError(ToolrunError):
    status_code = 401
    code = "unauthorized"


class PayloadTooLargeError(InvalidInputError):
    status_code = 413
    code = "payload_too_large"


class InvalidJSONError(InvalidInputError):
    code = "invalid_json"


class RouteNotFoundError(ToolrunError):
    status_code = 404
    code = "not_found"


class MethodNotAllowedError(ToolrunError):
    status_code = 405
    code = "method_not_allowed"


class ServerShuttingDownError(ToolrunError):
    status_code = 503
    code = "shutting_down"


# Cloudflare's errors carry integer codes. Where Workers AI has a well-known one
# (5006 input validation, 5007 no such model, 3040 capacity exceeded, 10000
# authentication, 3006 request too large) we use it, so clients that branch on
# them keep working; the rest are toolrun's own in the same ranges.
_CLOUDFLARE_CODES = {
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
    "payload_too_large": 3006,
    "not_found": 7003,
    "method_not_allowed": 7001,
    "engine_error": 3043,
    "shutting_down": 3043,
}

_OPENAI_TYPES = {
    401: "authentication_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


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
    error: dict[str, Any] = {"code": _CLOUDFLARE_CODES.get(exc.code, 5000 if exc.status_code < 500 else 3043),
                             "message": str(exc)}
    pointer = json_pointer(exc.where)
    if pointer:
        error["source"] = {"pointer": pointer}
    return {"result": None, "success": False, "errors": [error], "messages": []}


def cloudflare_error(exc: ToolrunError) -> JSONResponse:
    return JSONResponse(cloudflare_error_body(exc), status_code=exc.status_code, headers=_headers(exc))


def openai_error_body(exc: ToolrunError) -> dict[str, Any]:
    status = exc.status_code
    kind = _OPENAI_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": str(exc), "type": kind, "param": exc.where, "code": exc.code}}


def openai_error(exc: ToolrunError) -> JSONResponse:
    return JSONResponse(openai_error_body(exc), status_code=exc.status_code, headers=_headers(exc))
