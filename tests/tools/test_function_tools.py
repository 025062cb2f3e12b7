"""``tool()``: schemas from type hints and docstrings, argument coercion, the explicit and ai-utils forms."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Annotated, Literal

import jsonschema
import pydantic
import pytest
from pydantic import BaseModel, Field

from toolrun import ToolSchemaError
from toolrun._errors import InvalidInputError
from toolrun.tools import Tool, as_tool, tool


@tool
async def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Gets weather information of a particular city.

    Args:
        city: The city name.
        unit: The temperature unit,
            celsius or fahrenheit.

    Returns:
        A sentence about the weather.
    """
    return f"{city}: 31 {unit}"


def test_schema_and_description_come_from_hints_and_a_google_docstring():
    assert isinstance(get_weather, Tool)
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Gets weather information of a particular city."
    assert get_weather.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name."},
            "unit": {
                "type": "string",
                "enum": ["celsius", "fahrenheit"],
                "default": "celsius",
                "description": "The temperature unit, celsius or fahrenheit.",
            },
        },
        "required": ["city"],
    }
    jsonschema.Draft202012Validator.check_schema(get_weather.parameters)


def numpy_style(query: str, limit: int = 10):
    """Search the catalog.

    Longer explanation that belongs to the description.

    Parameters
    ----------
    query : str
        What to look for.
    limit : int
        At most this many results.
    """


def sphinx_style(query: str, limit: int = 10):
    """Search the catalog.

    :param query: What to look for.
    :param limit: At most this many results.
    """


@pytest.mark.parametrize("function", [numpy_style, sphinx_style])
def test_numpy_and_sphinx_docstrings_describe_the_arguments(function):
    made = tool(function)
    props = made.parameters["properties"]
    assert props["query"]["description"] == "What to look for."
    assert props["limit"]["description"] == "At most this many results."
    assert made.description.startswith("Search the catalog.")
    assert ":param" not in made.description and "Parameters" not in made.description


def test_numpy_description_keeps_the_text_before_the_sections():
    assert tool(numpy_style).description == "Search the catalog.\n\nLonger explanation that belongs to the description."


class Point(BaseModel):
    x: float
    y: float = Field(description="Vertical position.")


class Node(BaseModel):
    value: int
    children: list[Node] = []


def test_nested_models_are_inlined_and_recursive_ones_kept_as_refs():
    @tool
    def measure(a: Point, tree: Node | None = None, count: Annotated[int, Field(ge=1, description="How many.")] = 1):
        """Measure.

        Args:
            a: The start.
            count: Ignored: the Annotated description wins.
        """

    props = measure.parameters["properties"]
    assert props["a"] == {
        "type": "object",
        "description": "The start.",
        "required": ["x", "y"],
        "properties": {"x": {"type": "number"}, "y": {"type": "number", "description": "Vertical position."}},
    }
    assert props["count"] == {"type": "integer", "minimum": 1, "default": 1, "description": "How many."}
    assert "$ref" in str(props["tree"]) and "Node" in measure.parameters["$defs"]
    assert "title" not in str(measure.parameters)
    validator = jsonschema.Draft202012Validator(measure.parameters)
    assert validator.is_valid({"a": {"x": 1, "y": 2}, "tree": {"value": 1, "children": [{"value": 2}]}})
    assert not validator.is_valid({"a": {"x": 1, "y": 2}, "tree": {"value": 1, "children": [{"value": "x"}]}})


def test_arguments_are_validated_and_coerced_before_the_call():
    seen = {}

    @tool
    def place(a: Point, n: int, schema: str = "s"):  # `schema` would clash with a BaseModel attribute
        """Place."""
        seen.update(a=a, n=n, schema=schema)

    asyncio.run(place.acall({"a": {"x": "1.5", "y": 2}, "n": "3", "schema": "mine"}))
    assert seen == {"a": Point(x=1.5, y=2), "n": 3, "schema": "mine"}
    with pytest.raises(pydantic.ValidationError):
        asyncio.run(place.acall({"a": {"x": "one"}, "n": 1}))


def test_unset_arguments_leave_the_function_defaults_alone():
    default = ["kept"]
    got = []

    @tool
    def f(a: int, b: list[str] = default, c: int = Field(5, le=10)):
        got.append((a, b, c))

    asyncio.run(f.acall({"a": 1}))
    assert got == [(1, default, 5)] and got[0][1] is default  # c's FieldInfo default is resolved, b untouched


