"""The catalog's ``parallel_hint``: a sentence after the tool list when a request allows several calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolrun.ai import Catalog
from toolrun.ai._inputs import build_request, parse_inputs
from toolrun.engines._prompt import render_prompt
from toolrun.formats import ControlTokens, get_format

HINT = "When the request asks for the same thing for several items, make a separate call for each one."
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASKED = [{"role": "user", "content": "Weather in Paris and in Rome?"}]


TIME = {
    "name": "get_time",
    "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def prompt(fmt: str = "hermes", tools: list[dict[str, Any]] | None = None, **inputs: Any) -> str:
    offered = tools if tools is not None else [WEATHER]
    request = build_request(parse_inputs({"messages": ASKED, "tools": offered, **inputs}), function_calling=True)
    format_ = get_format(fmt)
    control = ControlTokens(pattern=format_.control_pattern)
    return render_prompt(format_, format_.fallback_template, request, control=control, parallel_hint=HINT).plain_text()


def test_the_hint_ends_the_turn_that_lists_the_tools() -> None:
    text = prompt()
    assert text.count(HINT) == 1
    system_turn = text[: text.index("<|im_end|>")]
    # After the tool list and the format's own instructions, before the user's turn.
    assert system_turn.index("</tools>") < system_turn.index("For each function call") < system_turn.index(HINT)
    assert system_turn.endswith("</tool_call>\n\n" + HINT)
    assert text.index(HINT) < text.index("Weather in Paris")


@pytest.mark.parametrize(
    "inputs",
    [
        {"parallel_tool_calls": False},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tool_choice": "none"},
    ],
    ids=["parallel_tool_calls false", "a named tool", "tool_choice none"],
)
def test_no_hint_where_the_request_allows_one_call_or_none(inputs: dict[str, Any]) -> None:
    text = prompt(**inputs)
    assert HINT not in text


def test_no_hint_where_several_tools_are_offered() -> None:
    # Offered several tools, the 1.5B read it as leave to call another tool as well.
    text = prompt(tools=[WEATHER, TIME])
    assert "get_time" in text and HINT not in text


def test_a_format_that_does_not_say_where_its_tools_end_gets_no_hint() -> None:
    fmt = get_format("llama3_json")
    assert fmt.tools_turn is None
    assert HINT not in prompt("llama3_json")
    assert fmt.add_instructions("<|im_start|>system\nno tools here<|im_end|>", HINT).count(HINT) == 0


def test_parallel_hint_is_a_catalog_setting_and_part_of_the_judgement(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[models."@local/qwen2.5-coder-0.5b-instruct"]\nparallel_hint = "{HINT}"\n')
    entry = Catalog.load(config).get("@local/qwen2.5-coder-0.5b-instruct")
    assert entry.policy.parallel_hint == HINT
    assert entry.policy.as_dict()["parallel_hint"] == HINT
