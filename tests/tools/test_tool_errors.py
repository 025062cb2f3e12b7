"""Mistakes in a tool's Python signature or in run_with_tools' options get toolrun's explanation (issue #31 item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from toolrun._errors import InvalidInputError, ToolrunError, ToolSchemaError
from toolrun.embedded import run_with_tools_sync
from toolrun.tools import tool


class Point:
    """A plain class: pydantic has no schema for it."""

    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def test_an_untyped_parameter_is_refused_with_the_fix() -> None:
    def greet(name, times: int = 1) -> str:  # type: ignore[no-untyped-def]
        return name * times

    with pytest.raises(ToolSchemaError) as refused:
        tool(greet)
    assert refused.value.where == "tool.name"
    assert "parameter 'name' has no type hint" in refused.value.message
    assert "`name: str`" in refused.value.message and "`name: Any`" in refused.value.message


def test_any_is_the_explicit_way_to_accept_anything() -> None:
    def echo(value: Any) -> Any:
        return value

    assert tool(echo).parameters["properties"] == {"value": {}}


@pytest.mark.parametrize("annotation", [Point, list[Point], dict[str, Point] | None])
def test_a_custom_class_is_explained_in_toolruns_words(annotation: Any) -> None:
    def plot(where: int) -> str:
        return str(where)

    plot.__annotations__["where"] = annotation
    with pytest.raises(ToolSchemaError) as refused:
        tool(plot)
    message = refused.value.message
    assert refused.value.where == "tool.where"
    assert "parameter 'where' uses Point, a class with no JSON form" in message
    assert "BaseModel, a dataclass or a TypedDict" in message
    assert "arbitrary_types_allowed" not in message and "__get_pydantic_core_schema__" not in message


class _NeverCalled:
    def run(self, model: str, inputs: Any) -> Any:
        raise AssertionError("a bad option must be refused before any model call")


@pytest.mark.parametrize(
    ("option", "nearest"),
    [("max_recursive_tools_runs", "max_recursive_tool_runs"), ("timeout", "tool_timeout"), ("verbos", "verbose")],
)
def test_a_misspelt_run_option_names_the_nearest_one(option: str, nearest: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        run_with_tools_sync(_NeverCalled(), "m", {"prompt": "hi"}, **{option: 1})  # type: ignore[misc]
    assert isinstance(refused.value, ToolrunError) and not isinstance(refused.value, TypeError)
    assert refused.value.where == option
    assert f"unknown option {option!r}; did you mean {nearest!r}?" in refused.value.message


def test_an_unknown_tool_choice_names_the_nearest_tool() -> None:
    from toolrun.ai._inputs import _tool_choice

    with pytest.raises(InvalidInputError, match=r"; did you mean 'getGithubUser'"):
        _tool_choice({"type": "function", "function": {"name": "getGitHubUsers"}}, ["getGithubUser", "getWeather"])
