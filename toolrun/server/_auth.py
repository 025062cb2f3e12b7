"""Who may use the server: API keys (a bearer token, or Anthropic's ``x-api-key`` header), or — without
any — clients on this machine only."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from starlette.requests import Request

from ._errors import AuthenticationError


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Authenticator:
    def __init__(self, api_keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in api_keys)

    def check(self, request: Request) -> None:
        """Raise :class:`AuthenticationError` unless the request may be served."""
        if not self._keys:
            # Without keys the server must not be an open relay: answer loopback clients only,
            # even if someone mounts the app on 0.0.0.0 by hand.
            client = request.client.host if request.client else None
            if not is_loopback(client):
                raise AuthenticationError(
                    "this server has no API keys configured, so it only answers clients on this machine; "
                    "start it with --api-key to accept remote clients"
                )
            return
        given = _presented_key(request).encode()
        # Compare against every key in constant time, so timing says nothing about which is close.
        if not any([hmac.compare_digest(given, key) for key in self._keys]):  # noqa: C419 - all of them, always
            raise AuthenticationError("invalid API key")


def _presented_key(request: Request) -> str:
    """The key the request presents: ``Authorization: Bearer <key>`` (OpenAI's, Cloudflare's), else
    ``x-api-key: <key>`` (Anthropic's SDKs and Claude Code send that one)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    raise AuthenticationError(
        "missing API key: send the header 'Authorization: Bearer <key>' "
        "(or, as Anthropic's clients do, 'x-api-key: <key>')"
    )
