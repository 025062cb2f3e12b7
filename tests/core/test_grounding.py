"""The grounding checks: is a tried call new, does the conversation say its values (``try_another_call``),
and does a first call fit the request at all (``check_relevance``)?"""

from __future__ import annotations

from toolrun._grounding import (
    asks_something_new,
    conversation_text,
    fits_request,
    is_grounded,
    names_tool,
    schema_constants,
    tool_words,
)

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


def test_a_number_written_against_its_unit_is_said() -> None:
    said = text("Circles with a radius of 5cm, 10cm and 15.5mm, and a 100µF capacitor.")
    assert is_grounded({"radius": 5}, said) and is_grounded({"radius": 10.0}, said)
    assert is_grounded({"radius": 15.5}, said) and is_grounded({"capacitance": 100}, said)
    # ... but not a number inside another one, nor one the text does not hold.
    assert not is_grounded({"radius": 15}, said) and not is_grounded({"radius": 0}, said)
    assert not is_grounded({"n": 5}, text("Version 2.5cm"))


WEATHER_WORDS = tool_words(
    "getWeather",
    "Return the weather for a latitude and longitude",
    {"type": "object", "properties": {"latitude": {"type": "string", "description": "The latitude"}}},
)
AREA_WORDS = tool_words(
    "calculate_triangle_area",
    "Calculate the area of a triangle given its base and height.",
    {"type": "object", "properties": {"base": {"type": "number"}, "height": {"type": "number"}}},
)


def user(content: str) -> list:
    return [{"role": "user", "content": content}]


def test_tool_words_come_from_its_name_description_and_parameters() -> None:
    assert {"weath", "latit", "longi"} <= WEATHER_WORDS  # cut to five letters: "weathers" ~ "weather"
    assert {"trian", "area", "base", "heigh"} <= AREA_WORDS
    assert "calcu" not in AREA_WORDS and "given" not in AREA_WORDS  # too common to tell anything


def test_a_request_names_a_tool_when_every_word_of_its_name_is_the_users() -> None:
    asked = user("What is the circumference of a circle with a radius of 4 inches?")
    assert names_tool("calculate_circumference", asked)  # "calculate" is too common to count
    assert names_tool("geometry.circumference", user("The circumference of a circle and its geometry?"))
    assert names_tool("getWeather", user("What's the weather in London?"))  # camelCase, "weather" ~ "weathers"
    # One word of the name missing is enough to say no: the request is near the tool, not for it.
    assert not names_tool("geometry.circumference", asked)
    assert not names_tool("get_local_time", user("What is the current time in Sydney?"))
    # Nothing to name: a name of common or short words only.
    assert not names_tool("get_info", user("Get me the info."))
    # Only the user's words count, not the assistant's or a tool's.
    said_by_others = [
        *user("How big is it?"),
        {"role": "assistant", "content": "The circumference?"},
        {"role": "tool", "content": "circumference"},
    ]
    assert not names_tool("calculate_circumference", said_by_others)


def test_a_call_fits_when_the_request_shares_a_word_with_its_tool() -> None:
    # The model knows where London is: a shared word is enough, the values need not be said.
    assert fits_request({"latitude": "51.5", "longitude": "-0.12"}, WEATHER_WORDS, user("Weather in London?"))
    assert fits_request({"base": 3, "height": 4}, AREA_WORDS, user("A triangle, please: any size."))


def test_a_call_fits_when_the_user_said_every_value_in_it() -> None:
    assert fits_request({"base": 10, "height": 5}, AREA_WORDS, user("Work it out: 10 by 5."))
    assert not fits_request({"base": 10, "height": 7}, AREA_WORDS, user("Work it out: 10 by 5."))
    assert not fits_request({}, AREA_WORDS, user("Work it out: 10 by 5."))  # nothing said at all


def test_a_call_that_shares_nothing_and_makes_up_its_values_does_not_fit() -> None:
    assert not fits_request({"base": 10, "height": 5}, AREA_WORDS, user("What is the capital of France?"))
    # Only the user's words count: the system prompt may name every tool.
    messages = [{"role": "system", "content": "You compute triangle areas."}, *user("Capital of France?")]
    assert not fits_request({"base": 10, "height": 5}, AREA_WORDS, messages)


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
