"""The turn's first call is kept only if it fits the request (the catalog's ``check_relevance``).

The 0.5B model opens a call for most questions when it holds tools, and fills a tool that does
not fit with values of its own ("the capital of France?" → ``area(base=10, height=5)``). The
engine holds the first call back until it is written, keeps it if the request shares a word with
the tool or said every value in it, and otherwise has the model answer in text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from judgment_testing import AREA_REQUEST as GIVEN
from judgment_testing import TRIANGLE_AREA as AREA

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun.ai import Catalog

pytestmark = pytest.mark.model

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
# No word in common with the tool: the call is kept because the user said both values.
SAID = [{"role": "user", "content": "Work it out for me: 10 by 5."}]


@pytest.fixture(scope="module")
async def checked(async_ai: AsyncAI) -> AsyncIterator[AsyncAI]:
    assert async_ai.catalog.get(DEFAULT_MODEL).policy.check_relevance  # the default model checks
    yield async_ai


async def test_without_the_check_the_model_fills_a_tool_that_does_not_fit() -> None:
    # What the check is for: the same request, unchecked, gets a call with made-up values.
    catalog = Catalog()
    entry = catalog.get(DEFAULT_MODEL)
    catalog.add(replace(entry, policy=replace(entry.policy, check_relevance=False)))
    async with AsyncAI(catalog=catalog) as ai:
        out = await ai.run(DEFAULT_MODEL, {"messages": CAPITAL, "tools": [AREA], "temperature": 0})
    assert [c["name"] for c in out["tool_calls"]] == ["calculate_triangle_area"], out


async def test_an_ungrounded_call_becomes_a_text_answer(checked: AsyncAI) -> None:
    for temperature in (0.0, 0.6, 0.6, 0.6):
        out = await checked.run(DEFAULT_MODEL, {"messages": CAPITAL, "tools": [AREA], "temperature": temperature})
        assert out["tool_calls"] == [], out
        assert out["response"].strip() and "<tool_call>" not in out["response"], out
    # What the text says is the model's own knowledge: sampled, the 0.5B sometimes gets the fact
    # wrong ("France is the capital of the country"), so the fact is checked on the greedy answer.
    greedy = await checked.run(DEFAULT_MODEL, {"messages": CAPITAL, "tools": [AREA], "temperature": 0})
    assert "paris" in greedy["response"].lower(), greedy


async def test_a_grounded_call_is_kept(checked: AsyncAI) -> None:
    for temperature in (0.0, 0.6, 0.6):
        out = await checked.run(DEFAULT_MODEL, {"messages": GIVEN, "tools": [AREA], "temperature": temperature})
        assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [
            ("calculate_triangle_area", {"base": 10, "height": 5})
        ], out


async def test_a_call_whose_values_were_all_said_is_kept_without_a_shared_word(checked: AsyncAI) -> None:
    out = await checked.run(DEFAULT_MODEL, {"messages": SAID, "tools": [AREA], "temperature": 0})
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [
        ("calculate_triangle_area", {"base": 10, "height": 5})
    ], out


async def test_a_dropped_call_never_reaches_a_stream(checked: AsyncAI) -> None:
    events = [
        event
        async for event in await checked.run(
            DEFAULT_MODEL, {"messages": CAPITAL, "tools": [AREA], "temperature": 0, "stream": True}
        )
    ]
    assert not any("tool_calls" in e or "tool_call_delta" in e for e in events), events
    assert "paris" in "".join(e.get("response") or "" for e in events).lower()
