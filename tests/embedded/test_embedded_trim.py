"""The trimmers: BM25 over names and descriptions, and the model-driven auto_trim_tools."""

from __future__ import annotations

import functools

import pytest
from embedded_standins import ScriptedAI, reply

from toolrun.embedded import auto_trim_tools, bm25_trim_tools, run_with_tools
from toolrun.embedded._trim import bm25_scores, tokenize
from toolrun.tools import Tool

TOOLS = [
    {"name": "getGithubUser", "description": "Provides publicly available information about a GitHub account."},
    {"name": "get_weather", "description": "Gets the current weather of a city."},
    {"name": "math.triangle_area_heron", "description": "Calculates the area of a triangle from its three sides."},
    {"name": "send_email", "description": "Sends an email message to a recipient."},
    {"name": "convert_currency", "description": "Converts an amount between two currencies."},
    {"name": "get_time", "description": "Gets the local time in a city."},
]


def names(tools):
    return [t["name"] if isinstance(t, dict) else t.name for t in tools]


def ask(text):
    return [{"role": "user", "content": text}]


def test_tokenize_splits_identifiers_and_folds_plurals():
    assert tokenize("getGithubUser") == ["github", "user"]  # "get" is a stop word: every tool "gets"
    assert tokenize("math.triangle_area_heron") == ["math", "triangl", "area", "heron"]
    assert tokenize("Triangles and cities") == ["triangl", "city"]
    assert tokenize("HTTPServer") == ["http", "server"]


def test_bm25_prefers_rarer_matching_terms():
    scores = bm25_scores("weather in the city", ["weather of a city", "time in a city", "send email"])
    assert scores[0] > scores[1] > scores[2] == 0


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Who is cloudflare on github?", "getGithubUser"),
        ("What's the weather in Mumbai?", "get_weather"),
        ("Area of a triangle with sides 3, 4 and 5", "math.triangle_area_heron"),
        ("Convert 100 dollars to euros (currency exchange)", "convert_currency"),
    ],
)
def test_bm25_top_1_finds_the_right_tool(question, expected):
    assert names(bm25_trim_tools(TOOLS, None, "m", ask(question), top_k=1)) == [expected]


def test_bm25_keeps_the_original_order_and_accepts_any_tool_shape():
    kept = bm25_trim_tools(TOOLS, None, "m", ask("weather and local time in a city"), top_k=2)
    assert names(kept) == ["get_weather", "get_time"]
    as_tools = [Tool(t["name"], t["description"]) for t in TOOLS]
    assert names(bm25_trim_tools(as_tools, None, "m", ask("send an email"), top_k=1)) == ["send_email"]
    openai = [{"type": "function", "function": t} for t in TOOLS]
    assert bm25_trim_tools(openai, None, "m", ask("send an email"), top_k=1) == [openai[3]]


def test_bm25_leaves_short_lists_and_unmatched_requests_alone():
    assert bm25_trim_tools(TOOLS[:3], None, "m", ask("weather"), top_k=5) == TOOLS[:3]
    assert bm25_trim_tools(TOOLS, None, "m", ask("qwertyuiop zxcv"), top_k=2) == TOOLS
    with pytest.raises(ValueError):
        bm25_trim_tools(TOOLS, None, "m", ask("x"), top_k=0)


def test_bm25_reads_the_turn_before_a_very_short_follow_up():
    messages = ask("What's the weather in Paris?") + [{"role": "assistant", "content": "Sunny."}] + ask("And Rome?")
    assert names(bm25_trim_tools(TOOLS, None, "m", messages, top_k=1)) == ["get_weather"]


async def test_bm25_as_trim_function_with_a_top_k_of_choice():
    ai = ScriptedAI(reply("ok"))
    tools = [dict(t, function=print) for t in TOOLS]
    await run_with_tools(
        ai,
        "m",
        {"messages": ask("Send an email to Ada"), "tools": tools},
        trim_function=functools.partial(bm25_trim_tools, top_k=1),
    )
    assert [t["function"]["name"] for t in ai.requests[0]["tools"]] == ["send_email"]


async def test_auto_trim_is_a_no_op_below_five_tools():
    ai = ScriptedAI()
    assert await auto_trim_tools(TOOLS[:4], ai, "m", ask("weather")) == TOOLS[:4]
    assert ai.requests == []


async def test_auto_trim_asks_the_model_once_with_names_and_descriptions():
    ai = ScriptedAI(reply("", ("chooseTool", {"tools": ["get_weather", "GET_TIME"]})))
    kept = await auto_trim_tools(TOOLS, ai, "@m", ask("Weather and time in Pune?"))
    assert names(kept) == ["get_weather", "get_time"]
    (request,) = ai.requests
    prompt = request["messages"][0]["content"]
    assert "- send_email: Sends an email message to a recipient." in prompt
    assert "user: Weather and time in Pune?" in prompt
    (choose,) = request["tools"]
    assert choose["function"]["name"] == "chooseTool"
    assert choose["function"]["parameters"]["properties"]["tools"]["items"]["enum"] == names(TOOLS)
    assert request["tool_choice"] == {"type": "function", "function": {"name": "chooseTool"}}


@pytest.mark.parametrize(
    "answer",
    [
        reply("I think get_weather."),  # no call at all
        reply("", ("chooseTool", {"tools": ["made_up"]})),  # names nothing real
        reply("", ("chooseTool", {"tools": []})),  # names nothing
    ],
)
async def test_auto_trim_keeps_every_tool_when_the_choice_is_useless(answer):
    assert await auto_trim_tools(TOOLS, ScriptedAI(answer), "m", ask("weather")) == TOOLS


async def test_auto_trim_reads_a_comma_string_and_json_string_arguments():
    ai = ScriptedAI(
        {
            "response": "",
            "tool_calls": [{"function": {"name": "chooseTool", "arguments": '{"tools": "send_email, get_time"}'}}],
        }
    )
    assert names(await auto_trim_tools(TOOLS, ai, "m", ask("mail the time"))) == ["send_email", "get_time"]
