"""Anthropic's Messages API (``/v1/messages``) driven by the official ``anthropic`` SDK over real HTTP.

The scripted engine pins the wire (block and event sequences, errors, auth);
the ``model`` tests run the real default model through the same endpoint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from seed_testing import SEED_PROMPT, SEED_TOOL
from server_testing import (
    API_KEY,
    SCRIPTED,
    WEATHER_TOOL,
    FailingEngine,
    LiveServer,
    PacedEngine,
    scripted_ai,
    wait_until,
)

from toolrun import DEFAULT_MODEL
from toolrun._wire import final_event, new_call_id
from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.engines import Engine, GenerationRequest, NamedTool
from toolrun.engines.scripted import ScriptedReply

WEATHER = {
    "name": WEATHER_TOOL["name"],
    "description": WEATHER_TOOL["description"],
    "input_schema": WEATHER_TOOL["parameters"],
}
ASK = [{"role": "user", "content": "What's the weather in Lisbon?"}]
AUTH = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


def sdk(server: LiveServer, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=600, **options)


@pytest.fixture
def client(scripted_server: LiveServer) -> anthropic.Anthropic:
    return sdk(scripted_server)


def messages_url(server: LiveServer) -> str:
    return server.url + "/v1/messages"


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event of an Anthropic stream; comments (keep-alives) skipped."""
    events = []
    for frame in body.strip().split("\n\n"):
        lines = [line for line in frame.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        name = next(line[len("event: ") :] for line in lines if line.startswith("event: "))
        data = json.loads(next(line[len("data: ") :] for line in lines if line.startswith("data: ")))
        assert data["type"] == name, frame
        events.append((name, data))
    return events


# ------------------------------------------------------------ scripted engine


def test_tool_use_then_answer_from_the_tool_result(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=SCRIPTED, max_tokens=64, messages=ASK, tools=[WEATHER])
    assert first.type == "message" and first.role == "assistant" and first.model == SCRIPTED
    assert first.id.startswith("msg_") and first.stop_reason == "tool_use" and first.stop_sequence is None
    (call,) = first.content
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Lisbon"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    second = client.messages.create(
        model=SCRIPTED,
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            *ASK,
            first.to_param(),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "21°C"}]}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in second.content] == [("text", "It is 21°C in Lisbon.")]


def test_the_conversation_reaches_the_engine_in_order(start_server) -> None:
    ai, engine = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    sdk(server).messages.create(
        model=SCRIPTED,
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        tools=[WEATHER],
        messages=[
            *ASK,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "no station", "is_error": True},
                    {"type": "text", "text": "Try again?"},
                ],
            },
        ],
    )
    (request,) = engine.requests
    assert [(m["role"], m["content"]) for m in request.messages] == [
        ("system", "Be brief.\nUse tools."),
        ("user", "What's the weather in Lisbon?"),
        ("assistant", "Let me look."),
        ("tool", '{"error": "no station"}'),  # is_error reads as run_with_tools reports a failed tool
        ("user", "Try again?"),
    ]
    call = request.messages[2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["function"] == {"name": "get_weather", "arguments": {"city": "Lisbon"}}
    assert request.messages[3]["tool_call_id"] == "toolu_1" and request.messages[3]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "any"}, ("required", True)),
        ({"type": "tool", "name": "get_weather"}, (NamedTool("get_weather"), True)),
        ({"type": "none"}, ("none", True)),
        ({"type": "auto", "disable_parallel_tool_use": True}, ("auto", False)),
        ({"type": "any", "disable_parallel_tool_use": True}, ("required", False)),
    ],
)
def test_tool_choice_reaches_the_engine(start_server, choice: dict, expected: tuple) -> None:
    ai, engine = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    sdk(server).messages.create(model=SCRIPTED, max_tokens=64, messages=ASK, tools=[WEATHER], tool_choice=choice)
    (request,) = engine.requests
    assert (request.tool_choice, request.parallel_tool_calls) == expected


def test_stream_event_sequence_for_text_then_a_call(start_server) -> None:
    ai, _ = scripted_ai(lambda request: ScriptedReply(text="Checking now.", calls=[("get_weather", {"city": "Oslo"})]))
    server = start_server(ai, api_keys=[API_KEY])
    body = {"model": SCRIPTED, "max_tokens": 64, "messages": ASK, "tools": [WEATHER], "stream": True}
    response = httpx.post(messages_url(server), json=body, headers=AUTH, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "[DONE]" not in response.text
    start = events[0][1]["message"]
    assert (start["role"], start["content"], start["stop_reason"], start["model"]) == ("assistant", [], None, SCRIPTED)
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Checking"}
    tool_start = events[6][1]
    assert tool_start["index"] == 1 and tool_start["content_block"]["type"] == "tool_use"
    assert tool_start["content_block"]["name"] == "get_weather" and tool_start["content_block"]["input"] == {}
    assert events[7][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'}
    assert events[8][1] == {"type": "content_block_stop", "index": 1}
    delta = events[9][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] > 0 and delta["usage"]["output_tokens"] > 0


class DeltaEngine(Engine):
    """Streams two calls' arguments as fragments, as the local engine does under its grammar."""

    FRAGMENTS = (['{"city": ', '"Li', 'sbon"}'], ['{"city"', ': "Porto"', "}"])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[dict[str, Any]]:
        yield {"response": "\n"}  # whitespace before a call opens no text block
        for index, fragments in enumerate(self.FRAGMENTS):
            call_id = new_call_id()
            for fragment in fragments:
                yield {"tool_call_delta": {"index": index, "id": call_id, "name": "get_weather", "arguments": fragment}}
            arguments = json.loads("".join(fragments))
            yield {"tool_calls": [{"index": index, "id": call_id, "name": "get_weather", "arguments": arguments}]}
        yield final_event(12, 20, "tool_calls")


def serve_engine(start_server, engine: Engine) -> LiveServer:
    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="for tests", function_calling=True), engine)
    return start_server(ai, api_keys=[API_KEY])


