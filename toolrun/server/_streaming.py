"""Disconnect-aware awaiting and an SSE response that stops generation when its client leaves.

A request's generation must not outlive its client: the engine serves one
request at a time, so an abandoned one would hold up everybody queued behind
it. Both helpers race the work against ASGI's ``http.disconnect`` and, when
the client wins, cancel the work and close the binding's event iterator
(which stops the decode loop) before returning.

Keep-alive: a stream whose first event is slow to come (a queue wait, a long
prefill) starts anyway after ``keepalive_interval`` seconds
(:func:`stream_unless_disconnected`), and every stream sends an SSE comment
(``: keep-alive``) whenever it has been silent that long, as sse-starlette's
pings do, so proxies and clients with read timeouts do not drop it. Every
streaming API gets both through :class:`EventStreamResponse` and the server's
``run``; clients ignore comment lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeAlias, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._errors import ToolrunError
from .._wire import Event, RunResult, Usage
from ._errors import as_toolrun_error

T = TypeVar("T")
log = logging.getLogger("toolrun.server")


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was complete."""


async def _wait_for_disconnect(receive: Receive) -> None:
    # Called only after the body has been read in full, so the next message is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def run_unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then cancel it and raise ClientDisconnected."""
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also reached when this handler itself is cancelled (server shutdown).
        if not work_task.done():
            await _cancel_and_wait(work_task)
            if watcher.done():
                raise ClientDisconnected
        await _cancel_and_wait(watcher)
    return work_task.result()


#: Seconds a stream may stay silent before a keep-alive comment goes out (``keepalive_interval``).
KEEPALIVE_S = 5.0
KEEPALIVE_FRAME = b": keep-alive\n\n"


Streamed: TypeAlias = RunResult | AsyncGenerator[Event, None]


async def stream_unless_disconnected(request: Request, work: Awaitable[Streamed], patience: float) -> Streamed:
    """The binding's stream: ``await work`` (it returns once the first event is in) for ``patience`` seconds.

    If the first event takes longer (queued behind another request, a long
    prefill), the stream comes back at once with that event still to come, so
    the response can start and send keep-alives meanwhile; a bad request found
    after that is reported in-band, like any failure mid-stream. A client that
    disconnects while waiting cancels the work (:class:`ClientDisconnected`).
    """
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({work_task, watcher}, timeout=patience, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler was cancelled (server shutdown)
        await _cancel_and_wait(work_task)
        raise
    finally:
        disconnected = watcher.done()
        await _cancel_and_wait(watcher)
    if work_task.done():
        return work_task.result()
    if disconnected:
        await _cancel_and_wait(work_task)
        raise ClientDisconnected
    return _events_when_ready(work_task)


async def _events_when_ready(work_task: asyncio.Future[Streamed]) -> AsyncGenerator[Event, None]:
    events: AsyncGenerator[Event, None] | None = None
    try:
        started = await work_task  # cancelling this await cancels the work too
        assert not isinstance(started, dict), "a stream's work returns its events"
        events = started
        async for event in events:
            yield event
    finally:
        if not work_task.done():
            await _cancel_and_wait(work_task)
        if events is not None:
            await events.aclose()


def _configured_keepalive(scope: Scope) -> float:
    """The app's ``keepalive_interval`` (``create_app``), or the default outside a toolrun app."""
    state = getattr(getattr(scope.get("app"), "state", None), "toolrun", None)
    interval = getattr(getattr(state, "config", None), "keepalive_interval", None)
    return float(interval) if isinstance(interval, (int, float)) else KEEPALIVE_S


class EventStreamResponse(Response):
    """Server-sent events from ``frames`` (already encoded), closing them if the client goes away.

    Finish hooks ``hook(disconnected)`` run exactly once each, in the order
    added, after the frames are closed and so after generation has stopped;
    the server releases the request's queue slot and records its metrics there.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], on_finish: Callable[[bool], None] | None = None) -> None:
        # Not Response.__init__: it would render an empty body and declare Content-Length: 0.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._frames = frames
        self._finish_hooks: list[Callable[[bool], Any]] = [on_finish] if on_finish else []

    def add_finish_hook(self, hook: Callable[[bool], Any]) -> None:
        self._finish_hooks.append(hook)

    async def _pump(self, wire: _Wire) -> None:
        async for frame in self._frames:
            await wire.send(frame)
        await wire.finish()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = False
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            wire = _Wire(send)
            pump = asyncio.ensure_future(self._pump(wire))
            watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
            pinger = asyncio.ensure_future(wire.keep_alive(_configured_keepalive(scope)))
            try:
                await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
                disconnected = not pump.done()
            finally:
                await _cancel_and_wait(pinger)
                if not pump.done():
                    await _cancel_and_wait(pump)
                await _cancel_and_wait(watcher)
            if not disconnected:
                pump.result()  # surface a failure of send() itself
        finally:
            # Whether the pump finished, failed or was cancelled mid-send, close the source:
            # aclose() on a finished generator is a no-op, on a suspended one it stops the engine.
            aclose = getattr(self._frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(aclose())
            for hook in self._finish_hooks:
                try:
                    hook(disconnected)
                except Exception:
                    log.exception("stream finish hook failed")


class _Wire:
    """One response's body channel: frames from the pump, comments from the keep-alive, never interleaved
    and never after the last frame."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self.last_sent = self._loop.time()
        self._finished = False

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            if not self._finished:
                await self._send({"type": "http.response.body", "body": frame, "more_body": True})
                self.last_sent = self._loop.time()

    async def finish(self) -> None:
        async with self._lock:
            self._finished = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def keep_alive(self, interval: float) -> None:
        """A comment whenever nothing went out for ``interval`` seconds (only when idle: a busy stream
        pays nothing)."""
        while not self._finished:
            await asyncio.sleep(max(0.0, self.last_sent + interval - self._loop.time()))
            if self._loop.time() - self.last_sent >= interval:
                await self.send(KEEPALIVE_FRAME)


def sse_frame(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def sse_event(name: str, data: str) -> bytes:
    """A named event (``event:`` then ``data:``), as OpenAI's Responses and Anthropic's streams send them."""
    return f"event: {name}\ndata: {data}\n\n".encode()


async def event_frames(
    events: AsyncIterator[Event],
    render: Callable[[Event], Iterable[bytes]],
    *,
    on_usage: Callable[[Usage], None],
    error_body: Callable[[ToolrunError], dict[str, Any]] | None = None,
    error_frame: Callable[[ToolrunError], bytes] | None = None,
    opening: Iterable[bytes] = (),
    done: bool = True,
) -> AsyncIterator[bytes]:
    """The binding's events as one API's SSE frames, then ``data: [DONE]`` (unless not ``done``).

    ``opening`` goes out first, whatever the events do; ``render`` writes an
    event in the API's dialect; ``on_usage`` sees the
    final event's usage (the metrics). A failure after the status line went out
    is reported in-band in the API's error shape, as both OpenAI and Cloudflare do:
    ``error_frame`` writes the whole frame, else ``error_body`` its JSON.
    """
    try:
        for frame in opening:
            yield frame
        async for event in events:
            if "usage" in event:
                on_usage(event["usage"])
            for frame in render(event):
                yield frame
        if done:
            yield sse_frame("[DONE]")
    except Exception as exc:  # the status line is gone: report in-band and end the stream
        error = as_toolrun_error(exc)
        if error is not exc:
            log.exception("stream failed")
        if error_frame is not None:
            yield error_frame(error)
        elif error_body is not None:
            yield sse_frame(json.dumps(error_body(error)))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
