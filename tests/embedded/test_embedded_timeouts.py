"""A tool's time limit is a promise: run_with_tools returns within it, and a late result never reaches the model.

The real loop runs against a scripted model: tools that swallow their
cancellation, block the event loop, or raise a ``BaseException`` while other
calls run. What is asserted is behaviour — what the model is told, and whether
a side effect happened before the run returned — never how fast it was. Where
a tool must stop misbehaving eventually (so that a regression fails instead of
hanging the suite), it gives up after a bound far above the limit under test;
each such bound says so.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from embedded_standins import ScriptedAI, reply

from toolrun.embedded import run_with_tools
from toolrun.tools import tool

USER = [{"role": "user", "content": "Go."}]
TIMED_OUT = "'{name}' did not finish within {limit:g} s and was abandoned"
# Hang guard for a whole run: the runs below take a fraction of a second when the promise holds.
RUN_GUARD_S = 30.0


def tool_contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def error_of(content: str) -> str:
    return json.loads(content)["error"]


async def test_a_tool_that_swallows_every_cancellation_is_abandoned_at_its_deadline() -> None:
    done_swallowing = asyncio.Event()
    swallowed: list[int] = []

    @tool(timeout=0.2)
    async def stubborn() -> str:
        """Ignores cancellation until told to stop."""
        # Swallows for up to 10 s (50x the limit): long enough that a run which waited for it
        # would still be waiting when the test looks, short enough that a regression fails, not hangs.
        give_up_at = asyncio.get_running_loop().time() + 10
        while not done_swallowing.is_set() and asyncio.get_running_loop().time() < give_up_at:
            try:
                await asyncio.wait_for(done_swallowing.wait(), 0.05)
            except (asyncio.CancelledError, TimeoutError):
                swallowed.append(1)
        return "late result"

    ai = ScriptedAI(reply("", ("stubborn", {})), reply("It timed out."))
    out = await asyncio.wait_for(
        run_with_tools(ai, "m", {"messages": USER, "tools": [stubborn]}, max_recursive_tool_runs=0), RUN_GUARD_S
    )
    # The run came back while the tool was still swallowing: it did not wait for it.
    assert not done_swallowing.is_set()
    assert error_of(tool_contents(out["messages"])[0]) == TIMED_OUT.format(name="stubborn", limit=0.2)
    assert out["response"] == "It timed out."
    # The model's last request saw the timeout, not the late result.
    assert "late result" not in json.dumps(ai.requests[-1]["messages"])
    done_swallowing.set()
    await asyncio.sleep(0.1)  # let the abandoned task finish: its result goes nowhere
    assert "late result" not in json.dumps(out["messages"])


async def test_an_outer_timeout_fires_even_when_a_tool_swallows_cancellation_and_has_no_limit() -> None:
    release = asyncio.Event()

    @tool
    async def stubborn() -> str:
        """Ignores cancellation until released."""
        for _ in range(200):  # at most 200 x 50 ms = 10 s, 20x the outer timeout: a regression fails, not hangs
            try:
                await asyncio.wait_for(release.wait(), 0.05)
                break
            except (asyncio.CancelledError, TimeoutError):
                continue
        return "late"

    ai = ScriptedAI(reply("", ("stubborn", {})), reply("never asked"))
    run = run_with_tools(ai, "m", {"messages": USER, "tools": [stubborn]}, tool_timeout=None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run, 0.5)
    assert not release.is_set()
    assert len(ai.requests) == 1
    release.set()
    await asyncio.sleep(0.1)


async def test_an_async_tool_that_blocks_the_loop_past_its_limit_has_its_result_discarded() -> None:
    @tool(timeout=0.1)
    async def blocker() -> str:
        """Blocks the event loop (a sync call inside an async tool)."""
        time.sleep(0.5)  # blocks the loop: the misbehaviour under test
        return "accepted late"

    @tool(timeout=5)
    async def polite() -> str:
        """Returns at once."""
        return "on time"

    ai = ScriptedAI(reply("", ("blocker", {}), ("polite", {})), reply("Done."))
    out = await asyncio.wait_for(
        run_with_tools(ai, "m", {"messages": USER, "tools": [blocker, polite]}, max_recursive_tool_runs=0),
        RUN_GUARD_S,
    )
    blocked, polite_content = tool_contents(out["messages"])
    assert error_of(blocked) == TIMED_OUT.format(name="blocker", limit=0.1)
    assert "accepted late" not in json.dumps(ai.requests[-1]["messages"])
    assert polite_content == "on time"  # it ran before the loop was blocked and was read as finished in time


class Abort(BaseException):
    """Not an Exception: it must end the run, not become a tool message."""


async def test_a_base_exception_ends_the_run_only_after_the_other_calls_have_ended() -> None:
    thread_side_effect = threading.Event()
    async_cancelled = asyncio.Event()

    @tool
    async def abort() -> str:
        """Raises a BaseException once the others are running."""
        await asyncio.sleep(0.05)
        raise Abort("stop everything")

    @tool
    def slow_sync() -> str:
        """Has a side effect after a while, in its thread."""
        time.sleep(0.5)
        thread_side_effect.set()
        return "sync done"

    @tool
    async def slow_async() -> str:
        """Waits far longer than the test runs."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            async_cancelled.set()
            raise
        return "never"

    ai = ScriptedAI(reply("", ("slow_sync", {}), ("abort", {}), ("slow_async", {})), reply("never asked"))
    with pytest.raises(Abort, match="stop everything"):
        await asyncio.wait_for(
            run_with_tools(ai, "m", {"messages": USER, "tools": [abort, slow_sync, slow_async]}), RUN_GUARD_S
        )
    # Checked the moment the run raised: the thread had finished, the async sibling had been cancelled.
    assert thread_side_effect.is_set()
    assert async_cancelled.is_set()
    assert len(ai.requests) == 1  # no model call after the exception


async def test_a_base_exception_waits_for_a_sibling_thread_no_longer_than_its_deadline() -> None:
    release = threading.Event()
    finished = threading.Event()

    @tool
    def abort() -> str:
        """Raises a BaseException at once."""
        raise Abort("now")

    @tool(timeout=0.3)
    def stuck() -> str:
        """Blocks its thread until released."""
        release.wait(30)  # 100x its limit: released by the test; the bound only keeps a regression from hanging
        finished.set()
        return "late"

    ai = ScriptedAI(reply("", ("stuck", {}), ("abort", {})), reply("never asked"))
    try:
        with pytest.raises(Abort):
            await asyncio.wait_for(run_with_tools(ai, "m", {"messages": USER, "tools": [abort, stuck]}), RUN_GUARD_S)
        assert not finished.is_set()  # the run ended at the thread's deadline, not when the thread did
    finally:
        release.set()


async def test_a_tool_raising_cancellederror_itself_is_a_failure_the_model_hears_of() -> None:
    @tool
    async def cancels_itself() -> str:
        """Raises CancelledError of its own (a cancelled inner operation)."""
        raise asyncio.CancelledError

    ai = ScriptedAI(reply("", ("cancels_itself", {})), reply("It failed."))
    out = await run_with_tools(ai, "m", {"messages": USER, "tools": [cancels_itself]}, max_recursive_tool_runs=0)
    assert error_of(tool_contents(out["messages"])[0]) == "'cancels_itself' failed: CancelledError"
    assert out["response"] == "It failed."
