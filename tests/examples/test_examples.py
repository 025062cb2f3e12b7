"""The seed's examples, as ported in examples/, run as users run them: default sampling, the seed's own
prompts and descriptions, the real default model, api.github.com's loopback stand-in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from toolrun import DEFAULT_MODEL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import _offline  # noqa: E402
import embedded_openapi_github  # noqa: E402
import embedded_weather  # noqa: E402
import traditional_github  # noqa: E402
import traditional_weather  # noqa: E402

pytestmark = pytest.mark.model


def test_traditional_github(ai) -> None:
    out = traditional_github.main(ai, DEFAULT_MODEL)
    assert out["tool_call"]["name"] == "getGithubUser"
    assert out["tool_call"]["arguments"]["username"].lower() == "cloudflare"
    assert out["github"]["login"] == "cloudflare"  # the stand-in answered: the User-Agent went along
    final = out["final"]
    assert final["tool_calls"] == [] and final["response"].strip()  # sampled text: see the embedded example


def test_traditional_weather(ai) -> None:
    out = traditional_weather.main(ai, DEFAULT_MODEL)
    (call,) = out["tool_calls"]
    assert call["name"] == "getWeather"
    latitude, longitude = float(call["arguments"]["latitude"]), float(call["arguments"]["longitude"])
    assert 50 < latitude < 53 and -1.5 < longitude < 1.5  # London, near enough


async def test_embedded_weather_streams_the_answer(async_ai) -> None:
    embedded_weather.calls.clear()
    answer, stream = await embedded_weather.main(async_ai, DEFAULT_MODEL)
    assert [c.lower() for c in embedded_weather.calls][:1] and "mumbai" in embedded_weather.calls[0].lower()
    assert "mumbai" in answer.lower()
    tool_turns = [m for m in stream.messages if m["role"] == "tool"]
    assert tool_turns and tool_turns[0]["name"] == "get-weather"


async def test_embedded_openapi_github_with_the_seeds_override(async_ai) -> None:
    _offline.requests_seen.clear()
    out = await embedded_openapi_github.main(async_ai, DEFAULT_MODEL)
    paths = [path for path, _ in _offline.requests_seen]
    assert any(p.lower() in ("/users/cloudflare", "/orgs/cloudflare") for p in paths), paths
    # The seed's matcher (url.hostname === "api.github.com") matched, so GitHub's User-Agent rule was met.
    assert all(agent and agent.startswith("Mozilla/5.0") for _, agent in _offline.requests_seen)
    tool_results = [json.loads(m["content"]) for m in out["messages"] if m["role"] == "tool"]
    assert any(r.get("login") == "cloudflare" for r in tool_results if isinstance(r, dict))
    # The answer is sampled text (temperature 0.6): the 0.5B answered "I'm sorry, but I can't assist with
    # that." after the tool's result in 1 of 12 runs (the call itself is decided, not sampled), so the
    # test asks for a text answer after the result, not for its wording.
    assert out["response"].strip() and out["messages"][-1] == {"role": "assistant", "content": out["response"]}
