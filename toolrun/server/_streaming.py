"""Disconnect-aware awaiting and an SSE response that stops generation when its client leaves.

A request's generation must not outlive its client: the engine serves one
request at a time, so an abandoned one would hold up everybody queued behind
it. Both helpers race the work against ASGI's ``http.disconnect`` and, when
the client wins, cancel the work and close the binding's event iterator
(which stops the decode loop) before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._errors import ToolrunError
from .._wire import Event, Usage
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

    async def _pump(self, send: Send) -> None:
        async for frame in self._frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = False
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            pump = asyncio.ensure_future(self._pump(send))
            watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
            try:
                await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
                disconnected = not pump.done()
            finally:
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


def sse_frame(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


async def event_frames(
    events: AsyncIterator[Event],
    render: Callable[[Event], Iterable[bytes]],
    *,
    on_usage: Callable[[Usage], None],
    error_body: Callable[[ToolrunError], dict[str, Any]],
    opening: Iterable[bytes] = (),
) -> AsyncIterator[bytes]:
    """The binding's events as one API's SSE frames, then ``data: [DONE]``.

    ``opening`` goes out first, whatever the events do; ``render`` writes an
    event in the API's dialect; ``on_usage`` sees the
    final event's usage (the metrics). A failure after the status line went out
    is reported in-band in the API's error shape, as both OpenAI and Cloudflare do.
    """
    try:
        for frame in opening:
            yield frame
        async for event in events:
            if "usage" in event:
                on_usage(event["usage"])
            for frame in render(event):
                yield frame
        yield sse_frame("[DONE]")
    except Exception as exc:  # the status line is gone: report in-band and end the stream
        error = as_toolrun_error(exc)
        if error is not exc:
            log.exception("stream failed")
        yield sse_frame(json.dumps(error_body(error)))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