def test_streamed_argument_fragments_reassemble_in_the_sdk(start_server) -> None:
    server = serve_engine(start_server, DeltaEngine())
    with sdk(server).messages.stream(model=SCRIPTED, max_tokens=64, messages=ASK, tools=[WEATHER]) as stream:
        kinds = [(event.type, getattr(getattr(event, "delta", None), "type", None)) for event in stream]
        final = stream.get_final_message()
    assert [block.input for block in final.content] == [{"city": "Lisbon"}, {"city": "Porto"}]
    assert [block.type for block in final.content] == ["tool_use", "tool_use"]
    assert final.stop_reason == "tool_use" and final.usage.input_tokens == 12 and final.usage.output_tokens == 20
    assert kinds.count(("content_block_delta", "input_json_delta")) == 6  # each fragment as it came
    assert ("content_block_delta", "text_delta") not in kinds


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_cuts_the_text_and_stops_the_model(start_server, stream: bool) -> None:
    engine = PacedEngine(interval=0.001)  # "tok " up to max_tokens: only the stop sequence ends it early
    server = serve_engine(start_server, engine)
    kwargs: dict[str, Any] = {"model": SCRIPTED, "max_tokens": 2000, "messages": ASK, "stop_sequences": ["k t", "zz"]}
    if stream:
        with sdk(server).messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = sdk(server).messages.create(**kwargs)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "k t")
    assert [block.text for block in message.content] == ["to"]
    assert wait_until(engine.closed.is_set) and engine.produced < 2000  # stopped, not run to max_tokens
    assert message.usage.output_tokens == 2 and message.usage.input_tokens > 0


def test_stop_sequence_not_met_sends_all_the_text(start_server) -> None:
    ai, _ = scripted_ai(lambda request: ScriptedReply(text="a b c"))
    server = start_server(ai, api_keys=[API_KEY])
    with sdk(server).messages.stream(
        model=SCRIPTED, max_tokens=64, messages=ASK, stop_sequences=[" c!", "b c d"]
    ) as stream:
        message = stream.get_final_message()
    assert [block.text for block in message.content] == ["a b c"]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


def test_max_tokens_stop_reason(start_server) -> None:
    server = serve_engine(start_server, PacedEngine(interval=0.001))
    message = sdk(server).messages.create(model=SCRIPTED, max_tokens=3, messages=ASK)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "tok tok tok"


def test_failure_mid_stream_is_an_error_event(start_server) -> None:
    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="fails"), FailingEngine())
    server = start_server(ai, api_keys=[API_KEY])
    response = httpx.post(
        messages_url(server), json={"model": SCRIPTED, "max_tokens": 8, "messages": ASK, "stream": True}, headers=AUTH
    )
    name, data = sse_events(response.text)[-1]
    assert name == "error" and data["error"]["type"] == "api_error"
    assert "closed the connection" in data["error"]["message"]
    with (
        pytest.raises(anthropic.APIStatusError),
        sdk(server).messages.stream(model=SCRIPTED, max_tokens=8, messages=ASK) as stream,
    ):
        stream.get_final_message()


def test_count_tokens_without_a_tokenizer_estimates(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model=SCRIPTED, messages=ASK, tools=[WEATHER], system="Be brief.")
    assert counted.input_tokens > 0


