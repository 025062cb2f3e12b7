"""The grounding check behind ``try_another_call``: is a tried call new, and does the conversation say its values?"""

from __future__ import annotations

from toolrun._grounding import asks_something_new, conversation_text, is_grounded, schema_constants

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
    # A sentence's full stop is not part of its last word; a decimal point is part of its number.
    assert is_grounded({"page": 4, "n": 15}, text("Factorials of 5, 10 and 15. The code is on page 4."))
    assert is_grounded({"x": 4.5}, text("Round 4.5 please")) and not is_grounded({"x": 4}, text("Round 4.5 please"))


def test_a_schemas_own_constants_need_not_be_said() -> None:
    said = text("Weather in Paris?")
    assert not is_grounded({"city": "Paris", "unit": "kelvin"}, said)
    assert is_grounded({"city": "Paris", "unit": "fahrenheit"}, said, allowed=schema_constants(WEATHER_SCHEMA))


def test_a_further_call_must_bring_a_value_the_user_said_that_no_earlier_call_used() -> None:
    said = text("What is the weather in Paris?")
    assert not asks_something_new({"city": "Paris", "unit": "fahrenheit"}, [{"city": "Paris", "unit": "celsius"}], said)
    both = text("Weather in Paris and London?")
    assert asks_something_new({"city": "London"}, [{"city": "Paris"}], both)
    assert not asks_something_new({"city": "paris"}, [{"city": "Paris"}, {"city": "London"}], both)


def test_values_the_user_asked_for_make_calls_new() -> None:
    units = text("The weather in Paris in celsius and in fahrenheit, please.")
    assert asks_something_new({"city": "Paris", "unit": "fahrenheit"}, [{"city": "Paris", "unit": "celsius"}], units)
    numbers = text("Factorials of 5, 10 and 15")
    assert asks_something_new({"number": 10}, [{"number": 5}], numbers)
    # The same numbers in another order, or handed to another tool, ask nothing new.
    sizes = text("Area of a triangle with base 10 and height 5")
    assert not asks_something_new({"base": 5, "height": 10}, [{"base": 10, "height": 5}], sizes)
    assert not asks_something_new({"radius": 5}, [{"base": 10, "height": 5}], sizes)
    assert not asks_something_new({"base": 10.0, "height": 5.0}, [{"base": 10, "height": 5}], sizes)
