"""SSE keep-alive (issue #30 item 6): a stream whose first event is slow (a queue wait, a long prefill)
starts anyway and sends ``: keep-alive`` comments until the model speaks, on every streaming API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import OpenAI
from server_testing import API_KEY, SCRIPTED, LiveServer, scripted_ai, wait_until

from toolrun._errors import InvalidInputError
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedReply
from toolrun.server import ServerConfig

KEEPALIVE = ": keep-alive"
ASK = [{"role": "user", "content": "hello there"}]


def slow_script(delay: float) -> Callable[[GenerationRequest], ScriptedReply]:
    def reply(request: GenerationRequest) -> ScriptedReply:
        return ScriptedReply(text=f"echo: {request.messages[-1]['content']}", delay=delay)

    return reply


@pytest.fixture
def slow_server(start_server) -> LiveServer:
    # The model takes 1 s to its first token; the server keeps a stream alive after 0.05 s of silence.
    ai, _ = scripted_ai(slow_script(1.0))
    return start_server(ai, api_keys=[API_KEY], keepalive_interval=0.05)


STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat completions": ("/v1/chat/completions", {"model": SCRIPTED, "messages": ASK}),
    "workers ai": (f"/client/v4/accounts/acct/ai/run/{SCRIPTED}", {"messages": ASK}),
    "responses": ("/v1/responses", {"model": SCRIPTED, "input": "hello there"}),
}


@pytest.mark.parametrize("api", STREAMS)
def test_a_comment_arrives_before_the_first_event(slow_server: LiveServer, api: str) -> None:
    path, body = STREAMS[api]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("POST", slow_server.url + path, json={**body, "stream": True}, headers=headers) as answer:
        assert answer.status_code == 200
        lines = [line for line in answer.iter_lines() if line]
    first_output = next(i for i, line in enumerate(lines) if "echo" in line)
    assert KEEPALIVE in lines[:first_output], lines[: first_output + 1]
    assert lines.count(KEEPALIVE) >= 1
    # Whatever came before the model's first word is a comment or the API's own opening events.
    assert all(line == KEEPALIVE or line.startswith(("data: ", "event: ")) for line in lines)


def test_the_sdk_reads_a_kept_alive_stream(slow_server: LiveServer) -> None:
    client = OpenAI(base_url=slow_server.url + "/v1", api_key=API_KEY, max_retries=0)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model=SCRIPTED, messages=ASK, stream=True)
        if c.choices
    )
    assert text == "echo: hello there"
    final = None
    with client.responses.stream(model=SCRIPTED, input="hello there") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "echo: hello there"


def test_a_client_leaving_during_the_wait_stops_the_work(start_server) -> None:
    ai, _ = scripted_ai(slow_script(120.0))  # the first token would take two minutes
    server = start_server(ai, api_keys=[API_KEY], keepalive_interval=0.05)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    path, body = STREAMS["chat completions"]
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, headers=headers) as answer:
        for line in answer.iter_lines():
            if line == KEEPALIVE:
                break  # the stream is open and waiting: leave now
    health = lambda: httpx.get(server.url + "/health").json()["queue_depth"].get(SCRIPTED, 0)
    # A hang guard, not a speed bound: the slot is back long before the 120 s the first token would take.
    assert wait_until(lambda: health() == 0, timeout=30.0)


def test_the_interval_is_checked() -> None:
    assert ServerConfig().keepalive_interval == 5.0
    with pytest.raises(InvalidInputError) as caught:
        ServerConfig(keepalive_interval=0)
    assert caught.value.where == "keepalive_interval"
