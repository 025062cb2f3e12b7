"""What a function tool returns reaches the model as complete JSON, whatever Python types it holds.

Each value goes through a real ``run_with_tools`` run (toolrun's ``AsyncAI``
with the scripted engine): the tool message the model reads is parsed back and
compared. Before, a dict keyed by dates came through ``reprlib.repr``, cut to
133 characters with strings cut to 30 and no word that anything was missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import pydantic

from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.embedded import run_with_tools
from toolrun.embedded._execute import MAX_DEPTH, MAX_REPR_CHARS
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply
from toolrun.tools import tool

MODEL = "@test/result-encoding"


async def what_the_model_reads(value: Any) -> str:
    """The content of the tool message for a tool returning ``value``."""

    @tool
    def lookup() -> Any:
        """Returns the value under test."""
        return value

    ai = AsyncAI(catalog=Catalog())  # built-ins only: the user's config must not leak in
    ai.register(
        ModelEntry(name=MODEL, description="Scripted."),
        ScriptedEngine([ScriptedReply(calls=[("lookup", {})]), ScriptedReply(text="ok")]),
    )
    out = await run_with_tools(ai, MODEL, {"prompt": "go", "tools": [lookup]}, max_recursive_tool_runs=0)
    (content,) = [m["content"] for m in out["messages"] if m["role"] == "tool"]
    return content


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Reading:
    when: datetime.datetime
    celsius: decimal.Decimal
    colour: Colour
    tags: frozenset[str]


class Station(pydantic.BaseModel):
    id: uuid.UUID
    opened: datetime.date
    readings: list[int]


STATION_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


async def test_a_dict_keyed_by_dates_comes_through_whole() -> None:
    days = {datetime.date(2024, 1, 1) + datetime.timedelta(days=i): f"reading number {i} " * 3 for i in range(40)}
    decoded = json.loads(await what_the_model_reads(days))
    assert len(decoded) == 40
    assert decoded["2024-01-01"] == "reading number 0 " * 3  # ISO 8601 keys, strings not cut
    assert decoded["2024-02-09"] == "reading number 39 " * 3


async def test_python_types_are_written_as_json() -> None:
    value = {
        "at": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 5, 6),
        "time": datetime.time(7, 8),
        "pair": (1, "two"),
        "set": {3, 1, 2},
        "mixed_set": {1, "a"},
        "reading": Reading(
            datetime.datetime(2024, 5, 6, 12, 0), decimal.Decimal("21.50"), Colour.BLUE, frozenset({"b", "a"})
        ),
        "station": Station(id=STATION_ID, opened=datetime.date(1999, 12, 31), readings=[1, 2]),
        "colour": Colour.RED,
        "price": decimal.Decimal("0.10"),
        "id": STATION_ID,
        "text_bytes": "héllo".encode(),
        "binary": b"\xff\x00\x01",
        (1, 2): "tuple key",
        STATION_ID: "uuid key",
        Colour.BLUE: "enum key",
        7: "int key",
    }
    decoded = json.loads(await what_the_model_reads(value))
    assert decoded == {
        "at": "2024-05-06T07:08:09+00:00",
        "day": "2024-05-06",
        "time": "07:08:00",
        "pair": [1, "two"],
        "set": [1, 2, 3],
        "mixed_set": decoded["mixed_set"],  # items that do not compare: in the set's own order
        "reading": {"when": "2024-05-06T12:00:00", "celsius": "21.50", "colour": "blue", "tags": ["a", "b"]},
        "station": {"id": str(STATION_ID), "opened": "1999-12-31", "readings": [1, 2]},
        "colour": "red",
        "price": "0.10",
        "id": str(STATION_ID),
        "text_bytes": "héllo",
        "binary": {"base64": "/wAB"},
        "(1, 2)": "tuple key",
        str(STATION_ID): "uuid key",
        "blue": "enum key",
        "7": "int key",
    }
    assert sorted(decoded["mixed_set"], key=str) == [1, "a"]


async def test_a_top_level_pydantic_model_and_dataclass() -> None:
    station = Station(id=STATION_ID, opened=datetime.date(2000, 1, 1), readings=[])
    assert json.loads(await what_the_model_reads(station)) == {
        "id": str(STATION_ID),
        "opened": "2000-01-01",
        "readings": [],
    }
    reading = Reading(datetime.datetime(2024, 1, 1), decimal.Decimal(1), Colour.RED, frozenset())
    assert json.loads(await what_the_model_reads(reading))["colour"] == "red"


async def test_a_circular_reference_is_named_and_the_rest_is_kept() -> None:
    node: dict[Any, Any] = {"name": "root", datetime.date(2024, 1, 1): "dated"}
    node["self"] = node
    assert json.loads(await what_the_model_reads(node)) == {
        "name": "root",
        "2024-01-01": "dated",
        "self": "[circular reference]",
    }


async def test_nesting_too_deep_for_json_is_cut_with_a_note() -> None:
    deep: Any = "bottom"
    for _ in range(100_000):  # deeper than the recursion limit: no JSON encoder can write it
        deep = {datetime.date(2024, 1, 1): deep}
    content = await what_the_model_reads(deep)
    level = json.loads(content)
    for _ in range(MAX_DEPTH):
        level = level["2024-01-01"]
    assert level == f"[cut: nested deeper than {MAX_DEPTH} levels]"


class Opaque:
    """Neither str() nor JSON will take it; only its (long) repr is left."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    def __repr__(self) -> str:
        return "opaque " * 20_000


async def test_a_value_only_its_repr_can_show_is_cut_and_says_its_size() -> None:
    content = await what_the_model_reads({"thing": Opaque()})
    assert content.startswith("{'thing': opaque opaque")
    expected_size = len(repr({"thing": Opaque()}))
    assert content.endswith(f"… [cut: {MAX_REPR_CHARS:,} of {expected_size:,} characters]")
