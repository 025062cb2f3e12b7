"""Hostile and careless input to the library: never a fetch, a file read, a hang or a non-toolrun exception.

Each test is a reproduction from the "Hostile input" issue; the Hypothesis tests at the
end go looking for new ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import Listener
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolrun import (
    AI,
    AsyncAI,
    InvalidInputError,
    ToolrunError,
    ToolSchemaError,
    run_with_tools_sync,
    tool,
)
from toolrun._schema import validator
from toolrun.ai import Catalog, ModelEntry
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

SCRIPTED = "@test/scripted"
USER = [{"role": "user", "content": "What is the weather in Lisbon?"}]


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def forced_weather(request: GenerationRequest) -> ScriptedReply:
    return ScriptedReply(calls=[("get_weather", {"city": "Lisbon"})]) if request.tools else ScriptedReply("ok")


@pytest.fixture
def scripted() -> AsyncAI:
    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="scripted"), ScriptedEngine(forced_weather))
    return ai


def weather_tool(city_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": city_schema}, "required": ["city"]},
    }


FORCED = {"type": "function", "function": {"name": "get_weather"}}


# ------------------------------------------------------------------ $ref


@pytest.mark.parametrize(
    "make_ref",
    [
        lambda url: f"{url}/x.json",
        lambda url: "file:///etc/passwd",
        lambda url: "x.json",  # relative: would resolve against a base URI
        lambda url: f"{url}/x.json#/definitions/city",
    ],
)
async def test_a_remote_ref_in_a_tool_schema_is_refused_and_never_fetched(scripted, listener, make_ref) -> None:
    ref = make_ref(listener.url)
    inputs = {"messages": USER, "tools": [weather_tool({"$ref": ref})], "tool_choice": FORCED, "max_tokens": 48}
    with pytest.raises(ToolSchemaError) as info:
        await scripted.run(SCRIPTED, inputs)
    assert info.value.status_code == 400
    assert info.value.where == "tools[0].parameters.properties.city['$ref']"
    assert "outside the schema" in info.value.message and ref in info.value.message
    assert listener.hits == []


@pytest.mark.parametrize("keyword", ["$dynamicRef", "$recursiveRef"])
async def test_other_reference_keywords_are_held_to_the_same_rule(scripted, listener, keyword) -> None:
    inputs = {"messages": USER, "tools": [weather_tool({keyword: listener.url + "/x"})]}
    with pytest.raises(ToolSchemaError, match="outside the schema"):
        await scripted.run(SCRIPTED, inputs)
    assert listener.hits == []


async def test_local_refs_still_work_and_dangling_ones_are_named(scripted) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}},
        "required": ["city"],
        "$defs": {"city": {"type": "string"}},
    }
    out = await scripted.run(
        SCRIPTED, {"messages": USER, "tools": [{"name": "get_weather", "parameters": schema}], "tool_choice": FORCED}
    )
    assert out["tool_calls"][0]["arguments"] == {"city": "Lisbon"}

    schema["properties"]["city"] = {"$ref": "#/$defs/town"}
    with pytest.raises(ToolSchemaError, match="points at nothing") as info:
        await scripted.run(SCRIPTED, {"messages": USER, "tools": [{"name": "get_weather", "parameters": schema}]})
    assert info.value.where == "tools[0].parameters.properties.city['$ref']"


def test_a_root_id_does_not_send_local_refs_to_the_network(listener) -> None:
    """``$id`` makes '#…' resolve against a URL; the registry still finds it in the schema itself."""
    schema = {
        "$id": listener.url + "/root.json",
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}},
        "$defs": {"city": {"type": "string"}},
    }
    assert [e.message for e in validator(schema).iter_errors({"city": 3})] == ["3 is not of type 'string'"]
    assert listener.hits == []


def test_tool_and_strict_validation_refuse_remote_refs(listener) -> None:
    with pytest.raises(ToolSchemaError, match="outside the schema"):
        tool(lambda city: city, name="get_weather", parameters=weather_tool({"$ref": listener.url})["parameters"])
    assert listener.hits == []


# --------------------------------------------------- bad text and bad shapes


async def test_a_lone_surrogate_is_an_input_error_not_a_crash(scripted) -> None:
    with pytest.raises(InvalidInputError) as info:
        await scripted.run(SCRIPTED, {"messages": [{"role": "user", "content": "a\ud800b"}]})
    assert info.value.where == "messages[0].content" and "surrogate" in info.value.message
    with pytest.raises(InvalidInputError, match="surrogate"):
        await scripted.run(SCRIPTED, {"prompt": "\udfff"})
    with pytest.raises(InvalidInputError, match="surrogate"):
        await scripted.run(
            SCRIPTED,
            {
                "messages": USER,
                "tools": [{"name": "get_weather", "description": "x\ud800", "parameters": {"type": "object"}}],
            },
        )


def test_a_lone_surrogate_through_the_sync_faces() -> None:
    ai = AI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="s"), ScriptedEngine(forced_weather))

    def get_weather(city: str) -> str:
        return "sunny"

    try:
        with pytest.raises(InvalidInputError, match="surrogate"):
            ai.run(SCRIPTED, {"messages": [{"role": "user", "content": "a\ud800b"}]})
        with pytest.raises(InvalidInputError, match="surrogate"):
            run_with_tools_sync(
                ai, SCRIPTED, {"messages": [{"role": "user", "content": "\ud800"}], "tools": [get_weather]}
            )
    finally:
        ai.close()


def test_a_tool_that_returns_a_lone_surrogate_does_not_break_the_run() -> None:
    ai = AI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="s"), ScriptedEngine(forced_weather))

    def get_weather(city: str) -> str:
        return "sunny \udcff in " + city

    try:
        out = run_with_tools_sync(ai, SCRIPTED, {"messages": USER, "tools": [get_weather]})
    finally:
        ai.close()
    assert out["messages"][2]["content"] == "sunny \ufffd in Lisbon"


async def test_inputs_that_contain_themselves(scripted) -> None:
    message: dict[str, Any] = {"role": "user"}
    message["content"] = message
    with pytest.raises(InvalidInputError, match="contains itself") as info:
        await scripted.run(SCRIPTED, {"messages": [message]})
    assert info.value.where == "messages[0].content"

    arguments: dict[str, Any] = {}
    arguments["self"] = arguments
    turn = {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": arguments}}]}
    with pytest.raises(InvalidInputError, match="contains itself") as info:
        await scripted.run(SCRIPTED, {"messages": [*USER, turn]})
    assert info.value.where == "messages[1].tool_calls[0].function.arguments.self"


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


async def test_deeply_nested_tool_parameters_are_refused_with_a_place(scripted) -> None:
    tools = [{"name": "deep", "parameters": nested(400, {"type": "string"})}]
    assert len(json.dumps(tools)) < 20_000  # a small body: the depth is the weapon
    with pytest.raises(ToolSchemaError, match="nested more than") as info:
        await scripted.run(SCRIPTED, {"messages": USER, "tools": tools})
    assert info.value.where.startswith("tools[0].parameters.properties.a")


async def test_shared_subobjects_cannot_expand_without_bound(scripted) -> None:
    """Python references (like YAML aliases) make a small value serialise to gigabytes."""
    level: Any = {"type": "string"}
    for _ in range(30):
        level = {"type": "object", "properties": {"a": level, "b": level, "c": level, "d": level}}
    with pytest.raises(ToolSchemaError, match="too large"):
        await scripted.run(SCRIPTED, {"messages": USER, "tools": [{"name": "bomb", "parameters": level}]})


@pytest.mark.parametrize(
    ("inputs", "where", "words"),
    [
        ({"max_tokens": True}, "max_tokens", "valid integer, not true"),
        ({"max_tokens": 5.5}, "max_tokens", "valid integer"),
        ({"stream": "yes"}, "stream", 'valid boolean, not "yes"'),
        ({"temperature": float("nan")}, "temperature", "finite"),
        ({"temperature": float("inf")}, "temperature", "finite"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"messages": [{"role": "user", "content": {1, 2}}]}, "messages[0].content", "not set"),
    ],
)
async def test_each_field_error_names_the_field_and_its_real_fault(scripted, inputs, where, words) -> None:
    with pytest.raises(InvalidInputError) as info:
        await scripted.run(SCRIPTED, {"messages": USER, **inputs})
    assert info.value.where == where
    assert words in info.value.message


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"tool_timeout": "5"}, "tool_timeout"),
        ({"tool_timeout": float("nan")}, "tool_timeout"),
        ({"trim_function": "x"}, "trim_function"),
        ({"trim_function": lambda tools, ai, model, messages: 5}, "trim_function"),
        ({"max_recursive_tool_runs": 1.5}, "max_recursive_tool_runs"),
    ],
)
def test_run_with_tools_options_of_the_wrong_type(options, where) -> None:
    ai = AI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="s"), ScriptedEngine(forced_weather))

    def get_weather(city: str) -> str:
        return "sunny"

    try:
        with pytest.raises(InvalidInputError) as info:
            run_with_tools_sync(ai, SCRIPTED, {"messages": USER, "tools": [get_weather]}, **options)
    finally:
        ai.close()
    assert info.value.where == where


# ------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
schema_keywords = st.sampled_from(
    [
        "type",
        "properties",
        "items",
        "required",
        "enum",
        "$ref",
        "$defs",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "minimum",
        "pattern",
        "format",
        "const",
        "$id",
        "additionalProperties",
        "$dynamicRef",
        "prefixItems",
        "if",
        "then",
    ]
)
schemas = st.recursive(
    st.sampled_from(["string", "object", "integer", "#", "#/$defs/a", "http://127.0.0.1:9/x", "file:///etc/passwd"])
    | st.booleans()
    | st.integers(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(schema_keywords, children, max_size=4),
    max_leaves=25,
)


@settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    inputs=st.dictionaries(
        st.sampled_from(
            [
                "messages",
                "prompt",
                "tools",
                "tool_choice",
                "max_tokens",
                "temperature",
                "stream",
                "response_format",
                "seed",
                "top_p",
                "parallel_tool_calls",
                "raw",
                "extra",
            ]
        ),
        json_values,
        max_size=5,
    )
)
async def test_fuzzed_inputs_fail_only_as_toolrun_errors(scripted, inputs) -> None:
    try:
        result = await scripted.run(SCRIPTED, inputs)
    except ToolrunError:
        return
    if not isinstance(result, dict):  # a stream
        async for _ in result:
            pass


@settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parameters=schemas)
async def test_fuzzed_tool_schemas_fail_only_as_schema_errors(scripted, listener, parameters) -> None:
    inputs = {"messages": USER, "tools": [{"name": "get_weather", "parameters": parameters}], "tool_choice": FORCED}
    try:
        await scripted.run(SCRIPTED, inputs)
    except InvalidInputError:
        pass
    assert listener.hits == []


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None)
@given(parameters=schemas)
def test_fuzzed_schemas_that_pass_the_check_always_give_a_grammar(parameters) -> None:
    from llama_cpp import LlamaGrammar

    from toolrun._types import normalize_tools
    from toolrun.formats import get_format

    try:
        tools = normalize_tools([{"name": "get_weather", "parameters": parameters}])
    except InvalidInputError:
        return
    grammar = get_format("hermes").grammar(tools)
    LlamaGrammar.from_string(grammar.text, verbose=False)
