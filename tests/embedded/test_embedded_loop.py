"""run_with_tools' loop on scripted stand-ins: ordering, limits, concurrency, failures, streaming, trimming."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest
from embedded_standins import ScriptedAI, SyncScriptedAI, reply

from toolrun import InvalidInputError
from toolrun.embedded import (
    DEFAULT_MAX_RECURSIVE_TOOL_RUNS,
    ToolRunStream,
    run_with_tools,
    run_with_tools_sync,
)
from toolrun.tools import tool

USER = [{"role": "user", "content": "What's the weather in Mumbai, India?"}]
WEATHER_CALLS: list[str] = []


@tool
async def get_weather(city: str) -> str:
    """Gets weather information of a particular city.

    Args:
        city: The city name.
    """
    WEATHER_CALLS.append(city)
    return f"31 C in {city}"


@pytest.fixture(autouse=True)
def _clear_calls():
    WEATHER_CALLS.clear()


def tool_turns(messages):
    return [m for m in messages if m["role"] == "tool"]


async def test_one_round_then_the_answer_with_history_ids_and_usage():
    ai = ScriptedAI(reply("", ("get_weather", {"city": "Mumbai"})), reply("It is 31 C in Mumbai."))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [get_weather]}, max_recursive_tool_runs=0)

    assert out["response"] == "It is 31 C in Mumbai." and out["tool_calls"] == []
    assert WEATHER_CALLS == ["Mumbai"]
    user, assistant, result, answer = out["messages"]
    assert user == USER[0]
    call = assistant["tool_calls"][0]
    assert call["type"] == "function" and call["function"] == {"name": "get_weather", "arguments": '{"city": "Mumbai"}'}
    assert result == {"role": "tool", "name": "get_weather", "tool_call_id": call["id"], "content": "31 C in Mumbai"}
    assert answer == {"role": "assistant", "content": "It is 31 C in Mumbai."}
    # usage stays AI.run's (the final call); total_usage adds up every call.
    assert out["usage"]["prompt_tokens"] == 10 and out["total_usage"]["prompt_tokens"] == 20
    # The first request offers the tool (OpenAI shape, no code); the final one has no tools.
    first, final = ai.requests
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": get_weather.description,
                "parameters": get_weather.parameters,
            },
        }
    ]
    assert "tools" not in final and final["messages"] == out["messages"][:3]
    assert USER == [{"role": "user", "content": "What's the weather in Mumbai, India?"}]  # caller's list untouched


async def test_the_default_allows_a_second_dependent_round():
    assert DEFAULT_MAX_RECURSIVE_TOOL_RUNS == 1
    ai = ScriptedAI(
        reply("", ("get_weather", {"city": "Mumbai"})),
        reply("", ("get_weather", {"city": "Pune"})),
        reply("Both are warm."),
    )
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [get_weather]})
    assert WEATHER_CALLS == ["Mumbai", "Pune"]
    assert ["tools" in r for r in ai.requests] == [True, True, False]
    assert out["response"] == "Both are warm."


@pytest.mark.parametrize("extra_rounds", [0, 1, 3])
async def test_the_round_limit_is_exact_when_the_model_keeps_calling(extra_rounds):
    always_call = lambda inputs: reply("", ("get_weather", {"city": "X"})) if "tools" in inputs else reply("done")
    ai = ScriptedAI(*[always_call] * (extra_rounds + 2))
    out = await run_with_tools(
        ai, "m", {"messages": USER, "tools": [get_weather]}, max_recursive_tool_runs=extra_rounds
    )
    assert len(WEATHER_CALLS) == extra_rounds + 1
    assert len(ai.requests) == extra_rounds + 2 and "tools" not in ai.requests[-1]
    assert out["response"] == "done"


async def test_an_answer_in_a_tool_round_ends_the_run_without_another_generation():
    ai = ScriptedAI(reply("Hello! Ask me about the weather."))
    out = await run_with_tools(ai, "m", {"messages": [{"role": "user", "content": "hi"}], "tools": [get_weather]})
    assert len(ai.requests) == 1 and out["response"] == "Hello! Ask me about the weather."
    assert out["messages"][-1] == {"role": "assistant", "content": "Hello! Ask me about the weather."}


async def test_without_tools_it_is_one_plain_call():
    ai = ScriptedAI(reply("Just text."))
    out = await run_with_tools(ai, "m", {"messages": USER})
    assert out["response"] == "Just text." and "tools" not in ai.requests[0]


async def test_other_inputs_reach_every_call_and_tool_choice_only_the_first():
    ai = ScriptedAI(reply("", ("get_weather", {"city": "A"})), reply("", ("get_weather", {"city": "B"})), reply("ok"))
    await run_with_tools(
        ai,
        "m",
        {
            "messages": USER,
            "tools": [get_weather],
            "temperature": 0,
            "seed": 7,
            "max_tokens": 99,
            "tool_choice": "required",
            "stream": True,
        },
    )
    assert [(r["temperature"], r["seed"], r["max_tokens"]) for r in ai.requests] == [(0, 7, 99)] * 3
    assert [r.get("tool_choice") for r in ai.requests] == ["required", None, None]
    assert [r["stream"] for r in ai.requests] == [False, False, False]  # streaming is stream_final_response's job


async def test_parallel_calls_keep_call_order_and_one_assistant_turn():
    @tool
    async def slow_then_fast(n: int) -> int:
        """Answers later for smaller n."""
        await asyncio.sleep(0.05 * (3 - n))
        return n

    ai = ScriptedAI(reply("", *[("slow_then_fast", {"n": n}) for n in range(3)]), reply("done"))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [slow_then_fast]}, max_recursive_tool_runs=0)
    assistant = out["messages"][1]
    results = tool_turns(out["messages"])
    assert [r["content"] for r in results] == ["0", "1", "2"]  # call order, not completion order
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in assistant["tool_calls"]]
    assert len({r["tool_call_id"] for r in results}) == 3


async def test_eight_calls_run_concurrently_async_and_sync():
    # Overlap is proved by behaviour, not by timing: each call waits at a barrier that opens only
    # once all eight are running at the same time. Run one after another, the first call's wait
    # would time out (hang guard: 10 s, where all eight normally meet within milliseconds).
    async_barrier = asyncio.Barrier(8)
    thread_barrier = threading.Barrier(8, timeout=10)

    @tool
    async def wait_async(i: int) -> int:
        """Waits for the other calls."""
        try:
            async with asyncio.timeout(10):
                await async_barrier.wait()
        except TimeoutError:
            await async_barrier.abort()  # the calls after it fail at once instead of waiting too
            raise
        return i

    @tool
    def wait_sync(i: int) -> int:
        """Waits for the other calls, blocking its thread."""
        thread_barrier.wait()  # a timeout breaks the barrier for every later call too
        return i

    for waiter in (wait_async, wait_sync):
        ai = ScriptedAI(reply("", *[(waiter.name, {"i": i}) for i in range(8)]), reply("done"))
        out = await run_with_tools(ai, "m", {"messages": USER, "tools": [waiter]}, max_recursive_tool_runs=0)
        assert [m["content"] for m in tool_turns(out["messages"])] == [str(i) for i in range(8)], waiter.name


async def test_failures_go_back_to_the_model_and_the_run_goes_on():
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"cannot do {reason}")

    @tool(timeout=0.2)
    async def hang() -> str:
        """Never finishes."""
        await asyncio.sleep(3600)
        return "unreachable"

    release, hang_sync_returned = threading.Event(), threading.Event()

    @tool
    def hang_sync() -> str:
        """Blocks its thread for a long time."""
        release.wait(60)
        hang_sync_returned.set()
        return "late"

    ai = ScriptedAI(
        reply(
            "",
            ("explode", {"reason": "that"}),
            ("hang", {}),
            ("hang_sync", {}),
            ("get_wether", {"city": "Pune"}),
            ("get_weather", '{"city": "Pu'),
            ("get_weather", [1, 2]),
        ),
        reply("Sorry, several things failed."),
    )
    try:
        out = await run_with_tools(
            ai,
            "m",
            {"messages": USER, "tools": [explode, hang, hang_sync, get_weather]},
            max_recursive_tool_runs=0,
            tool_timeout=0.3,
        )
        # The run finished while hang_sync's thread is still blocked: it was abandoned, not waited out.
        assert not hang_sync_returned.is_set()
    finally:
        release.set()
    # One shape for every failure the model reads: {"error": "..."}.
    explode_msg, hang_msg, hang_sync_msg, unknown_msg, bad_json_msg, not_object_msg = (
        json.loads(m["content"])["error"] for m in tool_turns(out["messages"])
    )
    assert explode_msg == "'explode' failed: ValueError: cannot do that"
    assert hang_msg == "'hang' did not finish within 0.2 s and was abandoned"  # the tool's own timeout
    assert hang_sync_msg == "'hang_sync' did not finish within 0.3 s and was abandoned"
    assert unknown_msg.startswith("there is no tool named 'get_wether'; the available tools are: explode, hang")
    assert "not valid JSON" in bad_json_msg and "call it again" in bad_json_msg
    assert "must be a JSON object, not list" in not_object_msg
    assert WEATHER_CALLS == []
    # The final request carries all of it, so the model can explain or retry.
    assert len(tool_turns(ai.requests[-1]["messages"])) == 6
    assert out["response"] == "Sorry, several things failed."


async def test_strict_validation_sends_the_error_back_and_the_retry_runs():
    ai = ScriptedAI(
        reply("", ("get_weather", {"city": 42})), reply("", ("get_weather", {"city": "Mumbai"})), reply("31 C.")
    )
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [get_weather]}, strict_validation=True)
    first, second = tool_turns(out["messages"])
    assert json.loads(first["content"]) == {
        "error": "the arguments for 'get_weather' do not match its schema: "
        "$.city: 42 is not of type 'string'; call it again with corrected arguments"
    }
    assert second["content"] == "31 C in Mumbai"
    assert WEATHER_CALLS == ["Mumbai"]  # the invalid call never reached the function


async def test_without_strict_validation_decorated_tools_still_coerce_or_explain():
    ai = ScriptedAI(reply("", ("get_weather", {"city": 42}), ("get_weather", {})), reply("ok"))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [get_weather]}, max_recursive_tool_runs=0)
    coerced, missing = tool_turns(out["messages"])
    assert "Input should be a valid string" in coerced["content"]  # pydantic does not turn 42 into "42"
    assert json.loads(missing["content"]) == {
        "error": "the arguments for 'get_weather' are invalid: city: Field "
        "required; call it again with corrected arguments"
    }


async def test_plain_dict_tools_in_ai_utils_form_and_result_encoding():
    seen = []

    def lookup(args):
        seen.append(args)
        return {"user": args["name"], "repos": (1, 2), "ok": True}

    spec = {
        "name": "lookup",
        "description": "Look a user up.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "function": lookup,
    }
    ai = ScriptedAI(reply("", ("lookup", {"name": "ada"})), reply("ok"))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [spec]}, max_recursive_tool_runs=0)
    assert seen == [{"name": "ada"}]
    assert json.loads(tool_turns(out["messages"])[0]["content"]) == {"user": "ada", "repos": [1, 2], "ok": True}


async def test_streaming_the_final_answer():
    ai = ScriptedAI(reply("", ("get_weather", {"city": "Mumbai"})), reply("It is warm today."))
    stream = await run_with_tools(
        ai, "m", {"messages": USER, "tools": [get_weather]}, stream_final_response=True, max_recursive_tool_runs=0
    )
    assert isinstance(stream, ToolRunStream)
    assert ai.requests[-1]["stream"] is True and "tools" not in ai.requests[-1]
    events = [e async for e in stream]
    assert "".join(e["response"] for e in events) == "It is warm today."
    assert events[-1]["finish_reason"] == "stop"
    assert stream.messages[-1] == {"role": "assistant", "content": "It is warm today."}
    assert stream.total_usage["prompt_tokens"] == 20


async def test_streaming_an_answer_given_in_a_tool_round_replays_it_without_a_new_generation():
    ai = ScriptedAI(reply("No tool needed."))
    stream = await run_with_tools(ai, "m", {"messages": USER, "tools": [get_weather]}, stream_final_response=True)
    events = [e async for e in stream]
    assert len(ai.requests) == 1
    assert events == [
        {"response": "No tool needed."},
        {
            "response": "",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        },
    ]
    assert stream.total_usage["total_tokens"] == 11  # counted once, not again by the replay


async def test_trim_function_sync_or_async_limits_what_is_offered_and_what_can_run():
    @tool
    def get_time(city: str) -> str:
        """Gets the local time of a city."""
        return "noon"

    seen_args = []

    async def keep_weather(tools, ai, model, messages):
        seen_args.append(([t.name for t in tools], model, messages[-1]["content"]))
        return [t for t in tools if t["name"] == "get_weather"]

    ai = ScriptedAI(reply("", ("get_time", {"city": "Mumbai"})), reply("ok"))
    out = await run_with_tools(
        ai,
        "m",
        {"messages": USER, "tools": [get_weather, get_time]},
        trim_function=keep_weather,
        max_recursive_tool_runs=0,
    )
    assert seen_args == [(["get_weather", "get_time"], "m", USER[0]["content"])]
    assert [t["function"]["name"] for t in ai.requests[0]["tools"]] == ["get_weather"]
    assert json.loads(tool_turns(out["messages"])[0]["content"])["error"].startswith(
        "there is no tool named 'get_time'"
    )

    ai = ScriptedAI(reply("ok"))
    await run_with_tools(
        ai, "m", {"messages": USER, "tools": [get_weather, get_time]}, trim_function=lambda tools, *_: ["get_time"]
    )
    assert [t["function"]["name"] for t in ai.requests[0]["tools"]] == ["get_time"]

    with pytest.raises(InvalidInputError, match="not given: 'made_up'"):
        await run_with_tools(
            ScriptedAI(), "m", {"messages": USER, "tools": [get_weather]}, trim_function=lambda *_: ["made_up"]
        )


async def test_verbose_logs_each_step(caplog):
    ai = ScriptedAI(reply("", ("get_weather", {"city": "Mumbai"})), reply("ok"))
    with caplog.at_level(logging.DEBUG, logger="toolrun.embedded"):
        await run_with_tools(
            ai, "m", {"messages": USER, "tools": [get_weather]}, verbose=True, max_recursive_tool_runs=0
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "toolrun.embedded"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "toolrun.embedded")
    text = "\n".join(lines)
    assert 'tool get_weather({"city": "Mumbai"}) -> 31 C in Mumbai [' in text
    assert '"prompt_tokens": 10' in text and "round 1:" in text and "final answer:" in text
    assert "total usage" in text


async def test_quiet_runs_log_at_debug_only(caplog):
    with caplog.at_level(logging.INFO, logger="toolrun.embedded"):
        await run_with_tools(ScriptedAI(reply("ok")), "m", {"messages": USER, "tools": [get_weather]})
    assert not [r for r in caplog.records if r.name == "toolrun.embedded"]


@pytest.mark.parametrize(
    "inputs, where",
    [
        ({"messages": []}, "inputs.messages"),
        ({"messages": USER, "tools": {"name": "x"}}, "inputs.tools"),
        ({"messages": USER, "tools": [{"name": "x", "parameters": {}}]}, "inputs.tools[0].function"),
        ({"messages": USER, "tools": [get_weather, get_weather]}, "inputs.tools[1].name"),
        ({"messages": USER, "tools": [{"name": "bad name!", "function": print}]}, "inputs.tools[0].name"),
    ],
)
async def test_bad_inputs_fail_before_any_model_call(inputs, where):
    ai = ScriptedAI()
    with pytest.raises(InvalidInputError) as info:
        await run_with_tools(ai, "m", inputs)
    assert info.value.where == where and ai.requests == []


async def test_a_client_that_returns_no_dict_is_an_engine_error():
    from toolrun import EngineError

    with pytest.raises(EngineError, match="returned str"):
        await run_with_tools(ScriptedAI("not a dict"), "m", {"messages": USER})  # type: ignore[arg-type]


def test_sync_face_with_a_sync_client_and_streaming():
    ai = SyncScriptedAI(reply("", ("get_weather", {"city": "Mumbai"})), reply("It is warm."))
    out = run_with_tools_sync(ai, "m", {"messages": USER, "tools": [get_weather]}, max_recursive_tool_runs=0)
    assert out["response"] == "It is warm." and WEATHER_CALLS == ["Mumbai"]

    ai = SyncScriptedAI(reply("", ("get_weather", {"city": "Pune"})), reply("Warm in Pune."))
    with run_with_tools_sync(
        ai, "m", {"messages": USER, "tools": [get_weather]}, stream_final_response=True, max_recursive_tool_runs=0
    ) as stream:
        text = "".join(e["response"] for e in stream)
    assert text == "Warm in Pune." and stream.messages[-1]["content"] == "Warm in Pune."


def test_sync_face_with_an_async_client():
    ai = ScriptedAI(reply("", ("get_weather", {"city": "Goa"})), reply("Sunny."))
    assert (
        run_with_tools_sync(ai, "m", {"messages": USER, "tools": [get_weather]}, max_recursive_tool_runs=0)["response"]
        == "Sunny."
    )


async def test_sync_face_refuses_to_run_inside_an_event_loop():
    with pytest.raises(RuntimeError, match="await run_with_tools"):
        run_with_tools_sync(ScriptedAI(), "m", {"messages": USER})


async def test_a_tool_raising_timeouterror_is_not_mistaken_for_our_timeout():
    @tool
    async def flaky() -> str:
        """Times out on its own."""
        raise TimeoutError("upstream took too long")

    ai = ScriptedAI(reply("", ("flaky", {})), reply("ok"))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [flaky]}, max_recursive_tool_runs=0)
    assert json.loads(tool_turns(out["messages"])[0]["content"]) == {
        "error": "'flaky' failed: TimeoutError: upstream took too long"
    }


async def test_cancelling_the_run_cancels_it_rather_than_reporting_a_tool_timeout():
    started = asyncio.Event()

    @tool
    async def slow() -> str:
        """Takes a while."""
        started.set()
        await asyncio.sleep(10)
        return "late"

    ai = ScriptedAI(reply("", ("slow", {})), reply("never asked"))
    run = asyncio.create_task(run_with_tools(ai, "m", {"messages": USER, "tools": [slow]}, tool_timeout=5))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert len(ai.requests) == 1


async def test_a_tool_that_swallows_the_timeout_leaves_no_pending_cancellation():
    @tool(timeout=0.05)
    async def stubborn() -> str:
        """Ignores cancellation once."""
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            pass
        return "finished anyway"

    ai = ScriptedAI(reply("", ("stubborn", {})), reply("ok"))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [stubborn]}, max_recursive_tool_runs=0)
    # A time limit is a promise (issue #27): the late result is discarded and the model told it timed out.
    error = json.loads(tool_turns(out["messages"])[0]["content"])["error"]
    assert error == "'stubborn' did not finish within 0.05 s and was abandoned"
    assert out["response"] == "ok"  # the final model call was not hit by a stale cancel
    await asyncio.sleep(0)  # nor is the next await
