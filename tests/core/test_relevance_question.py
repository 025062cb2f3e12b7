"""The yes/no question a model is asked about the turn's first call (the catalog's ``ask_relevance``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from judgment_testing import TRIANGLE_AREA

from toolrun._grounding import conversation_text
from toolrun.ai import Catalog
from toolrun.ai._inputs import build_request, parse_inputs
from toolrun.engines._base import GenerationRequest
from toolrun.engines.turn._judgment import (
    RELEVANCE_EXAMPLES,
    named_and_said,
    relevance_messages,
    relevance_question,
    required_values_said,
)

# One parameter left undescribed: the question names it alone.
AREA = copy.deepcopy(TRIANGLE_AREA)
del AREA["parameters"]["properties"]["height"]["description"]


def request(messages: list[dict[str, object]], tool: dict[str, Any] = AREA) -> GenerationRequest:
    return build_request(parse_inputs({"messages": messages, "tools": [tool]}), function_calling=True)


def test_the_question_names_the_function_then_quotes_the_last_request() -> None:
    asked = request(
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "  What is the perimeter of a triangle with sides 3, 4 and 5?  "},
        ]
    )
    question = relevance_question({"name": "calculate_triangle_area", "arguments": {}}, asked)
    assert question is not None
    assert question.startswith("Function: calculate_triangle_area\nWhat it does: Calculate the area of a triangle")
    # One line per parameter, with its description; one without a description is named alone.
    assert "\nParameters:\n- base: The base of the triangle.\n- height\n\n" in question
    assert 'Request: "What is the perimeter of a triangle with sides 3, 4 and 5?"' in question
    assert "Hello" not in question
    assert question.endswith("Answer yes or no.")


def test_nothing_is_asked_about_an_unknown_tool_or_without_a_request() -> None:
    asked = request([{"role": "user", "content": "What is the area of a 3 by 4 triangle?"}])
    assert relevance_question({"name": "no_such_tool", "arguments": {}}, asked) is None
    only_system = request([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "   "}])
    assert relevance_question({"name": "calculate_triangle_area", "arguments": {}}, only_system) is None


def test_ask_relevance_is_a_catalog_setting_and_part_of_the_judgement(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[models."@local/qwen2.5-coder-0.5b-instruct"]\nask_relevance = 0.4\nask_relevance_unsaid = 0.7\n'
    )
    entry = Catalog.load(config).get("@local/qwen2.5-coder-0.5b-instruct")
    assert (entry.policy.ask_relevance, entry.policy.ask_relevance_unsaid) == (0.4, 0.7)
    assert entry.policy.as_dict()["ask_relevance"] == 0.4
    assert entry.policy.as_dict()["ask_relevance_unsaid"] == 0.7


def test_a_description_over_several_lines_stays_on_its_parameter_line() -> None:
    markdown = copy.deepcopy(TRIANGLE_AREA)
    markdown["parameters"]["properties"]["base"]["description"] = "The base.\n\n- in cm\n- positive"
    asked = request([{"role": "user", "content": "Area of a 3 by 4 triangle?"}], markdown)
    question = relevance_question({"name": "calculate_triangle_area", "arguments": {}}, asked)
    assert question is not None
    assert "\nParameters:\n- base: The base. - in cm - positive\n- height: " in question


def test_a_function_without_parameters_says_so() -> None:
    bare = {"name": "get_time", "description": "The current time.", "parameters": {"type": "object", "properties": {}}}
    asked = request([{"role": "user", "content": "What time is it?"}], bare)
    question = relevance_question({"name": "get_time", "arguments": {}}, asked)
    assert question is not None and "\nParameters: none\n\n" in question


def test_the_question_follows_worked_answers_of_both_kinds() -> None:
    asked = request([{"role": "user", "content": "What is the perimeter of a triangle with sides 3, 4 and 5?"}])
    messages = relevance_messages({"name": "calculate_triangle_area", "arguments": {}}, asked)
    assert messages is not None
    *examples, last = messages
    assert last == {"role": "user", "content": relevance_question({"name": "calculate_triangle_area"}, asked)}
    # Each worked answer is the same question about a tool of toolrun's own, then a bare yes or no.
    assert [m["role"] for m in examples] == ["user", "assistant"] * len(RELEVANCE_EXAMPLES)
    answers = [m["content"] for m in examples[1::2]]
    assert sorted(answers) == ["no", "no", "yes", "yes"]
    for (name, *_), question in zip(RELEVANCE_EXAMPLES, examples[::2], strict=True):
        assert question["content"].startswith(f"Function: {name}\n")
        assert "\nParameters:\n- " in question["content"]
        assert question["content"].endswith("Was this function made for this request? Answer yes or no.")
    assert relevance_messages({"name": "no_such_tool", "arguments": {}}, asked) is None


FINAL_PRICE = {
    "name": "final_price",
    "description": "The price of a product after a discount, with sales tax added.",
    "parameters": {
        "type": "object",
        "properties": {
            "price": {"type": "number", "description": "The price before the discount."},
            "discount": {"type": "number", "description": "The discount, in percent."},
            "currency": {"type": "string", "enum": ["USD", "EUR"]},
            "rounding": {"type": "integer", "description": "Decimal places."},
        },
        "required": ["price", "discount", "currency"],
    },
}


def said(content: str, arguments: dict[str, Any], name: str = "final_price") -> bool:
    asked = request([{"role": "user", "content": content}], FINAL_PRICE)
    return required_values_said({"name": name, "arguments": arguments}, asked, conversation_text(asked.messages))


def test_required_values_said_asks_only_for_required_values_the_schema_does_not_name() -> None:
    # Every required value said; the enum's value need not be, nor an optional parameter's.
    assert said("What do I pay for a $80 coat at 25% off?", {"price": 80, "discount": 25, "currency": "USD"})
    assert said("A $80 coat at 25% off?", {"price": 80, "discount": 25, "currency": "EUR", "rounding": 2})
    # No price in the request: the model made one up.
    assert not said("What do I pay after a 25% discount?", {"price": 100, "discount": 25, "currency": "USD"})
    # A tool the request does not offer is not said to fit.
    assert not said("A $80 coat at 25% off?", {}, name="other")


def test_a_call_the_user_named_with_every_required_value_said_is_kept_without_the_question() -> None:
    def kept(content: str, arguments: dict[str, Any]) -> bool:
        asked = request([{"role": "user", "content": content}], FINAL_PRICE)
        call = {"name": "final_price", "arguments": arguments}
        return named_and_said(call, asked, conversation_text(asked.messages))

    values = {"price": 80, "discount": 25, "currency": "USD"}
    assert kept("The final price of an $80 coat at 25% off?", values)
    # Named, but the price was made up: the question decides (at ask_relevance_unsaid).
    assert not kept("The final price at 25% off?", values)
    # Every value said, but the request does not name the tool ("final" missing): the question decides.
    assert not kept("What do I pay for an $80 coat at 25% off?", values)
