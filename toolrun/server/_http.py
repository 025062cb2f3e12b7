"""uvicorn's HTTP/1.1 protocol, answering malformed requests in the APIs' error shape.

A request that is not valid HTTP (``Content-Length: -5``, a bare CR or a NUL in
a header) never reaches the app: uvicorn's h11 protocol answers it with a
plain-text 400. The path may not even be readable, so the dialect cannot be
chosen; the body here carries both envelopes at once — Cloudflare's
``success``/``errors`` and OpenAI's ``error`` — which both SDKs parse.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED_REQUEST = (
    "the request is not valid HTTP/1.1 (a malformed request line, header or Content-Length); the connection is closed"
)


def malformed_request_body() -> bytes:
    return json.dumps(
        {
            "result": None,
            "success": False,
            "errors": [{"code": 7400, "message": MALFORMED_REQUEST}],
            "messages": [],
            "error": {
                "message": MALFORMED_REQUEST,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_http_request",
            },
        }
    ).encode()


class EnvelopeH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose 400 for unparseable requests is JSON in both dialects."""

    def send_400_response(self, msg: str) -> None:
        body = malformed_request_body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()
