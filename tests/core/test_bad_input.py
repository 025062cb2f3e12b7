"""Bad input gets a clear, typed error that says what is wrong and where — before any model work."""

from __future__ import annotations

import pytest

from toolrun import (
    DEFAULT_MODEL,
    AsyncAI,
    InvalidInputError,
    ModelNotFoundError,
    ModelUnavailableError,
    ToolChoiceError,
    ToolSchemaError,
)
from toolrun.ai import Catalog, ModelEntry
from toolrun.engines.scripted import ScriptedEngine

TOOL = {
    "name": "get_weather",
    "description": "d",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def scripted_ai():
    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name="@test/scripted", description="scripted"), ScriptedEngine())
    return ai


async def test_unknown_model_names_the_model(scripted_ai):
    with pytest.raises(ModelNotFoundError) as info:
        await scripted_ai.run("@cf/nope/does-not-exist", {"messages": USER})
    assert "@cf/nope/does-not-exist" in str(info.value) and info.value.status_code == 404


async def test_model_without_weights_says_how_to_provide_them(scripted_ai):
    with pytest.raises(ModelUnavailableError) as info:
        await scripted_ai.run("@hf/nousresearch/hermes-2-pro-mistral-7b", {"messages": USER})
    text = str(info.value)
    assert "@hf/nousresearch/hermes-2-pro-mistral-7b" in text
    assert "toolrun pull" in text and "path = " in text and "Hermes-2-Pro-Mistral-7B.Q4_K_M.gguf" in text


@pytest.mark.parametrize(
    ("inputs", "where", "words"),
    [
        ({"messages": "hi"}, "messages", "list"),
        ({"messages": []}, "messages", "empty"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "role"),
        ({"messages": [{"role": "user", "content": 3j}]}, "messages[0].content", "string"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
            "messages[0].tool_calls[0].function.arguments",
            "JSON",
        ),
        ({"messages": USER, "temperature": 9}, "temperature", "less than or equal"),
        ({"messages": USER, "max_tokens": "lots"}, "max_tokens", "integer"),
        ({"messages": USER, "temprature": 0.1}, "temprature", "unknown input field"),
        ({}, "inputs", "exactly one of"),
        ({"messages": USER, "tools": {"name": "x"}}, "tools", "list"),
        ({"messages": USER, "tools": [{"name": "bad name!"}]}, "tools[0].name", "letters"),
        ({"messages": USER, "tools": [TOOL, TOOL]}, "tools[1].name", "two tools"),
        ({"messages": USER, "response_format": {"type": "xml"}}, "response_format.type", "unsupported"),
    ],
)
async def test_malformed_inputs(scripted_ai, inputs, where, words):
    with pytest.raises(InvalidInputError) as info:
        await scripted_ai.run("@test/scripted", inputs)
    assert info.value.where == where
    assert words.lower() in info.value.message.lower()
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("parameters", "where", "words"),
    [
        (
            {"type": "object", "properties": {"city": {"type": "strin"}}},
            "tools[0].parameters.properties.city.type",
            "not valid JSON Schema",
        ),
        ({"type": "object", "required": "city"}, "tools[0].parameters.required", "not valid JSON Schema"),
        ("a string", "tools[0].parameters", "must be a JSON Schema object"),
        ({"type": "array", "items": {}}, "tools[0].parameters.type", "must describe an object"),
    ],
)
async def test_tool_schema_that_is_not_json_schema(scripted_ai, parameters, where, words):
    with pytest.raises(ToolSchemaError) as info:
        await scripted_ai.run(
            "@test/scripted",
            {"messages": USER, "tools": [{"name": "get_weather", "description": "d", "parameters": parameters}]},
        )
    assert info.value.where == where and words in info.value.message
    assert "get_weather" in info.value.message


@pytest.mark.parametrize(
    ("choice", "words"),
    [
        ({"type": "function", "function": {"name": "launch_rockets"}}, "launch_rockets"),
        ("sometimes", "must be 'auto'"),
        ({"type": "function"}, "expected"),
    ],
)
async def test_bad_tool_choice(scripted_ai, choice, words):
    with pytest.raises(ToolChoiceError) as info:
        await scripted_ai.run("@test/scripted", {"messages": USER, "tools": [TOOL], "tool_choice": choice})
    assert words in info.value.message


async def test_required_without_tools(scripted_ai):
    with pytest.raises(ToolChoiceError, match="no tools"):
        await scripted_ai.run("@test/scripted", {"messages": USER, "tool_choice": "required"})


async def test_tools_on_a_model_without_function_calling():
    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name="@test/plain", description="x", function_calling=False), ScriptedEngine())
    with pytest.raises(InvalidInputError, match="does not support function calling"):
        await ai.run("@test/plain", {"messages": USER, "tools": [TOOL]})
    # Without tools the same model answers.
    assert (await ai.run("@test/plain", {"messages": USER}))["response"] == "echo: hi"


def test_default_model_is_in_the_catalog():
    entry = Catalog().get(DEFAULT_MODEL)
    assert entry.function_calling and entry.tool_format == "hermes" and entry.pypi is not None
    assert Catalog().get("default") is entry
