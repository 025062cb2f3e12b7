"""OpenAI's Chat Completions over real HTTP, with the official ``openai`` SDK as the client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import OpenAI
from server_testing import API_KEY, SCRIPTED, WEATHER_TOOL, LiveServer

OPENAI_TOOL = {"type": "function", "function": WEATHER_TOOL}
ASK = [{"role": "user", "content": "What's the weather in Lisbon?"}]


@pytest.fixture
def client(scripted_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=scripted_server.url + "/v1", api_key=API_KEY, max_retries=0)


def test_tool_call_then_answer_non_streaming(client: OpenAI) -> None:
    first = client.chat.completions.create(model=SCRIPTED, messages=ASK, tools=[OPENAI_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}
    assert call.id.startswith("call_")
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0

    # The result turn, in OpenAI's own shapes (string arguments, tool_call_id), straight back.
    second = client.chat.completions.create(
        model=SCRIPTED,
        tools=[OPENAI_TOOL],
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "21°C and sunny"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 21°C and sunny in Lisbon."
    assert second.choices[0].message.tool_calls is None


def test_streamed_tool_call_deltas_reassemble(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SCRIPTED, messages=ASK, tools=[OPENAI_TOOL], stream=True, stream_options={"include_usage": True}
    )
    calls: dict[int, dict[str, str]] = {}
    finish_reasons, usage, roles = [], None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            for delta in choice.delta.tool_calls or ():
                slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += delta.id or ""
                if delta.function:
                    slot["name"] += delta.function.name or ""
                    slot["arguments"] += delta.function.arguments or ""
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert roles == ["assistant"]
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Lisbon"}
    assert finish_reasons == ["tool_calls"]
    assert usage is not None and usage.completion_tokens > 0


def test_streamed_text(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SCRIPTED, messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


def test_models_list_and_retrieve(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert SCRIPTED in ids and "@local/qwen2.5-coder-0.5b-instruct" in ids
    assert client.models.retrieve(SCRIPTED).id == SCRIPTED
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("@nope/none")


def test_unknown_model_is_404_in_openai_shape(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="@nope/none", messages=ASK)
    error = info.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "@nope/none" in error["message"]


def test_bad_tool_schema_says_which_tool_and_where(client: OpenAI) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 5}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SCRIPTED, messages=ASK, tools=[OPENAI_TOOL, bad])
    error = info.value.body
    assert error["code"] == "invalid_tool_schema"
    assert error["param"].startswith("tools[1]")
    assert "'f'" in error["message"]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"n": 2}, "n", "n must be 1"),
        ({"stop": ["\n"]}, "stop", "stop sequences"),
        ({"frobnicate": True}, "frobnicate", "unrecognized"),
        ({"functions": [WEATHER_TOOL]}, "functions", "send 'tools'"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "other"}}},
            "tool_choice.function.name",
            "not among the tools",
        ),
        ({"temperature": "hot"}, "temperature", "number"),
        ({"max_completion_tokens": 100_000}, "max_completion_tokens", "at most"),
    ],
)
def test_request_faults_are_400_with_the_field(client: OpenAI, extra: dict, param: str, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SCRIPTED, messages=ASK, tools=[OPENAI_TOOL], extra_body=extra)
    error = info.value.body
    assert error["param"] == param, error
    assert words in error["message"], error
    assert error["type"] == "invalid_request_error"


def test_auth_is_required_and_checked(scripted_server: LiveServer) -> None:
    for key in ("wrong-key", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.post(
            scripted_server.url + "/v1/chat/completions", headers=headers, json={"model": SCRIPTED, "messages": ASK}
        )
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=scripted_server.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_cloudflare_openai_compatible_endpoint(scripted_server: LiveServer) -> None:
    client = OpenAI(base_url=scripted_server.url + "/client/v4/accounts/acct/ai/v1", api_key=API_KEY, max_retries=0)
    out = client.chat.completions.create(model=SCRIPTED, messages=ASK, tools=[OPENAI_TOOL])
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="@nope/none", messages=ASK)
    assert info.value.body["code"] == "model_not_found"  # OpenAI's shape there too, not Cloudflare's


def test_openai_fields_reach_the_engine(start_server) -> None:
    from server_testing import scripted_ai

    ai, engine = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    client = OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    client.chat.completions.create(
        model=SCRIPTED,
        messages=ASK,
        max_completion_tokens=33,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}},
    )
    request = engine.requests[-1]
    assert request.response_schema == schema
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.seed) == (33, 0.2, 0.9, 7)
    assert (sampling.frequency_penalty, sampling.presence_penalty) == (0.5, 0.25)

    client.chat.completions.create(
        model=SCRIPTED,
        tools=[OPENAI_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        messages=[{"role": "developer", "content": "Be brief."}, *ASK],
    )
    request = engine.requests[-1]
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert (request.tool_choice, request.parallel_tool_calls) == ("required", False)
    assert [t.name for t in request.tools] == ["get_weather"]
