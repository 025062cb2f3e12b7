"""uvicorn's HTTP/1.1 protocol, hardened: JSON refusals, read deadlines, no ambiguous framing.

A request that is not valid HTTP (``Content-Length: -5``, a bare CR or a NUL in
a header) never reaches the app: uvicorn's h11 protocol answers it with a
plain-text 400. The path may not even be readable, so the dialect cannot be
chosen; the body here carries both envelopes at once — Cloudflare's
``success``/``errors`` and OpenAI's ``error`` — which both SDKs parse.

uvicorn has no deadline for reading a request: a client that sends half a
header, or a body at one byte a second, holds its connection (and a slot of
the process's file descriptors) for as long as it likes. Here the headers must
arrive within ``header_timeout`` seconds of the connection (or of the request's
first byte, on a kept-alive connection) and the body within ``body_timeout``
seconds of the headers; otherwise the client gets a 408 and the connection is
closed. A request with both ``Content-Length`` and ``Transfer-Encoding`` is
refused with a 400 (RFC 9112 §6.3: a proxy in front may frame it the other way,
and smuggle a second request inside the first).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # what uvicorn's own protocol uses
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED_REQUEST = (
    "the request is not valid HTTP/1.1 (a malformed request line, header or Content-Length); the connection is closed"
)
AMBIGUOUS_LENGTH = (
    "the request has both Content-Length and Transfer-Encoding, so its length is ambiguous; "
    "send one of them; the connection is closed"
)
#: Defaults of ``toolrun serve``: generous for any real client on any network, short for a stalled one.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0


def error_body(message: str, code: int, error_code: str) -> bytes:
    """One JSON body that both SDKs read: Cloudflare's envelope and OpenAI's ``error`` side by side."""
    return json.dumps(
        {
            "result": None,
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": error_code},
        }
    ).encode()


def malformed_request_body(message: str = MALFORMED_REQUEST) -> bytes:
    return error_body(message, 7400, "invalid_http_request")


class _StrictConnection(h11.Connection):
    """h11's server side, refusing a request whose framing two parsers could read differently."""

    refusal: str | None = None

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request):
            names = {name.lower() for name, _ in event.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                self.refusal = AMBIGUOUS_LENGTH
                raise h11.RemoteProtocolError(AMBIGUOUS_LENGTH, error_status_hint=400)
        return event


class EnvelopeH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with JSON refusals in both dialects, read deadlines and strict framing."""

    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        self.conn = _StrictConnection(h11.SERVER, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if limit is None else limit)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading: object = None  # the h11 state the deadline is for: IDLE (headers) or SEND_BODY

    @classmethod
    def with_timeouts(cls, header_timeout: float, body_timeout: float) -> type[EnvelopeH11Protocol]:
        """This protocol with other deadlines (uvicorn takes a class, not an instance)."""
        for name, value in (("header_timeout", header_timeout), ("body_timeout", body_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout, "body_timeout": body_timeout})

    # ------------------------------------------------------------ deadlines

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._track_read_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track_read_deadline()

    def _track_read_deadline(self) -> None:
        """Arm one deadline per phase: headers while h11 waits for a request, body while it reads one."""
        state: object = self.conn.their_state
        if state is h11.IDLE and self.timeout_keep_alive_task is not None:
            state = None  # an idle kept-alive connection: uvicorn's keep-alive timeout already covers it
        if state is self._reading:
            return
        self._cancel_read_deadline()
        if state is h11.IDLE or state is h11.SEND_BODY:
            seconds = self.header_timeout if state is h11.IDLE else self.body_timeout
            self._reading = state
            self._read_deadline = self.loop.call_later(seconds, self._read_timed_out)

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        self._read_deadline = None
        self._reading = None

    def _read_timed_out(self) -> None:
        phase = "headers" if self._reading is h11.IDLE else "body"
        self._read_deadline = None
        self._reading = None
        if self.transport.is_closing():
            return
        seconds = self.header_timeout if phase == "headers" else self.body_timeout
        self.logger.info("closing a connection whose request %s took over %s s", phase, seconds)
        if phase == "headers" or not self.cycle.response_started:
            message = f"the request's {phase} did not arrive within {seconds:g} seconds; the connection is closed"
            # Written as raw bytes: h11 has no state in which a server may answer a request it has not read.
            self._write_and_close(408, b"Request Timeout", error_body(message, 7408, "request_timeout"))
        else:
            self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's later response goes nowhere; its body read ends
            self.cycle.message_event.set()

    def _write_and_close(self, status: int, reason: bytes, body: bytes) -> None:
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body))
        )
        self.transport.write(head + body)
        self.transport.close()

    # ------------------------------------------------------------ refusals

    def send_400_response(self, msg: str) -> None:
        self._cancel_read_deadline()
        refusal = self.conn.refusal if isinstance(self.conn, _StrictConnection) else None
        body = malformed_request_body(refusal or MALFORMED_REQUEST)
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
