"""The server on the real local model, driven by the official SDKs (slow: ``-m model`` selects them)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from cloudflare import Cloudflare
from openai import OpenAI
from server_testing import API_KEY, WEATHER_TOOL, LiveServer

from toolrun import DEFAULT_MODEL

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "What's the weather in Lisbon?"}]
GREEDY = {"temperature": 0, "max_tokens": 64}


@pytest.fixture
def real_server(start_server, async_ai) -> LiveServer:
    return start_server(async_ai, api_keys=[API_KEY], max_queue=4)


def is_lisbon(arguments: dict) -> bool:
    return set(arguments) == {"city"} and "lisbo" in arguments["city"].lower()


def test_cloudflare_sdk_tool_round_trip(real_server: LiveServer) -> None:
    cf = Cloudflare(api_token=API_KEY, base_url=real_server.url + "/client/v4", max_retries=0, timeout=600)
    first = cf.ai.run(DEFAULT_MODEL, account_id="acct", messages=ASK, tools=[WEATHER_TOOL], **GREEDY)
    (call,) = first["tool_calls"]
    assert call["name"] == "get_weather" and is_lisbon(call["arguments"]), first

    second = cf.ai.run(
        DEFAULT_MODEL,
        account_id="acct",
        tools=[WEATHER_TOOL],
        **GREEDY,
        messages=[
            *ASK,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": "21°C and sunny"},
        ],
    )
    assert second["tool_calls"] == []
    assert "21" in second["response"], second


def test_openai_sdk_streamed_tool_call(real_server: LiveServer) -> None:
    client = OpenAI(base_url=real_server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=600)
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=ASK, stream=True, tools=[{"type": "function", "function": WEATHER_TOOL}], **GREEDY
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or ():
            name += delta.function.name or ""
            arguments += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and is_lisbon(json.loads(arguments))
    assert finish == "tool_calls"


async def test_64_concurrent_clients(real_server: LiveServer) -> None:
    """Overload gets 429 at once, never a 5xx or a hang; every admitted request gets a valid tool call."""
    base = real_server.url
    workers = {"messages": ASK, "tools": [WEATHER_TOOL], **GREEDY}
    chat = {
        "model": DEFAULT_MODEL,
        "messages": ASK,
        "tools": [{"type": "function", "function": WEATHER_TOOL}],
        **GREEDY,
    }

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, float, dict]:
        started = time.perf_counter()
        if i % 2:
            r = await client.post(f"{base}/client/v4/accounts/a/ai/run/{DEFAULT_MODEL}", json=workers)
        else:
            r = await client.post(f"{base}/v1/chat/completions", json=chat)
        return r.status_code, time.perf_counter() - started, {**r.json(), "retry-after": r.headers.get("retry-after")}

    limits = httpx.Limits(max_connections=64)
    # The client's timeout is the hang guard; how long the admitted requests take is not asserted:
    # on a loaded 2-core machine the four of them took 180 s.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600, limits=limits) as client:
        results = await asyncio.gather(*(one(client, i) for i in range(64)))

    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429}, statuses
    assert 4 <= statuses.count(200) < 64 and statuses.count(429) > 0
    # "At once" by behaviour, not by a time bound: every refusal came back before any admitted request
    # finished, so none of them waited for a slot.
    refused = [seconds for status, seconds, _ in results if status == 429]
    admitted = [seconds for status, seconds, _ in results if status == 200]
    assert max(refused) < min(admitted), (max(refused), min(admitted))
    for status, _, body in results:
        if status == 429:
            assert int(body["retry-after"]) >= 1
            continue
        if "choices" in body:
            (call,) = body["choices"][0]["message"]["tool_calls"]
            name, arguments = call["function"]["name"], json.loads(call["function"]["arguments"])
        else:
            (call,) = body["result"]["tool_calls"]
            name, arguments = call["name"], call["arguments"]
        assert name == "get_weather" and is_lisbon(arguments), body
