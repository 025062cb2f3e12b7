"""Keep a long-running server's heap from growing with its threads.

glibc gives every thread that allocates its own arena (up to eight per core) and seldom returns what is
freed inside one. A server's threads (``asyncio.to_thread`` workers, the scheduler) each handle large,
short-lived buffers — a 1 MB request body, the token list of a prompt too long for the context — so each
arena keeps the high-water mark of whatever request last passed through it. Measured with
``tests/server/test_soak.py``'s requests: 20 requests carrying a 1 MB tool description grew the server's
RSS by 165 MB with glibc's default arenas, and left it flat with two. Two is what Gunicorn's and Heroku's
advice for threaded Python servers settles on too.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

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


__all__ = ["limit_malloc_arenas"]
