"""Web pages may not drive a keyless server: loopback ``Host`` only, no cross-site requests.

A server without API keys trusts whoever can connect, which on 127.0.0.1 is
meant to be this machine's own programs. A browser on the same machine is one
too, and a page from any site can make it send requests: a ``fetch`` with a
``text/plain`` body or an HTML form needs no CORS pre-flight, and after DNS
rebinding (``attacker.example`` resolving to 127.0.0.1) the page may even read
the answer. So, without keys, a request must be addressed to a loopback name,
must not come from another origin's page, and must send its body as JSON —
unless the operator named that page's origin with ``--cors-origin``, which
also turns on CORS (Starlette's ``CORSMiddleware``) for it. With keys, a page
cannot attach the key without a pre-flight, which only the named origins pass.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ._auth import is_loopback
from ._config import origin_of
from ._errors import ForbiddenError, error_renderer

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _host_name(host_header: str) -> str | None:
    try:
        return urlsplit("//" + host_header).hostname
    except ValueError:
        return None


class BrowserGuard:
    """ASGI middleware refusing, with a 403 in the endpoint's dialect, what a keyless server must not serve."""

    def __init__(self, app: ASGIApp, *, keyless: bool, cors_origins: Collection[str] = ()) -> None:
        self.app = app
        self.keyless = keyless
        self.cors_origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keyless:
            refusal = self.refusal(Headers(scope=scope), scope["method"], scope.get("scheme", "http"))
            if refusal is not None:
                response = error_renderer(scope["path"])(ForbiddenError(refusal))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers, method: str, scheme: str) -> str | None:
        """Why the request is refused, or None when it may be served."""
        host = headers.get("host", "")
        if not is_loopback(_host_name(host)):
            return (
                f"this server has no API key, so it answers only requests addressed to localhost, 127.0.0.1 "
                f"or [::1], not to {host[:100]!r} (a web page can reach it under another name by DNS "
                "rebinding); start it with --api-key to serve other names"
            )
        origin = headers.get("origin")
        if origin is not None:
            if origin_of(origin) in self.cors_origins:
                return None  # a page the operator allowed: CORS applies, and its body may be any type
            if origin_of(origin) != f"{scheme}://{host.lower()}":
                return (
                    f"this server has no API key, so it refuses requests from web pages of other origins "
                    f"({origin[:100]!r}); start it with --cors-origin {origin_of(origin) or 'ORIGIN'} "
                    "to allow that page"
                )
        content_type = headers.get("content-type")
        if method in _BODY_METHODS and content_type is not None and not _is_json(content_type):
            return (
                "this server has no API key, so a request body must be sent with Content-Type: application/json "
                f"(not {content_type[:100]!r}): any web page can send text and form bodies without asking; "
                "with curl, add -H 'Content-Type: application/json'"
            )
        return None
