"""Routing, retries and health checks of remote engines, against loopback stubs and dead ports."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from _servers import free_port
from remote_testing import SECRET, wait_until
from starlette.requests import Request
from starlette.responses import Response
from stubs import Stub, chat_chunk, json_error, slow_stream, sse_response, text_answer

from toolrun import AI, EngineError, InvalidInputError, OverloadedError
from toolrun.ai import AsyncAI, Catalog, ModelEntry, RemoteEndpoint, collect
from toolrun.engines import GenerationRequest
from toolrun.engines.remote import OpenAICompatibleEngine, RetryPolicy

FAST = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05, cooldown=30.0)


def request(text: str = "hi") -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}])


def engine(urls: str | list[str], **kwargs: Any) -> OpenAICompatibleEngine:
    kwargs.setdefault("retry", FAST)
    return OpenAICompatibleEngine(urls, "stub-model", upstream="openai", tool_parsing="native", **kwargs)


async def answer(eng: OpenAICompatibleEngine, text: str = "hi") -> dict[str, Any]:
    return dict(await collect(eng.generate(request(text))))


async def always_ok(n: int, req: Request, body: dict[str, Any]) -> Response:
    return text_answer(["hello", " there"])


async def test_two_upstreams_one_dead_every_request_succeeds(serve) -> None:
    stub = Stub(always_ok)
    live = serve(stub.app())
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    eng = engine([dead, live.url + "/v1"])
    try:
        for _ in range(8):
            out = await answer(eng)
            assert out["response"] == "hello there"
        assert stub.count == 8
        dead_upstream = next(u for u in eng.pool.upstreams if u.base_url == dead)
        # It failed twice in a row, so it is set aside and the rest went straight to the live one.
        assert dead_upstream.failures == 2
        assert dead_upstream.down_until > time.monotonic()
    finally:
        await eng.aclose()


async def test_least_outstanding_routing_spreads_concurrent_requests(serve) -> None:
    import asyncio

    async def slow(n: int, req: Request, body: dict[str, Any]) -> Response:
        await asyncio.sleep(0.3)
        return text_answer(["ok"])

    first, second = Stub(slow), Stub(slow)
    a, b = serve(first.app()), serve(second.app())
    eng = engine([a.url + "/v1", b.url + "/v1"])
    try:
        await asyncio.gather(*(answer(eng) for _ in range(6)))
        assert (first.count, second.count) == (3, 3)
    finally:
        await eng.aclose()


async def test_429_retry_after_is_honoured(serve) -> None:
    async def busy_once(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            return json_error(429, "slots are busy", headers={"Retry-After": "1"})
        return text_answer(["done"])

    stub = Stub(busy_once)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        started = time.monotonic()
        out = await answer(eng)
        waited = time.monotonic() - started
        assert out["response"] == "done"
        assert stub.count == 2
        assert waited >= 0.9, f"retried after {waited:.2f} s, before the 1 s Retry-After"
    finally:
        await eng.aclose()


async def test_429_asking_too_long_is_overloaded_error(serve) -> None:
    async def busy(n: int, req: Request, body: dict[str, Any]) -> Response:
        return json_error(429, "come back later", headers={"Retry-After": "120"})

    stub = Stub(busy)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        with pytest.raises(OverloadedError) as caught:
            await answer(eng)
        assert caught.value.retry_after == 120
        assert server.url in str(caught.value)
        assert stub.count == 1
    finally:
        await eng.aclose()


async def test_503_is_retried_then_succeeds(serve) -> None:
    async def flaky(n: int, req: Request, body: dict[str, Any]) -> Response:
        return json_error(503, "loading model") if n < 2 else text_answer(["up"])

    stub = Stub(flaky)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        assert (await answer(eng))["response"] == "up"
        assert stub.count == 3
    finally:
        await eng.aclose()


async def test_client_errors_are_not_retried(serve) -> None:
    async def refuse(n: int, req: Request, body: dict[str, Any]) -> Response:
        return json_error(400, "This model's maximum context length is 4096 tokens")

    stub = Stub(refuse)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        with pytest.raises(InvalidInputError, match="maximum context length is 4096") as caught:
            await answer(eng)
        assert server.url in str(caught.value)
        assert stub.count == 1
    finally:
        await eng.aclose()


async def test_a_stream_that_sent_tokens_is_not_retried(serve) -> None:
    stub = Stub(lambda n, req, body: _async(slow_stream(stub, words=3, interval=0.01, then_fail=True)))
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    received: list[dict[str, Any]] = []
    try:
        with pytest.raises(EngineError, match="mid-answer") as caught:
            async for event in eng.generate(request()):
                received.append(event)
        assert server.url in str(caught.value)
        assert [e["response"] for e in received] == ["w0 ", "w1 ", "w2 "]
        assert stub.count == 1, "a stream that already delivered tokens must not be sent again"
    finally:
        await eng.aclose()


async def test_a_stream_that_breaks_before_its_first_payload_is_retried(serve) -> None:
    async def broken_then_fine(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            return slow_stream(stub, words=0, interval=0.0, then_fail=True)
        return text_answer(["second", " try"])

    stub = Stub(broken_then_fine)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        assert (await answer(eng))["response"] == "second try"
        assert stub.count == 2
    finally:
        await eng.aclose()


async def test_a_kept_alive_connection_the_server_closed_is_sent_again_quietly(caplog) -> None:
    """llama-server closes a kept-alive connection after a few requests without saying so: the request
    sent on it fails before a byte of answer. That is no fault of the upstream: send it again, no warning."""
    import asyncio

    from stubs import sse

    # The stream is read to its end, [DONE] and all, so the connection goes back to the pool.
    body = sse([chat_chunk("fine"), chat_chunk(finish="stop")])
    answer_bytes = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                connections[-1] += 1
                if connections[-1] == 2:  # the second request on a connection: closed unanswered
                    break
                writer.write(answer_bytes)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    eng = engine(f"http://127.0.0.1:{port}/v1")
    try:
        with caplog.at_level(logging.WARNING, logger="toolrun"):
            for _ in range(3):
                assert (await answer(eng))["response"] == "fine"
        assert len(connections) >= 2, connections  # the stale connection was dropped and a new one made
        assert eng.pool.upstreams[0].failures == 0
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        await eng.aclose()
        server.close()


async def test_a_caller_that_goes_away_closes_the_upstream_stream(serve) -> None:
    stub = Stub(lambda n, req, body: _async(slow_stream(stub, words=500, interval=0.02)))
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        events = eng.generate(request())
        assert "response" in await events.__anext__()
        await events.aclose()  # the caller leaves
        assert wait_until(stub.closed_early.is_set, timeout=10), "the upstream kept generating for nobody"
        assert all(u.in_flight == 0 for u in eng.pool.upstreams)
    finally:
        await eng.aclose()


async def test_restarted_upstream_is_used_again(serve) -> None:
    """An upstream that died is set aside; once it is back, requests reach it again."""
    port = free_port()
    stub = Stub(always_ok)
    server = serve(stub.app(), port)
    eng = engine(f"http://127.0.0.1:{port}/v1")
    try:
        assert (await answer(eng))["response"] == "hello there"
        server.stop()
        with pytest.raises(EngineError, match=f"127.0.0.1:{port}") as caught:
            await answer(eng)
        assert "cannot connect" in str(caught.value)
        serve(stub.app(), port)  # back on the same port
        assert (await answer(eng))["response"] == "hello there"
        assert eng.pool.upstreams[0].failures == 0
    finally:
        await eng.aclose()


async def test_llama_cpp_without_its_template_is_an_error_that_names_the_route(serve) -> None:
    """llama-server's template at /props is required: a 404 there is an answer (not retried, the upstream
    not counted failing), and the error names the route asked at the server's root and the status."""

    async def no_props(n: int, req: Request, body: dict[str, Any]) -> Response:
        return Response(status_code=404) if req.url.path == "/props" else text_answer(["unused"])

    stub = Stub(no_props)
    server = serve(stub.app())
    eng = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="llama.cpp", retry=FAST)
    try:
        with pytest.raises(EngineError, match=rf"chat template from {server.url}/props: HTTP 404$"):
            await eng.prompt_template()
    finally:
        await eng.aclose()
    assert stub.count == 1 and eng.pool.upstreams[0].failures == 0


