"""Workers AI's REST API over real HTTP, with the official ``cloudflare`` SDK as the client."""

from __future__ import annotations

import json

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare
from server_testing import API_KEY, SCRIPTED, WEATHER_TOOL, LiveServer

ACCOUNT = "0123456789abcdef"
ASK = [{"role": "user", "content": "What's the weather in Lisbon?"}]


@pytest.fixture
def cf(scripted_server: LiveServer) -> Cloudflare:
    return Cloudflare(api_token=API_KEY, base_url=scripted_server.url + "/client/v4", max_retries=0)


def run_url(server: LiveServer, model: str = SCRIPTED) -> str:
    return f"{server.url}/client/v4/accounts/{ACCOUNT}/ai/run/{model}"


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_tool_call_then_answer(cf: Cloudflare) -> None:
    first = cf.ai.run(SCRIPTED, account_id=ACCOUNT, messages=ASK, tools=[WEATHER_TOOL])
    (call,) = first["tool_calls"]
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Lisbon"}
    assert first["usage"]["completion_tokens"] > 0

    # Workers AI's own result-turn shape: the call as JSON content, then a tool message.
    second = cf.ai.run(
        SCRIPTED,
        account_id=ACCOUNT,
        tools=[WEATHER_TOOL],
        messages=[
            *ASK,
            {"role": "assistant", "content": json.dumps({"name": call["name"], "arguments": call["arguments"]})},
            {"role": "tool", "name": "get_weather", "content": "21°C and sunny"},
        ],
    )
    assert second["response"] == "It is 21°C and sunny in Lisbon."
    assert second["tool_calls"] == []


def test_envelope_and_streaming_over_raw_http(scripted_server: LiveServer) -> None:
    body = {"messages": [{"role": "user", "content": "one two"}]}
    plain = httpx.post(run_url(scripted_server), json=body, headers=AUTH).json()
    assert plain["success"] is True and plain["errors"] == [] and plain["messages"] == []
    assert plain["result"]["response"] == "echo: one two"

    with httpx.stream("POST", run_url(scripted_server), json={**body, "stream": True}, headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(e["response"] for e in events) == "echo: one two"
    assert events[-1]["usage"]["completion_tokens"] == 3  # the scripted engine counts words


def test_streamed_tool_call_event(scripted_server: LiveServer) -> None:
    with httpx.stream(
        "POST", run_url(scripted_server), headers=AUTH, json={"messages": ASK, "tools": [WEATHER_TOOL], "stream": True}
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line and line != "data: [DONE]"]
    calls = [c for e in events for c in e.get("tool_calls", ())]
    # Workers AI's shape: arguments as an object, as in the non-streamed result.
    assert [(c["name"], c["arguments"]) for c in calls] == [("get_weather", {"city": "Lisbon"})]
    assert all("response" in e for e in events)  # Workers AI stream events always carry it
    assert events[-1]["finish_reason"] == "tool_calls"


def test_errors_in_cloudflare_envelope(scripted_server: LiveServer, cf: Cloudflare) -> None:
    with pytest.raises(cloudflare.NotFoundError):
        cf.ai.run("@nope/none", account_id=ACCOUNT, messages=ASK)
    missing = httpx.post(run_url(scripted_server, "@nope/none"), json={"messages": ASK}, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {
        "result": None,
        "success": False,
        "messages": [],
        "errors": [{"code": 5007, "message": missing.json()["errors"][0]["message"], "source": {"pointer": "/model"}}],
    }

    wrong_type = httpx.post(run_url(scripted_server), json={"messages": "hello"}, headers=AUTH)
    assert wrong_type.status_code == 400
    (error,) = wrong_type.json()["errors"]
    assert error["code"] == 5006 and error["source"]["pointer"] == "/messages"

    bad_schema = httpx.post(
        run_url(scripted_server),
        headers=AUTH,
        json={"messages": ASK, "tools": [{"name": "f", "parameters": {"type": "object", "required": "city"}}]},
    )
    assert bad_schema.status_code == 400
    (error,) = bad_schema.json()["errors"]
    assert "'f'" in error["message"] and error["source"]["pointer"].startswith("/tools/0/parameters")

    # A streamed request that is wrong fails before the stream starts: a real status, not an SSE error.
    bad_stream = httpx.post(
        run_url(scripted_server), headers=AUTH, json={"messages": ASK, "stream": True, "tool_choice": "required"}
    )
    assert bad_stream.status_code == 400 and bad_stream.headers["content-type"] == "application/json"
    assert "no tools were given" in bad_stream.json()["errors"][0]["message"]

    unknown_field = httpx.post(run_url(scripted_server), json={"messages": ASK, "temprature": 0.1}, headers=AUTH)
    assert unknown_field.status_code == 400 and "temprature" in unknown_field.text

    for content, words in ((b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"", "empty")):
        response = httpx.post(run_url(scripted_server), content=content, headers=AUTH)
        assert response.status_code == 400, content
        assert words in response.json()["errors"][0]["message"]

    unauthenticated = httpx.post(run_url(scripted_server), json={"messages": ASK})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["errors"][0]["code"] == 10000
    with pytest.raises(cloudflare.AuthenticationError):
        Cloudflare(api_token="wrong", base_url=scripted_server.url + "/client/v4", max_retries=0).ai.run(
            SCRIPTED, account_id=ACCOUNT, messages=ASK
        )

    no_route = httpx.get(f"{scripted_server.url}/client/v4/accounts/{ACCOUNT}/ai/nothing", headers=AUTH)
    assert no_route.status_code == 404 and no_route.json()["success"] is False
    wrong_method = httpx.get(run_url(scripted_server), headers=AUTH)
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False


def test_model_search(cf: Cloudflare, scripted_server: LiveServer) -> None:
    names = [m["name"] for m in cf.ai.models.list(account_id=ACCOUNT)]
    assert SCRIPTED in names and "@cf/mistral/mistral-7b-instruct-v0.1" in names

    with_tools = cf.ai.models.list(account_id=ACCOUNT, extra_query={"function_calling": "true"})
    fc_names = [m["name"] for m in with_tools]
    assert "@local/qwen2.5-coder-0.5b-instruct" in fc_names
    assert "@cf/mistral/mistral-7b-instruct-v0.1" not in fc_names
    for model in with_tools:
        props = {p["property_id"]: p["value"] for p in model["properties"]}
        assert props["function_calling"] == "true"
        assert model["task"]["name"] == "Text Generation" and model["id"]

    found = [m["name"] for m in cf.ai.models.list(account_id=ACCOUNT, search="hermes")]
    assert found == ["@hf/nousresearch/hermes-2-pro-mistral-7b"]
    assert list(cf.ai.models.list(account_id=ACCOUNT, task="Image Classification")) == []

    page = httpx.get(
        f"{scripted_server.url}/client/v4/accounts/{ACCOUNT}/ai/models/search",
        params={"per_page": 2, "page": 2},
        headers=AUTH,
    ).json()
    assert page["result_info"]["page"] == 2 and page["result_info"]["count"] == 2
    assert page["result_info"]["total_count"] == len(names)

    bad = httpx.get(
        f"{scripted_server.url}/client/v4/accounts/{ACCOUNT}/ai/models/search",
        params={"function_calling": "maybe"},
        headers=AUTH,
    )
    assert bad.status_code == 400 and "function_calling" in bad.json()["errors"][0]["message"]