BAD_SCHEMA = {**WEATHER, "input_schema": {"type": "object", "properties": {"city": {"type": "town"}}}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tools": [BAD_SCHEMA]}, "tools[0].input_schema"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "hologram"}]}]}, "messages[0].content[0].type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [*ASK, {"role": "assistant", "content": "The weather is"}]}, "messages[1].role"),
        ({"tool_choice": {"type": "tool", "name": "get_time"}, "tools": [WEATHER]}, "tool_choice.name"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"max_tokens": None}, "max_tokens"),
        ({"stop_sequences": ["ok", ""]}, "stop_sequences[1]"),
        ({"temperature": "hot"}, "temperature"),
        ({"container": "c1"}, "container"),
    ],
)
def test_bad_input_is_400_in_anthropics_shape_naming_the_field(
    scripted_server: LiveServer, change: dict, field: str
) -> None:
    body = {"model": SCRIPTED, "max_tokens": 64, "messages": ASK, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(messages_url(scripted_server), json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error", error
    assert error["error"]["message"].startswith(field), error  # the field first, as every toolrun error


def test_bad_input_through_the_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=SCRIPTED, max_tokens=64, messages=ASK, tools=[BAD_SCHEMA])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "tools[0].input_schema" in caught.value.message


def test_unknown_model_is_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="@cf/nobody/nothing", max_tokens=8, messages=ASK)
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_x_api_key_and_bearer_both_authenticate(scripted_server: LiveServer) -> None:
    body = {"model": SCRIPTED, "max_tokens": 8, "messages": ASK}
    url = messages_url(scripted_server)
    assert httpx.post(url, json=body, headers=AUTH).status_code == 200
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    by_header = anthropic.Anthropic(
        base_url=scripted_server.url, api_key=None, auth_token=None, default_headers={"X-Api-Key": API_KEY}
    )
    assert by_header.messages.create(model=SCRIPTED, max_tokens=8, messages=ASK).content[0].text.startswith("echo")
    # x-api-key opens the other APIs too: it is one key, whichever header carries it
    assert httpx.get(scripted_server.url + "/v1/models", headers={"x-api-key": API_KEY}).status_code == 200
    for headers in ({"x-api-key": "wrong"}, {}, {"x-api-key": ""}):
        refused = httpx.post(url, json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=scripted_server.url, api_key="wrong", max_retries=0).messages.create(
            model=SCRIPTED, max_tokens=8, messages=ASK
        )


# ------------------------------------------------------------ the real model


@pytest.fixture
def real_client(start_server, async_ai) -> anthropic.Anthropic:
    return sdk(start_server(async_ai, api_keys=[API_KEY], max_queue=4))


SEED = {"name": SEED_TOOL["name"], "description": SEED_TOOL["description"], "input_schema": SEED_TOOL["parameters"]}
#: As users run it: toolrun's default sampling (temperature 0.6). The decision to call and the call's values do not
#: depend on it (decided from the model's probabilities, written at call_temperature 0); the text does.
DEFAULT_SAMPLING: dict[str, Any] = {"max_tokens": 64}


@pytest.mark.model
def test_seed_example_then_the_answer_from_the_tool_result(real_client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": SEED_PROMPT}]
    first = real_client.messages.create(model=DEFAULT_MODEL, messages=ask, tools=[SEED], **DEFAULT_SAMPLING)
    calls = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and len(calls) == 1, first
    assert calls[0].name == "getGithubUser" and calls[0].input["username"].lower() == "cloudflare", first

    result = {"login": "cloudflare", "name": "Cloudflare", "public_repos": 1234, "location": "San Francisco, CA"}
    second = real_client.messages.create(
        model=DEFAULT_MODEL,
        tools=[SEED],
        messages=[
            *ask,
            first.to_param(),
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": json.dumps(result)}],
            },
        ],
        **DEFAULT_SAMPLING,
    )
    assert second.stop_reason in ("end_turn", "max_tokens") and second.content, second
    assert all(block.type == "text" for block in second.content), second
    text = second.content[0].text
    assert any(fact in text for fact in ("1234", "San Francisco", "Cloudflare")), text


@pytest.mark.model
def test_streamed_call_input_reassembles(real_client: anthropic.Anthropic) -> None:
    with real_client.messages.stream(model=DEFAULT_MODEL, messages=ASK, tools=[WEATHER], **DEFAULT_SAMPLING) as stream:
        fragments = [
            e.delta.partial_json
            for e in stream
            if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        ]
        final = stream.get_final_message()
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert fragments and json.loads("".join(fragments)) == call.input
    assert call.name == "get_weather" and "lisbo" in call.input["city"].lower()
    assert final.stop_reason == "tool_use"


@pytest.mark.model
@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_any_and_tool_choice_force_a_call(real_client: anthropic.Anthropic, choice: dict) -> None:
    chat = [{"role": "user", "content": "Say hello to me in French."}]
    unforced = real_client.messages.create(model=DEFAULT_MODEL, messages=chat, tools=[WEATHER], **DEFAULT_SAMPLING)
    assert [b.type for b in unforced.content] == ["text"], unforced  # on its own, the model just answers
    forced = real_client.messages.create(
        model=DEFAULT_MODEL, messages=chat, tools=[WEATHER], tool_choice=choice, **DEFAULT_SAMPLING
    )
    (call,) = [block for block in forced.content if block.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input.get("city"), str), forced
    assert forced.stop_reason == "tool_use"


@pytest.mark.model
def test_count_tokens_is_the_prompt_the_model_reads(real_client: anthropic.Anthropic) -> None:
    counted = real_client.messages.count_tokens(model=DEFAULT_MODEL, messages=ASK, tools=[WEATHER], system="Be brief.")
    answered = real_client.messages.create(
        model=DEFAULT_MODEL, messages=ASK, tools=[WEATHER], system="Be brief.", **DEFAULT_SAMPLING
    )
    assert counted.input_tokens == answered.usage.input_tokens > 0
