"""Helpers of the server tests: a live uvicorn server on a background thread, a scripted binding."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import uvicorn

from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

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


class LiveServer:
    """A uvicorn server for one app, on its own thread and event loop, as a deployment would run it."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="toolrun-test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def weather_script(request: GenerationRequest) -> ScriptedReply:
    """Call the first tool on a user turn; answer with the tool's result on a tool turn."""
    last = request.messages[-1]
    if request.tools and last["role"] == "user":
        return ScriptedReply(calls=[(request.tools[0].name, {"city": "Lisbon"})])
    if last["role"] == "tool":
        return ScriptedReply(text=f"It is {last['content']} in Lisbon.")
    return ScriptedReply(text=f"echo: {last['content']}")


def scripted_ai(script: Callable[[GenerationRequest], ScriptedReply] = weather_script) -> tuple[AsyncAI, ScriptedEngine]:
    ai = AsyncAI(catalog=Catalog())  # built-ins only: the user's config file must not leak into tests
    engine = ScriptedEngine(script)
    ai.register(ModelEntry(name=SCRIPTED, description="Scripted replies for tests.", scripted=True), engine)
    return ai, engine
