"""The binding's own logic on a scripted engine: call checking, typing, repeat guard, sync face, streaming."""

from __future__ import annotations

import dataclasses

import pytest

from toolrun import AI, AsyncAI
from toolrun.ai import Catalog, ModelEntry, parse_inputs
from toolrun.ai._inputs import build_request
from toolrun.engines import SamplingParams
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

AREA = {
    "name": "area",
    "description": "Area of a rectangle",
    "parameters": {
        "type": "object",
        "properties": {
            "sides": {"type": "array", "items": {"type": "number"}},
            "unit": {"type": "string", "enum": ["cm", "in"]},
        },
        "required": ["sides"],
    },
}
USER = [{"role": "user", "content": "area of 2 by 3?"}]


def scripted(*replies: ScriptedReply) -> tuple[AsyncAI, ScriptedEngine]:
    ai = AsyncAI(catalog=Catalog())
    engine = ScriptedEngine(list(replies))
    ai.register(ModelEntry(name="@test/scripted", description="s"), engine)
    return ai, engine


async def test_invalid_and_unknown_calls_never_reach_the_caller():
    ai, _ = scripted(ScriptedReply(calls=[("area", {"sides": "two"}), ("volume", {}), ("area", {"sides": [2, 3]})]))
    out = await ai.run("@test/scripted", {"messages": USER, "tools": [AREA]})
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [("area", {"sides": [2.0, 3.0]})]
    assert isinstance(out["tool_calls"][0]["arguments"]["sides"][0], float)
    assert out["finish_reason"] == "tool_calls"


async def test_only_invalid_calls_finish_as_stop():
    ai, _ = scripted(ScriptedReply(text="hmm", calls=[("area", {"unit": "furlong"})]))
    out = await ai.run("@test/scripted", {"messages": USER, "tools": [AREA]})
    assert out["tool_calls"] == [] and out["finish_reason"] == "stop" and out["response"] == "hmm"


async def test_a_repeated_call_is_answered_without_tools():
    ai, engine = scripted(ScriptedReply(calls=[("area", {"sides": [2, 3]})]), ScriptedReply(text="It is 6."))
    messages = USER + [
        {"role": "assistant", "content": "", "tool_call": "area"},  # Workers AI short form: no arguments kept
        {"role": "tool", "name": "area", "content": "6"},
    ]
    out = await ai.run("@test/scripted", {"messages": messages, "tools": [AREA]})
    assert out == {**out, "response": "It is 6.", "tool_calls": []}
    assert [r.tool_choice for r in engine.requests] == ["auto", "none"]


def answered_area(question: str, sides: list[int], result: str) -> list[dict]:
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "area", "arguments": f'{{"sides": {sides}}}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]


async def test_a_new_call_after_a_result_is_kept():
    ai, engine = scripted(ScriptedReply(calls=[("area", {"sides": [4, 5]})]))
    messages = answered_area("Area of 2 by 3, and of 4 by 5?", [2, 3], "6")
    out = await ai.run("@test/scripted", {"messages": messages, "tools": [AREA]})
    assert out["tool_calls"][0]["arguments"] == {"sides": [4.0, 5.0]}
    assert engine.requests[0].messages[-1]["name"] == "area"  # the result turn learned its call's name


async def test_a_call_that_feeds_the_result_back_is_a_repeat():
    # The 0.5B model, given sum(a, b), asks for sum(result, b): nothing the user asked for.
    ai, engine = scripted(ScriptedReply(calls=[("area", {"sides": [6, 3], "unit": "cm"})]), ScriptedReply(text="6."))
    out = await ai.run("@test/scripted", {"messages": answered_area("area of 2 by 3?", [2, 3], "6"), "tools": [AREA]})
    assert (out["response"], out["tool_calls"]) == ("6.", [])
    assert [r.tool_choice for r in engine.requests] == ["auto", "none"]


async def test_only_the_repeats_of_a_turn_are_dropped():
    ai, engine = scripted(ScriptedReply(calls=[("area", {"sides": [2, 3], "unit": "in"}), ("area", {"sides": [4, 5]})]))
    messages = answered_area("Area of 2 by 3, and of 4 by 5?", [2, 3], "6")
    out = await ai.run("@test/scripted", {"messages": messages, "tools": [AREA]})
    assert [c["arguments"] for c in out["tool_calls"]] == [{"sides": [4.0, 5.0]}]
    assert len(engine.requests) == 1


async def test_stream_events_and_errors_before_the_first_event():
    ai, _ = scripted(ScriptedReply(text="one two", calls=[("area", {"sides": [1]})]))
    events = [e async for e in await ai.run("@test/scripted", {"messages": USER, "tools": [AREA], "stream": True})]
    assert [e["response"] for e in events if "response" in e and "usage" not in e] == ["one", " two"]
    calls = [c for e in events for c in e.get("tool_calls", ())]
    assert calls[0]["index"] == 0 and calls[0]["arguments"] == {"sides": [1.0]}
    assert events[-1]["finish_reason"] == "tool_calls"


def test_sync_face_runs_and_streams():
    with AI(catalog=Catalog()) as ai:
        ai.register(ModelEntry(name="@test/echo", description="e"), ScriptedEngine())
        assert ai.run("@test/echo", {"prompt": "hello"})["response"] == "echo: hello"
        events = list(ai.run("@test/echo", {"prompt": "a b", "stream": True}))
        assert "".join(e["response"] for e in events) == "echo: a b"
        with pytest.raises(Exception, match="exactly one"):
            ai.run("@test/echo", {})


async def test_a_value_a_result_points_to_is_new():
    read_page = {
        "name": "read_page",
        "description": "Reads one page of the notebook.",
        "parameters": {"type": "object", "properties": {"page": {"type": "integer"}}, "required": ["page"]},
    }
    ai, _ = scripted(ScriptedReply(calls=[("read_page", {"page": 4})]))
    messages = [
        {"role": "user", "content": "What is the secret code? Read page 1 first."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_page", "arguments": '{"page": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "No code here. The secret code is on page 4."},
    ]
    out = await ai.run("@test/scripted", {"messages": messages, "tools": [read_page]})
    assert [c["arguments"] for c in out["tool_calls"]] == [{"page": 4}]


def test_every_sampling_input_reaches_the_request() -> None:
    # build_request takes SamplingParams' fields from the inputs by name: each must exist there, and arrive.
    given = {
        "max_tokens": 7,
        "temperature": 0.1,
        "top_p": 0.9,
        "top_k": 5,
        "seed": 3,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": -0.3,
    }
    assert set(given) == {field.name for field in dataclasses.fields(SamplingParams)}
    request = build_request(parse_inputs({"prompt": "hi", **given}), function_calling=True)
    assert dataclasses.asdict(request.sampling) == given
