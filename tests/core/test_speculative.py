"""Speculative decoding (grammar fast-forward and prompt lookup) writes what plain decoding writes.

Each case runs greedy twice on the one session model, speculation off then on (the switch is read per
request), and the two answers must be identical: calls, text and finish reason. The counters must show
that drafts were evaluated and kept, or the case proved nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from seed_testing import FLIGHTS_MESSAGES, FLIGHTS_TOOL, SEED_MESSAGES, SEED_TOOL

from toolrun import DEFAULT_MODEL

pytestmark = pytest.mark.model

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name."}},
        "required": ["city"],
    },
}
WIND = {
    "name": "set_wind_direction",
    "description": "Set the wind vane's direction.",
    "parameters": {
        "type": "object",
        "properties": {"direction": {"type": "string", "enum": ["north-east", "north-west", "north"]}},
        "required": ["direction"],
    },
}

CASES: dict[str, dict[str, Any]] = {
    "seed": {"messages": SEED_MESSAGES, "tools": [SEED_TOOL]},
    "five-arguments": {"messages": FLIGHTS_MESSAGES, "tools": [FLIGHTS_TOOL]},
    "after-text": {
        "messages": [
            {
                "role": "user",
                "content": "First write one sentence saying you will check, then check the weather in Oslo.",
            }
        ],
        "tools": [WEATHER],
    },
    # Several calls in one turn, with values whose characters take several bytes and tokens each.
    "several-calls-unicode": {
        "messages": [{"role": "user", "content": "What's the weather in Zürich and in 東京 right now?"}],
        "tools": [WEATHER],
    },
    "shared-prefix-enum": {
        "messages": [{"role": "user", "content": "Point the wind vane north-west."}],
        "tools": [WIND],
    },
}


async def _both(
    async_ai: Any, inputs: dict[str, Any], sampling: dict[str, Any] | None = None
) -> tuple[Any, Any, dict[str, int]]:
    """The request answered with speculation off, then on (greedy unless ``sampling`` says otherwise)."""
    engine = await async_ai.engine(DEFAULT_MODEL)
    greedy = {**inputs, **(sampling if sampling is not None else {"temperature": 0})}
    was = engine.speculative
    try:
        engine.speculative = False
        before = dict(engine.stats())
        plain = await async_ai.run(DEFAULT_MODEL, greedy)
        assert engine.stats()["spec_verify_batches"] == before["spec_verify_batches"]  # off means off
        engine.speculative = True
        fast = await async_ai.run(DEFAULT_MODEL, greedy)
    finally:
        engine.speculative = was
    after = engine.stats()
    gained = {key: after[key] - before[key] for key in after if key.startswith("spec_")}
    return plain, fast, gained


def _answer(out: dict[str, Any]) -> tuple[Any, ...]:
    calls = [(c["name"], c["arguments"]) for c in out.get("tool_calls") or []]
    return calls, out.get("response"), out.get("finish_reason")


@pytest.mark.parametrize("case", list(CASES))
async def test_greedy_answers_are_identical_with_speculation(async_ai: Any, case: str) -> None:
    plain, fast, gained = await _both(async_ai, CASES[case])
    assert _answer(fast) == _answer(plain)
    assert plain["tool_calls"], "every case is a call turn (else it tests text only)"
    assert gained["spec_forced_accepted_tokens"] > 0  # the grammar's fixed text went in batches
    assert gained["spec_forced_accepted_tokens"] + gained["spec_accepted_tokens"] >= len(plain["tool_calls"]) * 8
    if case == "seed":
        # The seed's call copies nothing from the prompt ("cloudflare" is lower case there), but the call
        # skeleton gives '": "' after the key: the lookup's drafts are kept too.
        assert gained["spec_drafted_tokens"] > 0 and gained["spec_accepted_tokens"] > 0


@pytest.mark.parametrize("case", ["seed", "five-arguments"])
async def test_default_sampling_draws_the_same_answers_with_speculation(async_ai: Any, case: str) -> None:
    """As users run it (temperature 0.6): the sampler runs at each drafted position as plain decoding
    would, with the same random draws, so with a seed the answer is the same on and off, run after run."""
    for seed in (1, 2, 3):
        plain, fast, _ = await _both(async_ai, CASES[case], {"seed": seed})
        assert _answer(fast) == _answer(plain), seed
        assert plain["tool_calls"], seed


async def test_streamed_arguments_still_arrive_in_pieces(async_ai: Any) -> None:
    engine = await async_ai.engine(DEFAULT_MODEL)
    inputs = {**CASES["five-arguments"], "temperature": 0, "stream": True}
    was, engine.speculative = engine.speculative, True
    try:
        events = [e async for e in await async_ai.run(DEFAULT_MODEL, inputs)]
    finally:
        engine.speculative = was
    deltas = [e["tool_call_delta"]["arguments"] for e in events if "tool_call_delta" in e]
    calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
    assert len(calls) == 1 and len(deltas) >= 5  # one delta per decoded token of the value text, not one blob
    import json

    assert json.loads("".join(deltas)) == calls[0]["arguments"]