def test_a_tool_is_still_the_function():
    assert asyncio.run(get_weather("Pune", "fahrenheit")) == "Pune: 31 fahrenheit"
    assert inspect.iscoroutinefunction(get_weather.__wrapped__)


def test_sync_functions_run_off_the_event_loop_thread():
    threads = []

    @tool
    def where() -> str:
        """Where am I."""
        threads.append(threading.current_thread())
        return "here"

    assert asyncio.run(where.acall({})) == "here"
    assert threads[0] is not threading.main_thread() and threads[0].daemon


def test_explicit_name_description_schema_and_timeout():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @tool(name="search-docs", description="Search the docs.", parameters=schema, timeout=2.5)
    def search(q):
        return q.upper()

    assert (search.name, search.description, search.parameters, search.timeout) == (
        "search-docs",
        "Search the docs.",
        schema,
        2.5,
    )
    assert asyncio.run(search.acall({"q": "abc"})) == "ABC"


def test_ai_utils_dict_form_and_its_single_argument_object_convention():
    made = tool(
        {
            "name": "sum",
            "description": "Sum two numbers",
            "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
            "function": lambda args: args["a"] + args["b"],
        }
    )
    assert made["name"] == "sum" and made.get("description") == "Sum two numbers"
    assert asyncio.run(made.acall({"a": 2, "b": 3})) == 5
    # A single parameter that *is* a property name gets keywords.
    by_name = as_tool(
        {
            "name": "echo",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            "function": lambda text: text,
        }
    )
    assert asyncio.run(by_name.acall({"text": "hi"})) == "hi"


def test_dict_tools_are_converted_once_while_unchanged():
    spec = {"name": "a", "description": "A.", "parameters": {"type": "object"}, "function": print}
    first = as_tool(spec)
    assert as_tool(spec) is first
    spec["description"] = "Changed."
    assert as_tool(spec) is not first and as_tool(spec).description == "Changed."


def test_bad_tools_are_refused_with_the_reason():
    with pytest.raises(ToolSchemaError, match="pass name="):
        tool(lambda x: x)
    with pytest.raises(ToolSchemaError, match=r"\*args"):
        tool(lambda *a: a, name="star")
    with pytest.raises(ToolSchemaError, match="not valid JSON Schema"):
        tool(print, name="p", parameters={"type": "object", "properties": {"a": {"type": "strung"}}})
    with pytest.raises(ToolSchemaError, match=r"parameter 'lock' uses .*, a class with no JSON form"):
        tool(_takes_a_lock)
    with pytest.raises(InvalidInputError, match="carries no code"):
        as_tool({"type": "function", "function": {"name": "x"}})
    with pytest.raises(InvalidInputError, match="must be callable"):
        as_tool({"name": "x", "function": "not code"})


def _takes_a_lock(lock: threading.Lock):  # type: ignore[valid-type]
    """A type pydantic cannot describe."""


def test_strict_schema_errors_cover_nested_paths_and_formats():
    made = Tool(
        "book",
        "",
        {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date"},
                "people": {"type": "array", "items": {"type": "object", "properties": {"age": {"type": "integer"}}}},
            },
            "required": ["when"],
        },
    )
    errors = made.schema_errors({"when": "next friday", "people": [{"age": 3}, {"age": "old"}]})
    assert errors == ["$.people[1].age: 'old' is not of type 'integer'", "$.when: 'next friday' is not a 'date'"]
    assert made.schema_errors({"when": "2025-01-31"}) == []


def test_a_tool_is_a_read_only_mapping_with_ai_utils_keys():
    from collections.abc import Mapping

    @tool
    def get_weather(city: str) -> str:
        """Gets weather information of a particular city."""
        return city

    assert isinstance(get_weather, Mapping)
    assert list(get_weather) == ["name", "description", "parameters", "function"]
    as_dict = dict(get_weather)
    assert as_dict["name"] == "get_weather" and as_dict["function"] is get_weather.function
    assert {**get_weather}["description"] == "Gets weather information of a particular city."
    assert get_weather.get("missing", 7) == 7 and "parameters" in get_weather and len(get_weather) == 4
    # ai-utils-style code that rebuilds a tool from its fields round-trips.
    assert as_tool({**get_weather, "name": "weather"}).name == "weather"
    # Equality is identity: comparing tools never builds a lazy schema.
    built: list[int] = []
    lazy = Tool("lazy", parameters_factory=lambda: built.append(1) or {"type": "object"})
    assert lazy != Tool("lazy") and lazy == lazy and built == []
    assert {lazy: 1}[lazy] == 1
