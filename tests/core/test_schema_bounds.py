"""Tool schema checks leave bounded memory behind and never recurse to death (issue #27, items 5 and 9)."""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from toolrun import _schema
from toolrun._errors import ToolSchemaError
from toolrun._schema import MAX_PATTERN_NESTING, check_tool_schema, pattern_nesting, validator
from toolrun._types import normalize_tools

DEEP = "(" * 500 + "a" + ")" * 500


def big_schema(i: int, size: int) -> dict[str, object]:
    return {"type": "object", "description": f"{i} " + "x" * size, "properties": {"a": {"type": "string"}}}


def test_checked_schemas_are_remembered_by_digest_not_by_text() -> None:
    """250 unique 1 MB schemas, each refused: before, the cache kept every text (the bound was ~8 GB)."""
    _schema._CHECKED.clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(250):
            bad = big_schema(i, 1_000_000)
            bad["properties"] = {"a": {"type": "nonsense"}}
            with pytest.raises(ToolSchemaError):
                check_tool_schema(bad, "tools[0].parameters", "t")
        for i in range(50):
            check_tool_schema(big_schema(i, 1_000_000), "tools[0].parameters", "t")
        gc.collect()  # refused schemas live on in their exceptions' reference cycles until then
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(_schema._CHECKED) == 50  # only those that passed
    assert all(isinstance(key, bytes) and len(key) == 32 for key in _schema._CHECKED)
    assert kept < 5_000_000, kept  # the 50 texts alone would be 50 MB


def test_checked_schemas_are_bounded_by_count() -> None:
    _schema._CHECKED.clear()
    for i in range(_schema.CHECKED_SCHEMAS + 100):
        check_tool_schema({"type": "object", "title": str(i)}, "p", "t")
    assert len(_schema._CHECKED) == _schema.CHECKED_SCHEMAS


def test_validator_cache_is_bounded_by_the_bytes_of_its_schemas() -> None:
    cache = _schema._ValidatorCache(size=512, max_bytes=4 * 1024 * 1024)
    for i in range(40):
        cache.get(big_schema(i, 500_000), check_formats=False)
    assert cache.held_bytes <= 4 * 1024 * 1024 and len(cache) <= 8
    made = cache.get(big_schema(99, 5_000_000), check_formats=False)  # over the whole budget: used, never kept
    assert made.is_valid({"a": "x"}) and cache.held_bytes <= 4 * 1024 * 1024
    small = {"type": "object", "properties": {"b": {"type": "integer"}}}
    assert cache.get(small, check_formats=False) is cache.get(dict(small), check_formats=False)
    assert cache.get(small, check_formats=True) is not cache.get(small, check_formats=False)


def test_a_deeply_nested_pattern_is_a_schema_error_naming_the_field() -> None:
    """Before: the meta-schema's format: regex check raised RecursionError, a 500."""
    assert pattern_nesting(DEEP) == 500
    tools = [{"name": "t", "parameters": {"type": "object", "properties": {"x": {"type": "string", "pattern": DEEP}}}}]
    with pytest.raises(ToolSchemaError) as caught:
        normalize_tools(tools)
    assert caught.value.where == "tools[0].parameters.properties.x.pattern"
    assert caught.value.status_code == 400
    keyed = [{"name": "t", "parameters": {"type": "object", "patternProperties": {DEEP: {"type": "string"}}}}]
    with pytest.raises(ToolSchemaError) as caught:
        normalize_tools(keyed)
    assert caught.value.where is not None and caught.value.where.startswith("tools[0].parameters.patternProperties")
    fine = "(" * MAX_PATTERN_NESTING + "a" + ")" * MAX_PATTERN_NESTING
    normalize_tools([{"name": "t", "parameters": {"type": "object", "properties": {"x": {"pattern": fine}}}}])


def test_validation_cannot_recurse_to_death() -> None:
    """A validator reached without the check (or a regex-module-only nesting) answers, never raises."""
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": DEEP}}}
    errors = list(validator(schema).iter_errors({"x": "a"}))
    assert errors and "could not be checked" in errors[0].message
    nested_sets = "(?V1)" + "[" * 2000 + "a" + "]" * 2000  # recursion in the regex module's own parser
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": nested_sets}}}
    assert list(validator(schema).iter_errors({"x": "a"}))
    assert sys.getrecursionlimit() >= 1000  # the bound above assumes the interpreter's default
