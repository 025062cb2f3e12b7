"""Redirects followed by hand, one hop at a time, so that each hop is checked like the first.

Both the document fetch (``_load``) and every tool call (``_call``) do this;
they differ only in what they refuse and how they say so.
"""

from __future__ import annotations

import httpx

from ._address import url_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host as sent, port)``, the default port written out: what "the same origin" compares."""
    return url.scheme, url_host(url), url.port or _DEFAULT_PORTS.get(url.scheme)


class InvalidRedirect(Exception):
    """A redirect whose ``Location`` is no URL."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(location)


def redirect_target(resp: httpx.Response, url: httpx.URL) -> httpx.URL | None:
    """Where ``resp`` (the answer for ``url``) redirects to, or None when it is no redirect.

    Raises :class:`InvalidRedirect` for a ``Location`` that cannot be read as a URL.
    """
    location = resp.headers.get("location")
    if not (resp.is_redirect and location):
        return None
    try:
        return url.join(location)
    except httpx.InvalidURL:
        raise InvalidRedirect(location) from None
