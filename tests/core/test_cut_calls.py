"""A call cut short by ``max_tokens`` is not text: the answer says ``length`` and shows no call markup."""

from __future__ import annotations

import pytest
from seed_testing import SEED_MESSAGES, SEED_TOOL

from toolrun import DEFAULT_MODEL
from toolrun.formats import get_format


def test_a_cut_call_region_is_dropped_not_shown() -> None:
    parser = get_format("hermes").stream_parser(["getGithubUser"])
    shown = [e for e in parser.feed('<tool_call>\n{"name": "') if "response" in e]
    shown += [e for e in parser.finish(cut=True) if "response" in e]
    assert "".join(e["response"] for e in shown) == ""


def test_an_uncut_region_without_a_call_is_still_text() -> None:
    parser = get_format("hermes").stream_parser(["getGithubUser"])
    events = [*parser.feed("<tool_call> no json here"), *parser.finish()]
    assert "no json here" in "".join(e.get("response", "") for e in events)


@pytest.mark.model
@pytest.mark.parametrize("stream", [False, True])
async def test_required_call_cut_by_max_tokens(async_ai, stream: bool) -> None:
    inputs = {"messages": SEED_MESSAGES, "tools": [SEED_TOOL], "tool_choice": "required", "max_tokens": 5}
    if not stream:
        out = await async_ai.run(DEFAULT_MODEL, inputs)
        assert (out["response"], out["tool_calls"], out["finish_reason"]) == ("", [], "length")
        return
    events = [e async for e in await async_ai.run(DEFAULT_MODEL, {**inputs, "stream": True})]
    assert "".join(e.get("response", "") for e in events) == ""
    assert not any("tool_calls" in e for e in events) and events[-1]["finish_reason"] == "length"
