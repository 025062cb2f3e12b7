"""OpenAI's Responses API (``POST /v1/responses``) over real HTTP, the official ``openai`` SDK as the client.

The scripted engine checks the shapes and the event sequence; the tests marked ``model`` run the real
default model (the seed's example, a round trip, streamed argument deltas, enforced tool choice).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from seed_testing import SEED_PROMPT, SEED_TOOL
from server_testing import API_KEY, SCRIPTED, WEATHER_TOOL, LiveServer

from toolrun import DEFAULT_MODEL

FLAT_WEATHER = {"type": "function", **WEATHER_TOOL}
ASK = "What's the weather in Lisbon?"


@pytest.fixture
def client(scripted_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=scripted_server.url + "/v1", api_key=API_KEY, max_retries=0)


def sse_events(server: LiveServer, body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The raw stream: every ``event:`` name and every ``data:`` payload, in order."""
    names, payloads = [], []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line[len("event: ") :])
            elif line.startswith("data: "):
                payloads.append(json.loads(line[len("data: ") :]))  # no [DONE]: it would not parse
    return names, payloads


# ------------------------------------------------------------------ scripted: shapes


def test_call_then_round_trip_with_the_result(client: OpenAI) -> None:
    first = client.responses.create(model=SCRIPTED, input=ASK, tools=[FLAT_WEATHER])
    assert first.object == "response" and first.status == "completed" and first.id.startswith("resp_")
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Lisbon"}
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert first.usage is not None and first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens
    assert first.tools[0].name == "get_weather" and first.tool_choice == "auto" and first.store is False

    # The SDK's own output items go straight back in, with the tool's result after them.
    second = client.responses.create(
        model=SCRIPTED,
        tools=[FLAT_WEATHER],
        input=[
            {"role": "user", "content": ASK},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "21°C and sunny"},
        ],
    )
    assert second.output_text == "It is 21°C and sunny in Lisbon."
    assert [item.type for item in second.output] == ["message"]
    assert second.output[0].role == "assistant" and second.output[0].content[0].type == "output_text"


def test_instructions_and_message_items_reach_the_model(start_server) -> None:
    from server_testing import scripted_ai

    ai, engine = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    client = OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
    answer = client.responses.create(
        model=SCRIPTED,
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use metric units."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one two"}]},
        ],
    )
    assert answer.output_text == "echo: one two"
    (request,) = engine.requests
    roles = [(m["role"], m["content"]) for m in request.messages]
    assert roles == [("system", "Be brief."), ("system", "Use metric units."), ("user", "one two")]


def test_tool_choice_none_calls_nothing(client: OpenAI) -> None:
    answer = client.responses.create(model=SCRIPTED, input=ASK, tools=[FLAT_WEATHER], tool_choice="none")
    assert answer.status == "completed" and not [item for item in answer.output if item.type == "function_call"]