async def test_tool_calls_in_native_mode_join_fragments_and_name_once(serve) -> None:
    """llama-cpp-python repeats the name in every fragment; vLLM sends it once. Both read the same."""
    fragments = ['{"ci', 'ty": "Lis', 'bon"}']

    async def calls(n: int, req: Request, body: dict[str, Any]) -> Response:
        chunks = [
            chat_chunk(
                tool_calls=[
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": f},
                    }
                ]
            )
            for f in fragments
        ]
        chunks.append(chat_chunk(finish="tool_calls"))
        return sse_response(chunks)

    stub = Stub(calls)
    server = serve(stub.app())
    eng = engine(server.url + "/v1")
    try:
        events = [e async for e in eng.generate(request())]
        assert not any("tool_call_delta" in e for e in events), "native mode cannot promise a call validates"
        call_events = [e for e in events if "tool_calls" in e]
        assert call_events == [
            {"tool_calls": [{"index": 0, "id": "call_1", "name": "get_weather", "arguments": {"city": "Lisbon"}}]}
        ]
        assert events[-1]["finish_reason"] == "tool_calls"
    finally:
        await eng.aclose()


async def test_binding_drops_invalid_upstream_calls(serve) -> None:
    """The guard stays: an upstream call that breaks its tool's schema never reaches the caller."""

    async def bad_call(n: int, req: Request, body: dict[str, Any]) -> Response:
        return sse_response(
            [
                chat_chunk(
                    tool_calls=[
                        {
                            "index": 0,
                            "id": "c",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"town": 3}'},
                        }
                    ]
                ),
                chat_chunk(finish="tool_calls"),
            ]
        )

    stub = Stub(bad_call)
    server = serve(stub.app())
    catalog = Catalog()
    catalog.add(
        ModelEntry(
            name="@test/remote",
            description="stub",
            remote=RemoteEndpoint((server.url + "/v1",), "stub-model", tool_parsing="native"),
        )
    )
    ai = AsyncAI(catalog=catalog)
    tool = {
        "name": "get_weather",
        "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    try:
        out = await ai.run("@test/remote", {"messages": [{"role": "user", "content": "weather?"}], "tools": [tool]})
        assert out["tool_calls"] == []
        assert out["finish_reason"] == "stop"
    finally:
        await ai.aclose()


def test_sync_binding_with_several_base_urls(serve, tmp_path) -> None:
    """base_url as a list in the config file: requests spread over both."""
    first, second = Stub(always_ok), Stub(always_ok)
    a, b = serve(first.app()), serve(second.app())
    config = tmp_path / "config.toml"
    config.write_text(
        f'[models."@my/pair"]\nbase_url = ["{a.url}/v1", "{b.url}/v1"]\nremote_model = "m"\nupstream = "openai"\n'
    )
    with AI(catalog=Catalog.load(config)) as ai:
        for _ in range(4):
            assert ai.run("@my/pair", {"prompt": "hi"})["response"] == "hello there"
    assert first.count >= 1 and second.count >= 1


# ------------------------------------------------------------------ secrets


async def test_the_api_key_never_shows(serve, monkeypatch, caplog) -> None:
    """Not in errors, not in logs, not in reprs — even when the upstream echoes it back."""

    async def echo_key(n: int, req: Request, body: dict[str, Any]) -> Response:
        auth = req.headers.get("authorization", "")
        if n % 3 == 0:
            return json_error(401, f"invalid key in header {auth!r}")
        if n % 3 == 1:
            return json_error(500, f"internal error while handling {auth}")
        return sse_response([{"error": {"message": f"stream failed for {auth}", "code": 500}}])

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("STUB_API_KEY", SECRET)
    stub = Stub(echo_key)
    server = serve(stub.app())
    host = server.url.removeprefix("http://")
    password = "pw-in-url-8c1f2d"
    keyed = engine(server.url + "/v1", api_key_env="STUB_API_KEY", retry=RetryPolicy(max_retries=0))
    in_url = engine(f"http://user:{password}@{host}/v1", retry=RetryPolicy(max_retries=0))
    errors = []
    try:
        for eng in (keyed, in_url):
            for _ in range(3):
                with pytest.raises(EngineError) as caught:
                    await answer(eng)
                errors.append(caught.value)
    finally:
        await keyed.aclose()
        await in_url.aclose()
    assert stub.headers[0]["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert stub.headers[3]["authorization"].startswith("Basic ")  # the URL's user info, as a header
    assert "STUB_API_KEY" in str(errors[0])  # the auth failure names where the key comes from
    for error in errors:
        for secret in (SECRET, password):
            assert secret not in str(error) and secret not in repr(error) and secret not in repr(error.args)
    for eng in (keyed, in_url):
        for text in (repr(eng), repr(eng.pool), repr(eng.pool.upstreams), str(eng.base_urls), caplog.text):
            assert SECRET not in text and password not in text
    assert "***" in str(errors[1])


def _async(value: Any) -> Any:
    async def wrap() -> Any:
        return value

    return wrap()
