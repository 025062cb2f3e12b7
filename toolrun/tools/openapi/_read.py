"""Reading a response body within a byte limit, decompression included.

httpx inflates each chunk it receives whole before anyone can count it: a
64 KB gzip chunk of zeros becomes 64 MB, so a server answering with a
"zip bomb" makes every call allocate far past ``max_response_bytes``. Here
the raw bytes are inflated with zlib's ``max_length``, so no more than the
limit (plus one chunk of input) is ever held.
"""

from __future__ import annotations

import zlib

import httpx

#: Encodings a response may use: what httpx asks for by default without brotli or zstd.
_GZIP = ("gzip", "x-gzip")


class BodyError(Exception):
    """The body cannot be read (an encoding not asked for, broken compressed data)."""


class _Inflater:
    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        wbits = zlib.MAX_WBITS | 16 if encoding in _GZIP else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        """At most ``room`` bytes of output for ``data`` (the rest is dropped: the caller stops)."""
        try:
            out = self._zlib.decompress(data, room)
        except zlib.error:
            if self.encoding == "deflate" and not self._started:
                # Servers often send raw deflate data under "deflate" (httpx accepts it too).
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.feed(data, room)
            raise BodyError(f"the {self.encoding} body is broken") from None
        self._started = True
        return out


async def read_capped(resp: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """``(body, truncated)``: at most ``limit`` decoded bytes, and whether there was more."""
    if resp.is_stream_consumed:  # read already (an httpx.MockTransport answer): it is in memory anyway
        return resp.content[:limit], len(resp.content) > limit
    encodings = [e.strip().lower() for e in resp.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    if len(encodings) > 1 or (encodings and encodings[0] not in (*_GZIP, "deflate")):
        raise BodyError(
            f"the response uses Content-Encoding {resp.headers['content-encoding'][:80]!r}, "
            "which toolrun did not ask for"
        )
    inflater = _Inflater(encodings[0]) if encodings else None
    body = bytearray()
    async for raw in resp.aiter_raw():
        room = limit + 1 - len(body)
        body += inflater.feed(raw, room) if inflater else raw[:room]
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False