def test_text_stream_is_the_real_event_sequence(scripted_server: LiveServer) -> None:
    names, events = sse_events(scripted_server, {"model": SCRIPTED, "input": "one two three"})
    assert names == [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,  # "echo:", " one", " two", " three": the script's words
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    assert "".join(deltas) == done["text"] == "echo: one two three"
    item_ids = {e["item_id"] for e in events if "item_id" in e}
    assert len(item_ids) == 1
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert completed["id"] == created["id"] and completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == "echo: one two three"
    assert completed["usage"]["output_tokens"] > 0


def test_streamed_call_through_the_sdk(client: OpenAI) -> None:
    arguments, done_arguments, types = "", None, []
    with client.responses.stream(model=SCRIPTED, input=ASK, tools=[FLAT_WEATHER]) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                arguments += event.delta
            elif event.type == "response.function_call_arguments.done":
                done_arguments = event.arguments
        final = stream.get_final_response()
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert arguments == done_arguments and json.loads(arguments) == {"city": "Lisbon"}
    (call,) = final.output
    assert call.type == "function_call" and call.arguments == arguments and call.status == "completed"


def test_create_with_stream_true(client: OpenAI) -> None:
    events = list(client.responses.create(model=SCRIPTED, input="hi there", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == "echo: hi there"


# ------------------------------------------------------------------ bad input: 400, OpenAI's shape


def post(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.mark.parametrize(
    ("body", "param", "mentions"),
    [
        (
            {"input": "x", "tools": [{"type": "function", "name": "f", "parameters": {"type": "objekt"}}]},
            "tools[0].parameters.type",
            "not valid JSON Schema",
        ),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type", "reasoning"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role", "robot"),
        ({"input": "x", "tools": [FLAT_WEATHER, {"type": "web_search"}]}, "tools[1].type", "web_search"),
        ({"input": "x", "previous_response_id": "resp_123"}, "previous_response_id", "stateless"),
        ({"input": "x", "store": True}, "store", "stateless"),
        (
            {"input": "x", "tools": [FLAT_WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice.name",
            "nope",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0]",
            "input_image",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{oops"}]},
            "input[0].arguments",
            "JSON",
        ),
        ({"input": "x", "max_output_tokens": 10**6}, "max_output_tokens", ""),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema", ""),
        ({"input": "x", "frobnicate": 1}, "frobnicate", "frobnicate"),
        ({}, "input", ""),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    scripted_server: LiveServer, body: dict[str, Any], param: str, mentions: str
) -> None:
    answer = post(scripted_server, {"model": SCRIPTED, **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert mentions in error["message"]


def test_the_sdk_raises_bad_request_with_the_field(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=SCRIPTED, input="x", tools=[{"type": "file_search", "vector_store_ids": ["v"]}])
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "tools[0].type" and "file_search" in caught.value.body["message"]


def test_unknown_model_is_a_404_in_openai_shape(scripted_server: LiveServer) -> None:
    answer = post(scripted_server, {"model": "@nobody/nothing", "input": "x"})
    assert answer.status_code == 404 and answer.json()["error"]["param"] == "model"


# ------------------------------------------------------------------ the real default model


@pytest.fixture
def real_client(start_server, async_ai) -> OpenAI:
    server = start_server(async_ai, api_keys=[API_KEY])
    return OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=600)


SEED_FLAT = {"type": "function", **SEED_TOOL}
#: As users run it: toolrun's default sampling (temperature 0.6). The decision to call and the call's values do not
#: depend on it (decided from the model's probabilities, written at call_temperature 0); the text does.
DEFAULT_SAMPLING: dict[str, Any] = {"max_output_tokens": 96}


@pytest.mark.model
def test_seed_example_then_round_trip(real_client: OpenAI) -> None:
    first = real_client.responses.create(model=DEFAULT_MODEL, input=SEED_PROMPT, tools=[SEED_FLAT], **DEFAULT_SAMPLING)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    (call,) = calls
    assert call.name == "getGithubUser" and json.loads(call.arguments)["username"].lower() == "cloudflare"

    user = {"login": "cloudflare", "name": "Cloudflare", "public_repos": 400, "location": "San Francisco, CA"}
    second = real_client.responses.create(
        model=DEFAULT_MODEL,
        tools=[SEED_FLAT],
        input=[
            {"role": "user", "content": SEED_PROMPT},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(user)},
        ],
        **DEFAULT_SAMPLING,
    )
    assert [item.type for item in second.output] == ["message"], second.output
    assert second.output_text.strip()


@pytest.mark.model
def test_streamed_argument_deltas_reassemble(real_client: OpenAI) -> None:
    deltas: dict[str, str] = {}
    done: dict[str, str] = {}
    finished = None
    for event in real_client.responses.create(
        model=DEFAULT_MODEL, input=SEED_PROMPT, tools=[SEED_FLAT], stream=True, **DEFAULT_SAMPLING
    ):
        if event.type == "response.function_call_arguments.delta":
            deltas[event.item_id] = deltas.get(event.item_id, "") + event.delta
        elif event.type == "response.function_call_arguments.done":
            done[event.item_id] = event.arguments
        elif event.type == "response.completed":
            finished = event.response
    assert deltas and deltas == done
    (arguments,) = done.values()
    assert json.loads(arguments)["username"].lower() == "cloudflare"
    assert finished is not None
    (call,) = [item for item in finished.output if item.type == "function_call"]
    assert call.arguments == arguments


@pytest.mark.model
def test_required_and_named_tool_choice_are_enforced(real_client: OpenAI) -> None:
    greeting = "Say hello to me in one short sentence."
    tools = [FLAT_WEATHER, SEED_FLAT]
    free = real_client.responses.create(model=DEFAULT_MODEL, input=greeting, tools=tools, **DEFAULT_SAMPLING)
    assert [item.type for item in free.output] == ["message"], "the request must not call by itself"

    required = real_client.responses.create(
        model=DEFAULT_MODEL, input=greeting, tools=tools, tool_choice="required", **DEFAULT_SAMPLING
    )
    calls = [item for item in required.output if item.type == "function_call"]
    assert calls and all(c.name in ("get_weather", "getGithubUser") for c in calls)

    named = real_client.responses.create(
        model=DEFAULT_MODEL,
        input=greeting,
        tools=tools,
        tool_choice={"type": "function", "name": "get_weather"},
        **DEFAULT_SAMPLING,
    )
    calls = [item for item in named.output if item.type == "function_call"]
    assert calls and {c.name for c in calls} == {"get_weather"}
    assert all(isinstance(json.loads(c.arguments)["city"], str) for c in calls)
