"""BFCL's cases and checker read from a wheel without installing it (a trimmed copy of the real wheel)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from toolrun.eval import CATEGORIES, BfclData, EvalDataError, to_tool

FIXTURE = Path(__file__).parent / "fixtures" / "bfcl_eval-2026.3.23-first3.whl"


@pytest.fixture(scope="module")
def data() -> BfclData:
    return BfclData(FIXTURE)


def test_cases_come_in_bfcl_order_with_their_answers(data):
    cases = data.cases("simple_python", limit=2)
    assert [c.id for c in cases] == ["simple_python_0", "simple_python_1"]
    assert cases[0].messages[0]["role"] == "user" and "triangle" in cases[0].messages[0]["content"]
    assert cases[0].ground_truth == [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    assert [c.id for c in data.cases("simple_python", offset=1)] == ["simple_python_1", "simple_python_2"]
    assert data.cases("irrelevance", limit=1)[0].ground_truth is None  # scored by "no call", no answer file


def test_the_checker_is_bfcls_own(data):
    checker = data.checker()
    language = data.python_language()
    case = data.cases("simple_python", limit=1)[0]
    right = [{"calculate_triangle_area": {"base": 10, "height": 5}}]
    wrong = [{"calculate_triangle_area": {"base": 10, "height": 6}}]
    assert checker(case.functions, right, case.ground_truth, language, "simple_python", "m")["valid"]
    verdict = checker(case.functions, wrong, case.ground_truth, language, "simple_python", "m")
    assert not verdict["valid"] and verdict["error_type"] == "value_error:others"


def test_parallel_answers_in_any_order(data):
    case = data.cases("parallel", limit=1)[0]
    truth = case.ground_truth
    output = [{name: {k: v[0] for k, v in args.items()}} for call in reversed(truth) for name, args in call.items()]
    assert data.checker()(case.functions, output, truth, data.python_language(), "parallel", "m")["valid"]


def test_unknown_or_missing_categories_are_named(data, tmp_path):
    with pytest.raises(EvalDataError, match="unknown BFCL category 'multi_turn_base'"):
        data.cases("multi_turn_base")
    assert "live_multiple" in CATEGORIES
    with pytest.raises(EvalDataError, match=r"BFCL_v4_live_multiple\.json is not in"):
        data.cases("live_multiple")
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(EvalDataError, match="not a readable bfcl-eval wheel"):
        BfclData(broken)


def test_a_wheel_without_the_checker_fails_with_a_message(tmp_path):
    bare = tmp_path / "bare.whl"
    with zipfile.ZipFile(FIXTURE) as src, zipfile.ZipFile(bare, "w") as out:
        for name in src.namelist():
            if "/data/" in name:
                out.writestr(name, src.read(name))
    with pytest.raises(EvalDataError, match="could not import BFCL's AST checker"):
        BfclData(bare).checker()
    BfclData(FIXTURE).checker()  # and the real one is found again afterwards


def test_bfcl_types_become_json_schema(data):
    tool = to_tool(data.cases("simple_python", limit=1)[0].functions[0])
    assert tool["name"] == "calculate_triangle_area"
    assert tool["parameters"]["type"] == "object"
    assert tool["parameters"]["properties"]["base"]["type"] == "integer"
    nested = to_tool(
        {
            "name": "a.b",
            "parameters": {
                "type": "dict",
                "properties": {
                    "xs": {"type": "tuple", "items": {"type": "float"}},
                    "anything": {"type": "any"},
                    "either": {"type": ["str", "any"]},
                },
            },
        }
    )
    props = nested["parameters"]["properties"]
    assert props == {
        "xs": {"type": "array", "items": {"type": "number"}},
        "anything": {},
        "either": {"type": ["string"]},
    }
