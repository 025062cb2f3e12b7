"""Whether to call, and how many calls: decided from the model's probabilities, not sampled.

Run as users run it — Workers AI's default temperature (0.6), the seed's own prompt and
descriptions — and repeated enough to tell "always" from "seven times in ten".
"""

from __future__ import annotations

import pytest
from seed_testing import SEED_MESSAGES, SEED_TOOL

from toolrun import DEFAULT_MODEL

pytestmark = pytest.mark.model

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def seed_call_is_right(out: dict) -> bool:
    calls = out["tool_calls"]
    return (
        len(calls) == 1
        and calls[0]["name"] == "getGithubUser"
        and calls[0]["arguments"].get("username", "").lower() == "cloudflare"
    )


async def test_the_seed_example_at_default_sampling_calls_every_time(async_ai) -> None:
    # 30 runs: at a true rate of 70 % all 30 would pass once in 40,000 tries; at 98 %, 55 % of the time.
    runs = 30
    right = 0
    for _ in range(runs):
        out = await async_ai.run(
            DEFAULT_MODEL,
            {"messages": SEED_MESSAGES, "tools": [SEED_TOOL]},
        )
        right += seed_call_is_right(out)
    assert right >= runs - 1, f"{right}/{runs}"


async def test_temperature_does_not_change_whether_a_tool_is_called(async_ai) -> None:
    for temperature in (0.0, 1.0, 1.8):
        for _ in range(3):
            out = await async_ai.run(
                DEFAULT_MODEL,
                {
                    "messages": SEED_MESSAGES,
                    "tools": [SEED_TOOL],
                    "temperature": temperature,
                    "max_tokens": 64,
                },
            )
            # The call is chosen and written the same at every temperature (its arguments at the
            # catalog's call_temperature); only text answers are sampled at the request's.
            calls = [(c["name"], {k: v.lower() for k, v in c["arguments"].items()}) for c in out["tool_calls"]]
            assert calls == [("getGithubUser", {"username": "cloudflare"})], (temperature, out)


async def test_a_question_no_tool_fits_gets_text(async_ai) -> None:
    for _ in range(3):
        out = await async_ai.run(
            DEFAULT_MODEL,
            {"messages": [{"role": "user", "content": "Write a haiku about autumn leaves."}], "tools": [WEATHER]},
        )
        assert out["tool_calls"] == [] and out["response"], out


async def test_several_cities_get_several_calls_with_tool_choice_auto(async_ai) -> None:
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "What's the weather in Paris, London and Tokyo?"}],
            "tools": [WEATHER],
        },
    )
    cities = sorted(c["arguments"]["city"].lower() for c in out["tool_calls"])
    assert len(cities) == 3 and len(set(cities)) == 3, out
    assert all(any(name in c for c in cities) for name in ("paris", "london", "tokyo"))


async def test_one_city_gets_one_call_not_a_made_up_second(async_ai) -> None:
    for _ in range(3):
        out = await async_ai.run(
            DEFAULT_MODEL,
            {"messages": [{"role": "user", "content": "What's the weather in Lisbon?"}], "tools": [WEATHER]},
        )
        assert len(out["tool_calls"]) == 1, out
