"""``_wire`` owns the converters between toolrun's shapes and each dialect; arguments stay dicts inside."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from toolrun._types import ToolSpec, normalize_messages
from toolrun._wire import (
    openai_message,
    openai_tool,
    openai_tool_call,
    tool_call,
    workers_ai_event,
    workers_ai_message,
    workers_ai_tool,
)
from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.embedded import run_with_tools
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply
from toolrun.tools import tool

PACKAGE = Path(__file__).resolve().parents[2] / "toolrun"


def test_only_wire_writes_the_openai_function_shape() -> None:
    """No dict literal ``{"type": "function", ...}`` outside ``_wire.py``: every other place calls a converter."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_wire.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                pairs = zip(node.keys, node.values, strict=True)
                if any(_constant(key) == "type" and _constant(value) == "function" for key, value in pairs):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert found == []


def _constant(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def test_both_dialects_read_in_and_written_out() -> None:
    messages = normalize_messages(
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c2", "name": "w", "arguments": {"a": 2}}]},
        ]
    )
    # Read: both dialects become one shape, arguments as dicts.
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert messages[3]["tool_calls"][0]["function"]["arguments"] == {"a": 2}
    # Written: JSON text at the edge, the tool result names its call.
    assert openai_message(messages[1])["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}}
    ]
    assert openai_message(messages[2]) == {"role": "tool", "content": "sunny", "name": "w", "tool_call_id": "c1"}
    assert workers_ai_message(messages[3])["tool_calls"][0]["function"]["arguments"] == '{"a": 2}'

    spec = ToolSpec("w", "Weather.", {"type": "object", "properties": {}})
    assert openai_tool(spec) == spec.as_openai() == {"type": "function", "function": workers_ai_tool(spec)}
    assert openai_tool_call(tool_call("w", {"a": "é"}, "c3"))["function"]["arguments"] == '{"a": "é"}'
    assert workers_ai_event({"tool_call_delta": {"index": 0, "id": "c", "name": "w", "arguments": "{"}}) is None
    assert workers_ai_event({"response": "hi"}) == {"response": "hi"}


@tool
def get_weather(city: str) -> str:
    """Current weather.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


class RecordingAI(AsyncAI):
    """toolrun's own binding on a scripted engine, keeping each ``inputs`` it was handed."""

    def __init__(self) -> None:
        super().__init__(catalog=Catalog())
        self.seen: list[dict[str, Any]] = []

        def script(request: GenerationRequest) -> ScriptedReply:
            if request.messages[-1]["role"] == "user":
                return ScriptedReply(calls=[("get_weather", {"city": "Lisbon"})])
            return ScriptedReply(text="Sunny.")

        self.register(ModelEntry(name="@test/scripted", description="scripted"), ScriptedEngine(script))

    async def run(self, model: str, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(inputs)
        return await super().run(model, inputs, *args, **kwargs)


async def test_run_with_tools_hands_toolrun_dict_arguments_and_the_caller_json() -> None:
    """The loop's own assistant turns reach toolrun's binding with dict arguments (no JSON round trip each
    round); the conversation handed back to the caller has them as JSON text, as OpenAI's API does."""
    ai = RecordingAI()
    out = await run_with_tools(ai, "@test/scripted", {"prompt": "Weather in Lisbon?", "tools": [get_weather]})
    assert out["response"] == "Sunny."
    second = ai.seen[1]["messages"]
    assert second[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Lisbon"}
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Lisbon"}'
    assert out["messages"][2]["content"] == "sunny in Lisbon"
