"""Limits and faults: body size, max_tokens, the bounded queue, disconnects, auth policy, health, metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from server_testing import API_KEY, SCRIPTED, LiveServer, PacedEngine, scripted_ai, wait_until

from toolrun.ai import ModelEntry
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedReply
from toolrun.server import create_app, serve

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ASK = [{"role": "user", "content": "hello"}]
PACED = "@test/paced"


def workers_url(server: LiveServer, model: str = SCRIPTED) -> str:
    return f"{server.url}/client/v4/accounts/a/ai/run/{model}"


def metric(server: LiveServer, name: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when the series does not exist yet)."""
    text = httpx.get(server.url + "/metrics", headers=AUTH).text
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def paced_server(start_server, **options) -> tuple[LiveServer, PacedEngine]:
    ai, _ = scripted_ai()
    engine = PacedEngine(interval=0.01)
    ai.register(ModelEntry(name=PACED, description="One token per 10 ms."), engine)
    return start_server(ai, api_keys=[API_KEY], **options), engine


def test_body_size_cap(start_server) -> None:
    server = start_server(scripted_ai()[0], api_keys=[API_KEY], max_body_bytes=1000)
    big = {"messages": [{"role": "user", "content": "x" * 2000}]}
    declared = httpx.post(workers_url(server), json=big, headers=AUTH)
    assert declared.status_code == 413
    assert "1000" in declared.json()["errors"][0]["message"]

    def chunked():  # no Content-Length: the cap must hold while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}]}'

    streamed = httpx.post(server.url + "/v1/chat/completions", content=chunked(), headers=AUTH)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    small = httpx.post(workers_url(server), json={"messages": ASK}, headers=AUTH)
    assert small.status_code == 200


def test_max_tokens_cap(start_server) -> None:
    ai, engine = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY], max_tokens_cap=64)
    over = httpx.post(workers_url(server), json={"messages": ASK, "max_tokens": 65}, headers=AUTH)
    assert over.status_code == 400
    assert over.json()["errors"][0]["message"] == "max_tokens: max_tokens is 65, but this server allows at most 64"
    assert httpx.post(workers_url(server), json={"messages": ASK, "max_tokens": 64}, headers=AUTH).status_code == 200
    assert engine.requests[-1].sampling.max_tokens == 64
    # No max_tokens: the binding's default (256) would exceed the cap, so the cap applies.
    httpx.post(server.url + "/v1/chat/completions", json={"model": SCRIPTED, "messages": ASK}, headers=AUTH)
    assert engine.requests[-1].sampling.max_tokens == 64


async def test_overload_answers_429_with_retry_after(start_server) -> None:
    def slow(request: GenerationRequest) -> ScriptedReply:
        return ScriptedReply(text="done", delay=1.0)

    ai, _ = scripted_ai(slow)
    server = start_server(ai, api_keys=[API_KEY], max_queue=2)
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        requests = [client.post(workers_url(server), json={"messages": ASK}) for _ in range(4)]
        requests += [
            client.post(server.url + "/v1/chat/completions", json={"model": SCRIPTED, "messages": ASK})
            for _ in range(4)
        ]
        responses = await asyncio.gather(*requests)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200] + [429] * 6
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            body = response.json()
            if "error" in body:
                assert body["error"]["code"] == "overloaded" and body["error"]["type"] == "rate_limit_error"
            else:
                assert body["success"] is False and body["errors"][0]["code"] == 3040
        else:
            assert "done" in response.text
    assert metric(server, "toolrun_rejected_requests_total", model=SCRIPTED) == 6
    assert metric(server, "toolrun_queue_depth", model=SCRIPTED) == 0
    # The slots came back: the next request is admitted.
    assert httpx.post(workers_url(server), json={"messages": ASK}, headers=AUTH).status_code == 200


