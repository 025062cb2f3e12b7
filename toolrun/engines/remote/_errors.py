"""Upstream error answers → toolrun's errors, in the two dialects remote engines meet.

OpenAI-compatible servers answer ``{"error": {"message", ...}}`` (vLLM, SGLang,
llama.cpp's server), ``{"detail": ...}`` (FastAPI apps such as
llama-cpp-python's server) or plain text; Cloudflare answers its v4 envelope
``{"success": false, "errors": [{"code", "message"}]}``. Every message names the
upstream by its URL and never carries a credential: an authentication failure
names the environment variable the key comes from, not the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..._errors import EngineError, InvalidInputError, ModelNotFoundError, OverloadedError, ToolrunError
from ._http import error_text


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None


def openai_message(value: Any, body: bytes = b"") -> str:
    """The human part of an OpenAI-style (or FastAPI) error document."""
    if isinstance(value, Mapping):
        error = value.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        detail = value.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
            first = detail[0]
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        if isinstance(value.get("message"), str):
            return str(value["message"])
    return error_text(body) or "no details"


def auth_hint(key_env: str | None) -> str:
    return f"check {key_env}" if key_env else "the upstream wants an API key: set api_key_env for this model"


def openai_error(upstream: str, status: int, body: bytes, *, key_env: str | None = None) -> ToolrunError:
    """An OpenAI-compatible server's error answer as a toolrun error."""
    message = openai_message(_decode(body), body)
    if status == 429:
        return OverloadedError(f"the upstream {upstream} is overloaded: {message}")
    if status in (401, 403):
        return EngineError(f"the upstream {upstream} refused the API key (HTTP {status}); {auth_hint(key_env)}")
    if status == 404:
        return EngineError(
            f"the upstream {upstream} answered 404 ({message}); check base_url and remote_model for this model"
        )
    if 400 <= status < 500:
        return InvalidInputError(f"the upstream {upstream} refused the request: {message}")
    return EngineError(f"the upstream {upstream} answered HTTP {status}: {message}")


def openai_stream_error(upstream: str, payload: Mapping[str, Any]) -> ToolrunError | None:
    """An error object sent inside a stream (vLLM and llama.cpp's server do so after a 200)."""
    error = payload.get("error")
    if error is None:
        return None
    code = error.get("code") if isinstance(error, Mapping) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return openai_error(upstream, status, json.dumps(payload).encode())


# --------------------------------------------------------------- Cloudflare

#: Cloudflare's codes for "your input is wrong" (5006 validation, 5021 context window, 3006 too large)
#: and for capacity (3040), as Workers AI documents them.
CF_INVALID = frozenset({5006, 5021, 3006})
CF_NO_MODEL = 5007
CF_CAPACITY = frozenset({3040})
CF_AUTH = frozenset({10000, 9109})


def cloudflare_errors(value: Any) -> list[tuple[int | None, str]]:
    """``[(code, message), ...]`` of a v4 envelope (or of anything shaped roughly like one)."""
    found: list[tuple[int | None, str]] = []
    if isinstance(value, Mapping):
        for item in value.get("errors") or ():
            if isinstance(item, Mapping):
                code = item.get("code")
                found.append((code if isinstance(code, int) else None, str(item.get("message", ""))))
            elif isinstance(item, str):
                found.append((None, item))
        if not found and isinstance(value.get("error"), str | Mapping):
            found.append((None, openai_message(value)))
    return found


def cloudflare_error(
    upstream: str,
    status: int,
    body: bytes,
    *,
    token_env: str = "CLOUDFLARE_API_TOKEN",
    account_env: str = "CLOUDFLARE_ACCOUNT_ID",
) -> ToolrunError:
    """Cloudflare's error envelope as a toolrun error (see the module doc)."""
    errors = cloudflare_errors(_decode(body))
    codes = {code for code, _ in errors if code is not None}
    message = "; ".join(f"{msg} (code {code})" if code is not None else msg for code, msg in errors if msg)
    message = message or error_text(body) or f"HTTP {status}"
    if status == 429 or codes & CF_CAPACITY:
        return OverloadedError(f"Workers AI at {upstream} is over capacity: {message}")
    if status in (401, 403) or codes & CF_AUTH:
        return EngineError(
            f"Workers AI at {upstream} refused the credentials: {message}. Check {token_env} "
            f"(an API token with Workers AI permission) and {account_env}"
        )
    if CF_NO_MODEL in codes:
        return ModelNotFoundError(f"Workers AI at {upstream} has no such model: {message}")
    if codes & CF_INVALID or 400 <= status < 500:
        return InvalidInputError(message)
    return EngineError(f"Workers AI at {upstream} answered HTTP {status}: {message}")


def cloudflare_stream_error(upstream: str, payload: Mapping[str, Any]) -> ToolrunError | None:
    """An envelope with ``success: false`` (or ``errors``) sent inside a stream."""
    if payload.get("success") is False or (payload.get("errors") and "response" not in payload):
        return cloudflare_error(upstream, 500, json.dumps(payload).encode())
    if "error" in payload and "response" not in payload:
        return cloudflare_error(upstream, 500, json.dumps(payload).encode())
    return None


__all__ = [
    "auth_hint",
    "cloudflare_error",
    "cloudflare_errors",
    "cloudflare_stream_error",
    "openai_error",
    "openai_message",
    "openai_stream_error",
]
