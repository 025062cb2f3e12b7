"""The grounding check behind ``try_another_call``: is a tried call new, and does the conversation say its values?"""

from __future__ import annotations

from toolrun.engines._grounding import conversation_text, grounded_values, is_grounded, schema_constants

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}


def text(content: str) -> str:
    return conversation_text([{"role": "user", "content": content}])


def test_values_from_the_request_are_grounded_and_made_up_ones_are_not() -> None:
    said = text("What's the weather in São Paulo and New York?")
    assert is_grounded({"city": "Sao Paulo"}, said)
    assert is_grounded({"city": "new york"}, said)
    assert not is_grounded({"city": "Chicago"}, said)
    assert not is_grounded({"base": 10, "height": 5}, text("What is the capital of France?"))


def test_a_schemas_own_constants_need_not_be_said() -> None:
    said = text("Weather in Paris?")
    assert not is_grounded({"city": "Paris", "unit": "kelvin"}, said)
    assert is_grounded({"city": "Paris", "unit": "fahrenheit"}, said, allowed=schema_constants(WEATHER_SCHEMA))


def test_calls_that_differ_only_in_values_the_model_chose_ask_the_same_thing() -> None:
    said = text("What is the weather in Paris?")
    first = grounded_values({"city": "Paris", "unit": "celsius"}, said)
    assert grounded_values({"city": "Paris", "unit": "fahrenheit"}, said) == first
    assert grounded_values({"city": "London"}, text("Weather in Paris and London?")) != grounded_values(
        {"city": "Paris"}, text("Weather in Paris and London?")
    )


def test_values_the_user_asked_for_make_calls_different() -> None:
    said = text("The weather in Paris in celsius and in fahrenheit, please.")
    assert grounded_values({"city": "Paris", "unit": "celsius"}, said) != grounded_values(
        {"city": "Paris", "unit": "fahrenheit"}, said
    )
    # The same values in other places are another request (a 5-by-10 box is not a 10-by-5 one here).
    sizes = text("Area of a 5 by 10 rectangle and of a 10 by 5 one")
    assert grounded_values({"a": 5, "b": 10}, sizes) != grounded_values({"a": 10, "b": 5}, sizes)