def test_disconnect_mid_stream_stops_generation(start_server) -> None:
    server, engine = paced_server(start_server)
    body = {"messages": ASK, "stream": True, "max_tokens": 2000}  # 20 s if nobody stops it
    with httpx.stream("POST", workers_url(server, PACED), json=body, headers=AUTH) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]  # three events and their blank separators
    assert received[0].startswith("data: ")
    assert engine.closed.wait(5), "generation went on after the client left"
    assert engine.produced < 200
    assert wait_until(lambda: httpx.get(server.url + "/health").json()["queue_depth"][PACED] == 0)
    assert metric(server, "toolrun_client_disconnects_total", api="workers_ai") == 1


def test_disconnect_while_waiting_stops_generation(start_server) -> None:
    server, engine = paced_server(start_server)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.url + "/v1/chat/completions",
            headers=AUTH,
            timeout=0.5,
            json={"model": PACED, "messages": ASK, "max_tokens": 2000},
        )
    assert engine.closed.wait(5), "generation went on after the client left"
    assert engine.produced < 200
    assert wait_until(lambda: httpx.get(server.url + "/health").json()["queue_depth"][PACED] == 0)
    assert wait_until(lambda: metric(server, "toolrun_client_disconnects_total", api="openai") == 1)


async def test_without_keys_only_loopback_clients_are_served() -> None:
    app = create_app(scripted_ai()[0])
    body = {"model": SCRIPTED, "messages": ASK}
    for client_host, status in (("203.0.113.7", 401), ("127.0.0.1", 200), ("::1", 200)):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == status, client_host
    assert "only answers clients on this machine" in response.text or status == 200


def test_serve_refuses_a_public_host_without_keys() -> None:
    with pytest.raises(ValueError, match="without an API key"):
        serve("0.0.0.0", 0)


def test_health_and_metrics(start_server) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    health = httpx.get(server.url + "/health")  # no key needed
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # Scrapers carry no key (as with vLLM and llama-server); the page holds counts, never prompts or answers.
    assert httpx.get(server.url + "/metrics").status_code == 200

    for _ in range(3):
        httpx.post(server.url + "/v1/chat/completions", json={"model": SCRIPTED, "messages": ASK}, headers=AUTH)
    httpx.post(server.url + "/v1/chat/completions", json={"model": "@nope/x", "messages": ASK}, headers=AUTH)
    with httpx.stream("POST", workers_url(server), json={"messages": ASK, "stream": True}, headers=AUTH) as r:
        r.read()

    assert metric(server, "toolrun_http_requests_total", api="openai", endpoint="chat_completions", status="200") == 3
    assert metric(server, "toolrun_http_requests_total", api="openai", endpoint="chat_completions", status="404") == 1
    assert metric(server, "toolrun_http_requests_total", api="workers_ai", endpoint="run", status="200") == 1
    assert metric(server, "toolrun_http_request_duration_seconds_count", api="openai", endpoint="chat_completions") == 4
    # "echo: hello" is two scripted tokens, four requests generated it.
    assert metric(server, "toolrun_completion_tokens_total", model=SCRIPTED) == 8
    assert metric(server, "toolrun_request_tokens_per_second_count", model=SCRIPTED) == 4
    assert metric(server, "toolrun_queue_depth", model=SCRIPTED) == 0


def test_failure_after_the_stream_started_is_reported_in_band(start_server) -> None:
    import json

    import openai
    from server_testing import FailingEngine

    ai, _ = scripted_ai()
    ai.register(ModelEntry(name="@test/failing", description="fails mid-stream"), FailingEngine())
    server = start_server(ai, api_keys=[API_KEY])

    with httpx.stream(
        "POST", workers_url(server, "@test/failing"), json={"messages": ASK, "stream": True}, headers=AUTH
    ) as response:
        assert response.status_code == 200  # sent before the failure
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[0] == {"response": "partial"}
    assert events[-1]["success"] is False
    assert events[-1]["errors"][0]["message"] == "the remote engine closed the connection mid-answer"

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIError, match="closed the connection mid-answer"):
        for _ in client.chat.completions.create(model="@test/failing", messages=ASK, stream=True):
            pass
    assert metric(server, "toolrun_queue_depth", model="@test/failing") == 0
