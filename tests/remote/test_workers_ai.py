"""The Workers AI engine: against ``toolrun serve`` (the same REST API) and a stub for the other shapes."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from remote_testing import SECRET, ThreadServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from stubs import Stub, sse_response

from toolrun import AI, EngineError, InvalidInputError, ModelNotFoundError, ModelUnavailableError, run_with_tools
from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.engines import GenerationRequest
from toolrun.engines.remote import WorkersAICredentials
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply
from toolrun.server import create_app, uvicorn_config

MODEL = "@cf/test/weather"
ACCOUNT = "0123456789abcdef0123456789abcdef"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def weather_script(request: GenerationRequest) -> ScriptedReply:
    last = request.messages[-1]
    if request.tools and request.tool_choice != "none" and last["role"] == "user":
        return ScriptedReply(calls=[(request.tools[0].name, {"city": "Lisbon"})])
    if last["role"] == "tool":
        return ScriptedReply(text=f"It is {last['content']} in Lisbon.")
    return ScriptedReply(text=f"echo: {last['content']}")


@pytest.fixture
def toolrun_serve():
    """``toolrun serve`` on 127.0.0.1 with a scripted model under a Cloudflare-style name, key = SECRET."""
    server_ai = AsyncAI(catalog=Catalog())
    engine = ScriptedEngine(weather_script)
    server_ai.register(ModelEntry(name=MODEL, description="scripted"), engine)
    app = create_app(server_ai, api_keys=[SECRET], max_tokens_cap=512)
    server = ThreadServer(app, config=uvicorn_config(app, "127.0.0.1", 0, log_level="warning"))
    yield server, engine
    server.stop()


def workers_ai(base: str, token: str = SECRET) -> AsyncAI:
    return AsyncAI(provider="workers-ai", account_id=ACCOUNT, api_token=token, base_url=base)


# ------------------------------------------------------------- toolrun serve


async def test_traditional_call_through_toolrun_serve(toolrun_serve) -> None:
    server, engine = toolrun_serve
    ai = workers_ai(server.url + "/client/v4")
    try:
        out = await ai.run(MODEL, {"messages": [{"role": "user", "content": "Weather in Lisbon?"}], "tools": [WEATHER]})
        assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [("get_weather", {"city": "Lisbon"})]
        assert out["finish_reason"] == "tool_calls"
        # The tools went as Workers AI's flat shape, the sampling as Workers AI's fields.
        seen = engine.requests[-1]
        assert [t.name for t in seen.tools] == ["get_weather"]
        assert seen.sampling.max_tokens == 256
    finally:
        await ai.aclose()


async def test_embedded_function_calling_through_toolrun_serve(toolrun_serve) -> None:
    server, _ = toolrun_serve
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return "21°C and sunny"

    ai = workers_ai(server.url + "/client/v4")
    try:
        out = await run_with_tools(
            ai, MODEL, {"messages": [{"role": "user", "content": "Weather in Lisbon?"}], "tools": [get_weather]}
        )
        assert calls == ["Lisbon"]
        assert out["response"] == "It is 21°C and sunny in Lisbon."
    finally:
        await ai.aclose()


def test_streamed_text_through_toolrun_serve_with_the_sync_binding(toolrun_serve) -> None:
    server, _ = toolrun_serve
    with AI(provider="workers-ai", account_id=ACCOUNT, api_token=SECRET, base_url=server.url + "/client/v4") as ai:
        events = list(ai.run(MODEL, {"messages": [{"role": "user", "content": "hello there"}], "stream": True}))
    assert "".join(e.get("response", "") for e in events) == "echo: hello there"
    assert events[-1]["finish_reason"] == "stop" and events[-1]["usage"]["completion_tokens"] == 3


async def test_streamed_call_through_toolrun_serve(toolrun_serve) -> None:
    server, _ = toolrun_serve
    ai = workers_ai(server.url + "/client/v4")
    try:
        stream = await ai.run(
            MODEL, {"messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER], "stream": True}
        )
        events = [e async for e in stream]
        calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
        assert [(c["name"], c["arguments"]) for c in calls] == [("get_weather", {"city": "Lisbon"})]
    finally:
        await ai.aclose()


async def test_toolrun_serve_refusals_map_to_toolrun_errors(toolrun_serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server, _ = toolrun_serve
    base = server.url + "/client/v4"
    wrong = "sk-wrong-token-77aa"
    bad_token = workers_ai(base, token=wrong)
    ai = workers_ai(base)
    try:
        with pytest.raises(EngineError) as caught:
            await bad_token.run(MODEL, {"prompt": "hi"})
        assert "CLOUDFLARE_API_TOKEN" in str(caught.value) and "refused the credentials" in str(caught.value)
        assert wrong not in str(caught.value) and wrong not in caplog.text

        with pytest.raises(ModelNotFoundError):
            await ai.run("@cf/test/no-such-model", {"prompt": "hi"})

        # Cloudflare's own message comes through (the server caps max_tokens at 512).
        with pytest.raises(InvalidInputError, match="max_tokens") as refused:
            await ai.run(MODEL, {"prompt": "hi", "max_tokens": 1000})
        assert "512" in str(refused.value)
    finally:
        await bad_token.aclose()
        await ai.aclose()


# -------------------------------------------------------- credentials, catalog


async def test_nothing_happens_until_workers_ai_is_used(monkeypatch) -> None:
    for var in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    ai = AsyncAI(provider="workers-ai")  # no credentials yet: fine until a model runs
    try:
        with pytest.raises(ModelUnavailableError) as caught:
            await ai.run("@cf/meta/llama-3.3-70b-instruct-fp8-fast", {"prompt": "hi"})
        assert "CLOUDFLARE_ACCOUNT_ID" in str(caught.value) and "CLOUDFLARE_API_TOKEN" in str(caught.value)
    finally:
        await ai.aclose()


def test_credentials_from_the_environment_and_their_repr(monkeypatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", SECRET)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4/")
    credentials = WorkersAICredentials.resolve()
    assert (credentials.account_id, credentials.api_token) == (ACCOUNT, SECRET)
    assert credentials.run_root() == f"http://127.0.0.1:9/client/v4/accounts/{ACCOUNT}/ai/run"
    assert SECRET not in repr(credentials)
    gateway = WorkersAICredentials(ACCOUNT, SECRET, "https://gateway.example/v1/acct/gw/workers-ai")
    assert gateway.run_root() == "https://gateway.example/v1/acct/gw/workers-ai"
    ai = AsyncAI(provider="workers-ai", api_token=SECRET)
    assert SECRET not in repr(ai.__dict__)


def test_one_name_two_places_the_provider_decides() -> None:
    name = "@hf/nousresearch/hermes-2-pro-mistral-7b"
    local, hosted = Catalog(), Catalog(provider="workers-ai")
    assert local.get(name).huggingface is not None  # the GGUF, run here
    remote = hosted.get(name).remote
    assert remote is not None and remote.is_workers_ai and remote.model == name
    # Any Cloudflare name resolves under workers-ai; the local catalog does not invent entries.
    assert (
        hosted.get("@cf/meta/llama-4-scout-17b-16e-instruct").source
        == "Workers AI (@cf/meta/llama-4-scout-17b-16e-instruct)"
    )
    assert hosted.get("@cf/someone/new-model").remote is not None
    with pytest.raises(ModelNotFoundError):
        local.get("@cf/someone/new-model")
    assert "@local/qwen2.5-coder-0.5b-instruct" not in hosted


def test_config_entries_per_provider(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[models."@hf/nousresearch/hermes-2-pro-mistral-7b"]\npath = "/models/hermes.gguf"\n\n'
        '[models."@my/cf-llama"]\nprovider = "workers-ai"\nremote_model = "@cf/meta/llama-3.3-70b-instruct-fp8-fast"\n'
        'max_retries = 1\n\n[aliases]\nbig = "@my/cf-llama"\nsmall = "@local/qwen2.5-coder-0.5b-instruct"\n'
    )
    local = Catalog.load(config)
    hosted = Catalog.load(config, provider="workers-ai")
    assert local.get("@hf/nousresearch/hermes-2-pro-mistral-7b").path == "/models/hermes.gguf"
    # The local re-pointing does not divert the Workers AI name.
    assert hosted.get("@hf/nousresearch/hermes-2-pro-mistral-7b").remote is not None
    for catalog in (local, hosted):
        entry = catalog.get("big")
        assert entry.remote is not None and entry.remote.model == "@cf/meta/llama-3.3-70b-instruct-fp8-fast"
        assert entry.remote.max_retries == 1
    assert "small" in local and "small" not in hosted


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ('base_url = "ftp://x"', "base_url"),
        ("base_url = []", "base_url"),
        ('base_url = "http://x/v1"\nupstream = "tgi"', "upstream"),
        ('base_url = "http://x/v1"\ntool_parsing = "magic"', "tool_parsing"),
        ('base_url = "http://x/v1"\nread_timeout = 0', "read_timeout"),
        ('provider = "azure"', "provider"),
    ],
)
def test_bad_remote_config_is_refused_with_its_place(tmp_path, fields: str, where: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[models."@my/x"]\n{fields}\n')
    with pytest.raises(InvalidInputError) as caught:
        Catalog.load(config)
    assert where in str(caught.value)


# ------------------------------------------------------------------- stub


def envelope(result: Any) -> Response:
    return JSONResponse({"result": result, "success": True, "errors": [], "messages": []})


def cf_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []},
        status_code=status,
        headers=headers,
    )


@pytest.fixture
def cloudflare_stub(serve):
    """``cloudflare_stub(behaviour)`` → (stub, AsyncAI on it); the test closes the AsyncAI."""

    def start(behaviour: Any, *, base_suffix: str = "/client/v4") -> tuple[Stub, AsyncAI]:
        stub = Stub(behaviour)
        server = serve(stub.app())
        return stub, workers_ai(server.url + base_suffix)

    return start


async def _close(ai: AsyncAI) -> None:
    await ai.aclose()


async def test_openai_style_tool_calls_and_usage(cloudflare_stub) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        return envelope(
            {
                "response": None,
                "tool_calls": [
                    {
                        "id": "call_cf_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
            }
        )

    stub, ai = cloudflare_stub(answer)
    try:
        out = await ai.run(
            "@cf/meta/llama-4-scout-17b-16e-instruct",
            {"messages": [{"role": "user", "content": "Paris?"}], "tools": [WEATHER]},
        )
        assert out["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_cf_1"}]
        assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        sent = stub.requests[0]
        assert sent["tools"] == [WEATHER] and "stream" not in sent
        assert stub.headers[0]["authorization"] == f"Bearer {SECRET}"
    finally:
        await _close(ai)


async def test_object_response_in_json_mode_and_flat_calls(cloudflare_stub) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if "response_format" in body:
            return envelope(
                {
                    "response": {"city": "Lisbon", "celsius": 21},
                    "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
                }
            )
        return envelope({"response": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]})

    stub, ai = cloudflare_stub(answer)
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}}
    try:
        out = await ai.run(
            "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
            {
                "messages": [{"role": "user", "content": "json please"}],
                "response_format": {"type": "json_schema", "json_schema": schema},
            },
        )
        assert json.loads(out["response"]) == {"city": "Lisbon", "celsius": 21}
        assert stub.requests[0]["response_format"] == {"type": "json_schema", "json_schema": schema}
        out = await ai.run(
            "@hf/nousresearch/hermes-2-pro-mistral-7b",
            {"messages": [{"role": "user", "content": "Rome?"}], "tools": [WEATHER]},
        )
        assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [("get_weather", {"city": "Rome"})]
        assert out["tool_calls"][0]["id"].startswith("call_")
    finally:
        await _close(ai)


async def test_choices_shaped_result_and_streamed_call_fragments(cloudflare_stub) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            return envelope(
                {"choices": [{"message": {"content": "Bonjour", "tool_calls": None}, "finish_reason": "stop"}]}
            )
        parts = ['{"city"', ': "Oslo"}']
        return sse_response(
            [{"response": "Checking. "}]
            + [
                {
                    "response": "",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_s",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": p},
                        }
                    ],
                }
                for p in parts
            ]
            + [{"response": "", "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}]
        )

    _, ai = cloudflare_stub(answer)
    try:
        out = await ai.run("@cf/x/y", {"prompt": "bonjour"})
        assert out["response"] == "Bonjour"
        stream = await ai.run(
            "@cf/x/y", {"messages": [{"role": "user", "content": "Oslo?"}], "tools": [WEATHER], "stream": True}
        )
        events = [e async for e in stream]
        assert events[0] == {"response": "Checking. "}
        calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
        assert [(c["name"], c["arguments"], c["id"]) for c in calls] == [("get_weather", {"city": "Oslo"}, "call_s")]
        assert events[-1]["usage"]["total_tokens"] == 10
    finally:
        await _close(ai)


async def test_error_envelopes(cloudflare_stub, caplog) -> None:
    caplog.set_level(logging.DEBUG)

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        prompt = body["messages"][-1]["content"]
        if prompt == "invalid":
            return cf_error(400, 5006, "Error: oneOf at '/' not met, 0 matches")
        if prompt == "auth":
            return cf_error(401, 10000, f"Authentication error for {req.headers.get('authorization')}")
        if prompt == "model":
            return cf_error(400, 5007, "No such model @cf/x/y or task")
        return cf_error(500, 7000, "Internal error")

    stub, ai = cloudflare_stub(answer)
    try:
        with pytest.raises(InvalidInputError) as invalid:
            await ai.run("@cf/x/y", {"prompt": "invalid"})
        assert "oneOf at '/' not met" in str(invalid.value) and "5006" in str(invalid.value)
        with pytest.raises(EngineError) as auth:
            await ai.run("@cf/x/y", {"prompt": "auth"})
        assert "CLOUDFLARE_API_TOKEN" in str(auth.value)
        with pytest.raises(ModelNotFoundError):
            await ai.run("@cf/x/y", {"prompt": "model"})
        with pytest.raises(EngineError, match="Internal error"):
            await ai.run("@cf/x/y", {"prompt": "other"})
        assert stub.count == 4, "client errors and plain 500s are not retried"
        for error in (invalid.value, auth.value):
            assert SECRET not in str(error) and SECRET not in repr(error.args)
        assert SECRET not in caplog.text
    finally:
        await _close(ai)


async def test_capacity_errors_are_retried_after_retry_after(cloudflare_stub) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            return cf_error(429, 3040, "Capacity temporarily exceeded, please try again.", {"Retry-After": "1"})
        if n == 1:
            return cf_error(503, 3040, "Capacity temporarily exceeded, please try again.")
        return sse_response([{"response": "at last"}])

    stub, ai = cloudflare_stub(answer)
    try:
        started = time.monotonic()
        out = await ai.run("@cf/x/y", {"prompt": "hi"})
        assert out["response"] == "at last"
        assert stub.count == 3
        assert time.monotonic() - started >= 0.9
    finally:
        await _close(ai)


async def test_ai_gateway_base_url(cloudflare_stub) -> None:
    paths: list[str] = []

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        paths.append(req.url.path)
        return envelope({"response": "via gateway"})

    _, ai = cloudflare_stub(answer, base_suffix=f"/v1/{ACCOUNT}/my-gateway/workers-ai")
    try:
        out = await ai.run("@cf/meta/llama-3.3-70b-instruct-fp8-fast", {"prompt": "hi"})
        assert out["response"] == "via gateway"
        assert paths == [f"/v1/{ACCOUNT}/my-gateway/workers-ai/@cf/meta/llama-3.3-70b-instruct-fp8-fast"]
    finally:
        await _close(ai)


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="workers-ai"):
        AsyncAI(provider="bedrock")
