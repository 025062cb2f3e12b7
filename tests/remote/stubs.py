"""Loopback stand-ins for upstreams, for the faults and shapes a real server will not produce on demand."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Behaviour = Callable[[int, Request, dict[str, Any]], Awaitable[Response]]


class Stub:
    """Answers every POST with ``behaviour(n, request, body)``; records the requests it saw."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.closed_early = threading.Event()
        self.lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.requests)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            if request.method == "GET" and request.url.path == "/tokenizer_info":
                # As vLLM started without --enable-tokenizer-info-endpoint: no template reported (not recorded).
                return Response(status_code=404)
            body = await request.json() if request.method == "POST" else {}
            with self.lock:
                n = len(self.requests)
                self.requests.append(body)
                self.headers.append(dict(request.headers))
            return await self.behaviour(n, request, body)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


def sse(payloads: list[Any], *, done: bool = True) -> bytes:
    frames = b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in payloads)
    return frames + (b"data: [DONE]\n\n" if done else b"")


def sse_response(payloads: list[Any]) -> Response:
    return Response(sse(payloads), media_type="text/event-stream")


def chat_chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    tool_calls: Any = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    chunk: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def text_answer(words: list[str]) -> Response:
    chunks = [chat_chunk(w) for w in words]
    chunks.append(
        chat_chunk(
            finish="stop", usage={"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
        )
    )
    return sse_response(chunks)


def slow_stream(stub: Stub, words: int, interval: float, *, then_fail: bool = False) -> Response:
    """SSE chunks every ``interval`` seconds; marks ``stub.closed_early`` if the client leaves first.

    ``then_fail`` breaks the connection after the words, as a crashed upstream would.
    """

    async def frames() -> AsyncIterator[bytes]:
        finished = False
        try:
            for i in range(words):
                yield sse([chat_chunk(f"w{i} ")], done=False)
                await asyncio.sleep(interval)
            if then_fail:
                raise RuntimeError("upstream crashed mid-answer")
            yield sse([chat_chunk(finish="stop")])
            finished = True
        finally:
            if not finished and not then_fail:
                stub.closed_early.set()

    return StreamingResponse(frames(), media_type="text/event-stream")


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": "error", "code": status}}, status_code=status, headers=headers
    )
