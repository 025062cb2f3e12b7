"""Helpers of the server tests: a live uvicorn server on a background thread, a scripted binding."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from _servers import UvicornThread

from toolrun._wire import final_event
from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.engines import Engine, GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply
from toolrun.server import uvicorn_config

SCRIPTED = "@test/scripted"
API_KEY = "test-key-123"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


class LiveServer(UvicornThread):
    """A uvicorn server for one app with ``toolrun serve``'s own settings, as a deployment would run it."""

    def __init__(self, app: Any) -> None:
        super().__init__(config=uvicorn_config(app, "127.0.0.1", 0, log_level="warning"))


def weather_script(request: GenerationRequest) -> ScriptedReply:
    """Call the first tool on a user turn; answer with the tool's result on a tool turn."""
    last = request.messages[-1]
    if request.tools and last["role"] == "user":
        return ScriptedReply(calls=[(request.tools[0].name, {"city": "Lisbon"})])
    if last["role"] == "tool":
        return ScriptedReply(text=f"It is {last['content']} in Lisbon.")
    return ScriptedReply(text=f"echo: {last['content']}")


def scripted_ai(
    script: Callable[[GenerationRequest], ScriptedReply] = weather_script,
) -> tuple[AsyncAI, ScriptedEngine]:
    ai = AsyncAI(catalog=Catalog())  # built-ins only: the user's config file must not leak into tests
    engine = ScriptedEngine(script)
    ai.register(ModelEntry(name=SCRIPTED, description="Scripted replies for tests."), engine)
    return ai, engine


class PacedEngine(Engine):
    """Writes "tok" every ``interval`` seconds up to max_tokens, and records whether it was stopped early.

    The scripted engine answers at once; disconnect tests need a generation that
    is still running when the client leaves.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.produced = 0
        self.started = threading.Event()
        self.closed = threading.Event()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[dict[str, Any]]:
        self.started.set()
        try:
            for _ in range(request.sampling.max_tokens):
                await asyncio.sleep(self.interval)
                self.produced += 1
                yield {"response": "tok "}
            yield final_event(1, self.produced, "length")
        finally:
            self.closed.set()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class FailingEngine(Engine):
    """Streams one token, then fails the way a remote engine can: after the HTTP status is sent."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[dict[str, Any]]:
        yield {"response": "partial"}
        from toolrun._errors import EngineError

        raise EngineError("the remote engine closed the connection mid-answer")
