"""Keep a long-running server's heap from growing with its threads.

glibc gives every thread that allocates its own arena (up to eight per core) and seldom returns what is
freed inside one. A server's threads (``asyncio.to_thread`` workers, the scheduler) each handle large,
short-lived buffers — a 1 MB request body, the token list of a prompt too long for the context — so each
arena keeps the high-water mark of whatever request last passed through it. Measured with
``tests/server/test_soak.py``'s requests: 20 requests carrying a 1 MB tool description grew the server's
RSS by 165 MB with glibc's default arenas, and left it flat with two. Two is what Gunicorn's and Heroku's
advice for threaded Python servers settles on too.

Two arenas bound how many high-water marks there are, not how high each one is: three 1 MB requests in flight
together still leave their peak behind. So after a request whose body was large, the server hands glibc's
free pages back (``malloc_trim``, which also releases free pages inside an arena, not only at its top).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
from typing import Any

log = logging.getLogger("toolrun.server")

#: glibc's ``mallopt`` parameter for the most arenas (malloc.h).
_M_ARENA_MAX = -8
SERVER_ARENAS = 2


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (before it starts threads); True if it took effect.

    An operator's own ``MALLOC_ARENA_MAX`` wins; other C libraries (musl, macOS) are left as they are."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_ARENA_MAX, arenas))
    if applied:
        log.debug("malloc arenas capped at %d", arenas)
    return applied


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``); False where there is none."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


#: A request body at least this large is followed by :func:`release_free_memory`.
LARGE_BODY_BYTES = 1 << 20


class ReleaseAfterLargeBodies:
    """ASGI middleware: after a request whose declared body is large, release the heap's free pages (off the
    event loop). Trimming costs milliseconds; done after every request it would be waste."""

    def __init__(self, app: Any, threshold: int = LARGE_BODY_BYTES) -> None:
        self.app = app
        self.threshold = threshold

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length", b"")
        large = length.isdigit() and int(length) >= self.threshold
        try:
            await self.app(scope, receive, send)
        finally:
            if large:
                await asyncio.to_thread(release_free_memory)


__all__ = ["ReleaseAfterLargeBodies", "limit_malloc_arenas", "release_free_memory"]
