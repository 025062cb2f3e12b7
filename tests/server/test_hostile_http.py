"""Hostile HTTP requests: every one is answered in the API's own error envelope, never a 500 or plain text."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from _servers import Listener
from server_testing import API_KEY, SCRIPTED, LiveServer, scripted_ai

from toolrun.ai import ModelEntry
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

AUTH = {"Authorization": f"Bearer {API_KEY}"}
USER = [{"role": "user", "content": "What is the weather in Lisbon?"}]
FORCED_MODEL = "@test/forced"


def workers_url(server: LiveServer, model: str = SCRIPTED) -> str:
    return f"{server.url}/client/v4/accounts/local/ai/run/{model}"


def forced(request: GenerationRequest) -> ScriptedReply:
    return ScriptedReply(calls=[("get_weather", {"city": "Lisbon"})]) if request.tools else ScriptedReply("ok")


@pytest.fixture
def server(start_server) -> LiveServer:
    ai, _ = scripted_ai()
    ai.register(ModelEntry(name=FORCED_MODEL, description="always calls"), ScriptedEngine(forced))
    return start_server(ai, api_keys=[API_KEY])


def post_workers(server: LiveServer, body: Any, model: str = SCRIPTED) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(
        workers_url(server, model), content=content, headers={**AUTH, "content-type": "application/json"}, timeout=60
    )


def post_openai(server: LiveServer, body: Any) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(
        server.url + "/v1/chat/completions",
        content=content,
        headers={**AUTH, "content-type": "application/json"},
        timeout=60,
    )


def cloudflare_error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]


def openai_error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_the_issue_reproduction_fetches_nothing_and_is_a_400(server) -> None:
    listener = Listener()
    body = {
        "messages": USER,
        "max_tokens": 48,
        "tools": [
            {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"$ref": f"{listener.url}/x.json"}},
                    "required": ["city"],
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    error = cloudflare_error(post_workers(server, body, FORCED_MODEL))
    assert error["code"] == 5006 and "outside the schema" in error["message"]
    assert error["source"]["pointer"] == "/tools/0/parameters/properties/city/$ref"

    body["tools"][0]["parameters"]["properties"]["city"]["$ref"] = "file:///etc/passwd"
    error = openai_error(post_openai(server, {"model": FORCED_MODEL, **body}))
    assert error["param"] == "tools[0].parameters.properties.city['$ref']" and "file:///etc/passwd" in error["message"]
    assert listener.hits == []
    listener.close()


def test_a_lone_surrogate_as_a_json_escape(server) -> None:
    raw = '{"messages": [{"role": "user", "content": "a\\ud800b"}]}'
    error = cloudflare_error(post_workers(server, raw))
    assert "surrogate" in error["message"] and error["source"]["pointer"] == "/messages/0/content"
    error = openai_error(post_openai(server, raw[:-1] + f', "model": "{SCRIPTED}"}}'))
    assert "surrogate" in error["message"] and error["param"] == "messages[0].content"


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_body_nested_ten_thousand_deep(server, opener) -> None:
    closer = "]" if opener == "[" else "}"
    raw = '{"messages": ' + opener * 10_000 + "1" + closer * 10_000 + "}"
    assert "nested too deeply" in cloudflare_error(post_workers(server, raw))["message"]
    assert "nested too deeply" in openai_error(post_openai(server, raw))["message"]


def test_a_body_nested_just_below_the_parser_limit(server) -> None:
    """900 levels parse; the binding's own depth limit names the place."""
    raw = '{"messages": ' + "[" * 900 + "]" * 900 + "}"
    assert "nested more than" in cloudflare_error(post_workers(server, raw))["message"]


def test_deep_tool_parameters_are_a_400_naming_the_field(server) -> None:
    schema: Any = {"type": "string"}
    for _ in range(400):
        schema = {"type": "object", "properties": {"a": schema}}
    body = {"messages": USER, "tools": [{"name": "deep", "parameters": schema}]}
    assert len(json.dumps(body)) < 20_000
    error = cloudflare_error(post_workers(server, body))
    assert "nested more than" in error["message"]
    assert error["source"]["pointer"].startswith("/tools/0/parameters/properties/a")


def test_a_huge_integer(server) -> None:
    raw = '{"messages": [{"role": "user", "content": "hi"}], "seed": ' + "9" * 5000 + "}"
    assert cloudflare_error(post_workers(server, raw))["code"] == 5006


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_tokens", True, "valid integer"),
        ("stream", "yes", "valid boolean"),
        ("temperature", "NaN", "finite"),
        ("max_tokens", -3, "greater than or equal to 1"),
    ],
)
def test_workers_ai_fields_are_checked_strictly(server, field, value, words) -> None:
    raw = (
        json.dumps({"messages": USER, field: value})
        if value != "NaN"
        else '{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    )
    error = cloudflare_error(post_workers(server, raw))
    assert error["source"]["pointer"] == f"/{field}" and words in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"max_completion_tokens": -3}, "max_completion_tokens", "greater than or equal to 1"),
        ({"max_tokens": -3}, "max_tokens", "greater than or equal to 1"),
        ({"stream": "true"}, "stream", "true or false"),
        ({"temperature": 1e999}, "temperature", "finite"),
    ],
)
def test_openai_fields_name_themselves(server, body, param, words) -> None:
    error = openai_error(post_openai(server, {"model": SCRIPTED, "messages": USER, **body}))
    assert error["param"] == param and words in error["message"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /client/v4/accounts/a/ai/run/m HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    ],
)
def test_malformed_http_is_answered_in_both_envelopes(server, request_bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data
    assert b"content-type: application/json" in head.lower()
    parsed = json.loads(body)
    assert parsed["success"] is False and parsed["errors"][0]["message"]  # what the cloudflare SDK reads
    assert parsed["error"]["type"] == "invalid_request_error"  # what the openai SDK reads
