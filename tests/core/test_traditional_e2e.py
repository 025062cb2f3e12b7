"""End to end on the real local model: the traditional function-calling flow of Workers AI."""

from __future__ import annotations

import json

import pytest
from seed_testing import SEED_MESSAGES, SEED_TOOL

from toolrun import DEFAULT_MODEL, ContextOverflowError

pytestmark = pytest.mark.model

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
GREEDY = {"temperature": 0}


def test_seed_traditional_flow(ai, github_standin):
    """The seed example, both halves: the model asks for the tool, we run it, it answers from the result."""
    messages = [dict(m) for m in SEED_MESSAGES]
    out = ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [SEED_TOOL], **GREEDY})
    assert out["tool_calls"], out
    call = out["tool_calls"][0]
    assert call["name"] == "getGithubUser"
    assert call["arguments"]["username"].lower() == "cloudflare"
    assert call["id"]

    result = github_standin.get_user(call["arguments"]["username"])
    messages += [
        {"role": "assistant", "content": "", "tool_call": call["name"]},
        {"role": "tool", "name": call["name"], "content": json.dumps(result)},
    ]
    final = ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [SEED_TOOL], **GREEDY})
    assert final["tool_calls"] == []
    # The answer must use the stand-in's data, not only echo the question.
    facts = ("organization", "san francisco", "513", "9400", "9,400", "cloudflare.com")
    assert any(f in final["response"].lower() for f in facts), final["response"]
    assert final["usage"]["prompt_tokens"] > 0 and final["usage"]["completion_tokens"] > 0


async def test_openai_style_result_turn_and_usage(async_ai):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    out = await async_ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [WEATHER_TOOL], **GREEDY})
    call = out["tool_calls"][0]
    assert call["name"] == "get_weather" and "paris" in call["arguments"]["city"].lower()
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"temperature_c": 17, "sky": "overcast"})},
    ]
    final = await async_ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [WEATHER_TOOL], **GREEDY})
    assert final["tool_calls"] == []
    assert "17" in final["response"] or "overcast" in final["response"].lower()
    usage = final["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_parallel_calls_in_one_turn(async_ai):
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "What's the weather in Paris and in Tokyo?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            **GREEDY,
        },
    )
    cities = sorted(c["arguments"]["city"].lower() for c in out["tool_calls"])
    assert len(out["tool_calls"]) >= 2, out
    assert any("paris" in c for c in cities) and any("tokyo" in c for c in cities)
    assert len({c["id"] for c in out["tool_calls"]}) == len(out["tool_calls"])


async def test_tool_choice_none_answers_in_text(async_ai):
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "none",
            "max_tokens": 40,
            **GREEDY,
        },
    )
    assert out["tool_calls"] == []
    assert out["response"] and "<tool_call>" not in out["response"]


async def test_tool_choice_required_forces_a_valid_call_even_for_chit_chat(async_ai):
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "Hello there, how are you doing?"}],
            "tools": [SEED_TOOL, WEATHER_TOOL],
            "tool_choice": "required",
            **GREEDY,
        },
    )
    assert out["tool_calls"]
    for call in out["tool_calls"]:
        assert call["name"] in {"getGithubUser", "get_weather"}
        required = "username" if call["name"] == "getGithubUser" else "city"
        assert isinstance(call["arguments"][required], str)


async def test_named_tool_choice_calls_that_tool(async_ai):
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "Tell me about the city of Lyon."}],
            "tools": [SEED_TOOL, WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            **GREEDY,
        },
    )
    assert [c["name"] for c in out["tool_calls"]] == ["get_weather"]
    assert out["tool_calls"][0]["arguments"].get("unit") in (None, "celsius", "fahrenheit")


async def test_streaming_text_and_tool_call_events(async_ai):
    events = [
        e
        async for e in await async_ai.run(
            DEFAULT_MODEL,
            {
                "messages": [{"role": "user", "content": "Who is torvalds on github?"}],
                "tools": [SEED_TOOL],
                "stream": True,
                **GREEDY,
            },
        )
    ]
    calls = [c for e in events for c in e.get("tool_calls", ())]
    assert calls and calls[0]["name"] == "getGithubUser"
    assert calls[0]["arguments"]["username"].lower() == "torvalds"
    assert events[-1]["finish_reason"] == "tool_calls" and "usage" in events[-1]
    # The arguments streamed as they were decoded (under the grammar), before the checked call.
    deltas = [e["tool_call_delta"] for e in events if "tool_call_delta" in e]
    assert len(deltas) > 1 and {d["id"] for d in deltas} == {calls[0]["id"]}
    assert json.loads("".join(d["arguments"] for d in deltas)) == calls[0]["arguments"]
    first_call_at = next(i for i, e in enumerate(events) if "tool_calls" in e)
    assert all(i < first_call_at for i, e in enumerate(events) if "tool_call_delta" in e)

    text_events = [
        e
        async for e in await async_ai.run(
            DEFAULT_MODEL,
            {
                "messages": [{"role": "user", "content": "Count from 1 to 5."}],
                "stream": True,
                "max_tokens": 30,
                **GREEDY,
            },
        )
    ]
    deltas = [e["response"] for e in text_events[:-1]]
    assert len(deltas) > 3 and "1" in "".join(deltas)
    assert text_events[-1]["finish_reason"] in ("stop", "length")


async def test_max_tokens_reports_length(async_ai):
    out = await async_ai.run(
        DEFAULT_MODEL, {"messages": [{"role": "user", "content": "Write a long poem."}], "max_tokens": 5, **GREEDY}
    )
    assert out["usage"]["completion_tokens"] == 5 and out["finish_reason"] == "length"


async def test_response_format_json_schema(async_ai):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    out = await async_ai.run(
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "Invent a person."}],
            "response_format": {"type": "json_schema", "json_schema": schema},
            "max_tokens": 60,
            **GREEDY,
        },
    )
    value = json.loads(out["response"])
    assert isinstance(value["name"], str) and isinstance(value["age"], int)


async def test_context_overflow_is_an_error_with_token_counts(async_ai):
    with pytest.raises(ContextOverflowError) as info:
        await async_ai.run(DEFAULT_MODEL, {"messages": [{"role": "user", "content": "word " * 9000}]})
    err = info.value
    assert err.prompt_tokens > 8192 - 256 and err.context_window == 8192 and err.status_code == 400
    assert str(err.prompt_tokens) in str(err)
