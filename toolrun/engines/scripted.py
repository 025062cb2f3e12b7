"""A deterministic, instant engine: replies come from a script, not a model.

For testing loop logic (run_with_tools, the server) and for measuring
framework overhead without inference in the way. Never the only proof that
something works: the end-to-end tests run the real model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .._wire import Event, final_event, new_call_id
from ._base import Engine, GenerationRequest
from .turn import without_repeats


@dataclass
class ScriptedReply:
    text: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Seconds to wait before answering (to simulate a slow model).
    delay: float = 0.0


Script: TypeAlias = Iterable[ScriptedReply] | Callable[[GenerationRequest], ScriptedReply]


class ScriptedEngine(Engine):
    """Answers each request with the next scripted reply (or what a function returns)."""

    def __init__(self, script: Script | None = None, *, context_window: int = 8192) -> None:
        self.context_window = context_window
        self._fn = script if callable(script) else None
        self._replies = iter(script) if script is not None and not callable(script) else None
        self.requests: list[GenerationRequest] = []

    def _next(self, request: GenerationRequest) -> ScriptedReply:
        if self._fn is not None:
            return self._fn(request)
        if self._replies is not None:
            return next(self._replies, ScriptedReply("(script exhausted)"))
        # Without a script: echo the last message, which is handy for server smoke tests.
        last = request.messages[-1]["content"] if request.messages else (request.raw_prompt or "")
        return ScriptedReply(f"echo: {last}")

    def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        # Its calls come whole, as a server's own parser's do: repeats of answered calls are dropped the same way.
        return without_repeats(self._generate, request)

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        self.requests.append(request)
        reply = self._next(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        words = reply.text.split(" ") if reply.text else []
        for i, word in enumerate(words):
            yield {"response": word if i == 0 else " " + word}
        calls = reply.calls if request.tool_choice != "none" else []
        for i, (name, args) in enumerate(calls):
            yield {"tool_calls": [{"index": i, "id": new_call_id(), "name": name, "arguments": dict(args)}]}
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        completion = len(words) + 8 * len(calls)
        yield final_event(prompt_tokens, completion, "tool_calls" if calls else "stop")
