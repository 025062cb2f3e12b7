"""Hostile HTTP, second pass (issue #27): downloads a request cannot start, browsers that cannot drive a
keyless server, connections that cannot be held open, ambiguous framing, and OpenAI fields checked by type.

Every test runs a real uvicorn on 127.0.0.1 (the ``start_server`` fixture) and talks to it over real sockets.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import HttpStandIn, same_answer
from openai import OpenAI
from server_testing import API_KEY, SCRIPTED, WEATHER_TOOL, LiveServer, scripted_ai

from toolrun._errors import InvalidInputError, ModelUnavailableError
from toolrun.ai import AsyncAI, Catalog
from toolrun.server import ServerConfig, create_app, read_server_section, uvicorn_config

USER = [{"role": "user", "content": "What is the weather in Lisbon?"}]
CHAT = {"model": SCRIPTED, "messages": USER}
SECOND_MODEL = "@local/qwen2.5-coder-1.5b-instruct"
DEFAULT = "@local/qwen2.5-coder-0.5b-instruct"
HF_MODEL = "@hf/nousresearch/hermes-2-pro-mistral-7b"
ATTACKER = "http://attacker.example"


# ------------------------------------------------- 6. a request never downloads


class RecordingIndex(HttpStandIn):
    """A loopback HTTP server standing in for the package index and Hugging Face: it records every request."""

    def __init__(self) -> None:
        super().__init__(same_answer(404, b""))
        self.requests = self.paths


@pytest.fixture
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RecordingIndex]:
    """A model cache with no weights in it, and every download source pointed at a recording index."""
    index = RecordingIndex()
    monkeypatch.setenv("TOOLRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOOLRUN_PYPI_INDEX_URL", index.url + "/simple")
    monkeypatch.setenv("HF_ENDPOINT", index.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield index
    index.close()


def assert_says_nothing_private(message: str, tmp_path: Path) -> None:
    assert "http" not in message and "127.0.0.1" not in message, message
    assert str(tmp_path) not in message and "/models" not in message, message


@pytest.mark.parametrize("model", [SECOND_MODEL, DEFAULT, HF_MODEL])
def test_a_request_for_absent_weights_is_a_503_and_fetches_nothing(
    start_server, empty_cache: RecordingIndex, tmp_path: Path, model: str
) -> None:
    server = start_server(AsyncAI(catalog=Catalog()), api_keys=[API_KEY])
    auth = {"Authorization": f"Bearer {API_KEY}"}
    response = httpx.post(
        server.url + "/v1/chat/completions", json={"model": model, "messages": USER}, headers=auth, timeout=60
    )
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "model_unavailable" and error["type"] == "server_error"
    assert "not on this server" in error["message"] and f"toolrun pull {model}" in error["message"]
    assert_says_nothing_private(error["message"], tmp_path)

    response = httpx.post(
        f"{server.url}/client/v4/accounts/local/ai/run/{model}", json={"messages": USER}, headers=auth, timeout=60
    )
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False and body["errors"][0]["code"] == 5016
    assert_says_nothing_private(body["errors"][0]["message"], tmp_path)
    assert empty_cache.requests == []


def test_with_allow_download_a_failed_fetch_is_a_503_without_the_index_url(
    start_server, empty_cache: RecordingIndex, tmp_path: Path
) -> None:
    """The operator's switch does let a request download; what went wrong stays in the log."""
    server = start_server(AsyncAI(catalog=Catalog()), allow_download=True)
    response = httpx.post(
        server.url + "/v1/chat/completions", json={"model": SECOND_MODEL, "messages": USER}, timeout=60
    )
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "model_fetch_failed" and "downloading its weights failed" in error["message"]
    assert_says_nothing_private(error["message"], tmp_path)
    assert empty_cache.requests, "allow_download should have let the server try the index"


def test_the_operators_preload_may_download(start_server, empty_cache: RecordingIndex) -> None:
    """``--model`` names what the operator wants here: fetching it at startup is theirs to allow."""
    with pytest.raises(RuntimeError, match="did not start"):
        start_server(AsyncAI(catalog=Catalog()), preload=[SECOND_MODEL])  # the stand-in index has nothing
    assert empty_cache.requests and empty_cache.requests[0].startswith("/simple/")


def test_the_binding_fetches_only_the_embedded_default_unasked(empty_cache: RecordingIndex) -> None:
    """``weights(download=None)``, as its docstring says: gigabytes only on an explicit download=True."""
    with pytest.raises(ModelUnavailableError, match=f"toolrun pull {SECOND_MODEL}"):
        AsyncAI(catalog=Catalog()).weights(SECOND_MODEL)
    assert empty_cache.requests == []


# ------------------------------------------------- 7. browsers and a keyless server


def post_chat(server: LiveServer, headers: dict[str, str], body: Any = None) -> httpx.Response:
    content = json.dumps(CHAT if body is None else body)
    return httpx.post(server.url + "/v1/chat/completions", content=content, headers=headers, timeout=60)


@pytest.fixture
def keyless(start_server) -> LiveServer:
    return start_server(scripted_ai()[0])


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"Host": "attacker.example", "Content-Type": "application/json"}, "addressed to localhost"),
        ({"Host": "attacker.example:8787", "Content-Type": "application/json"}, "addressed to localhost"),
        ({"Origin": ATTACKER, "Content-Type": "application/json"}, "--cors-origin http://attacker.example"),
        ({"Origin": "null", "Content-Type": "application/json"}, "other origins"),
        ({"Content-Type": "text/plain"}, "Content-Type: application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type: application/json"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "Content-Type: application/json"),
    ],
)
def test_a_keyless_server_refuses_what_a_web_page_can_send(keyless: LiveServer, headers, words) -> None:
    response = post_chat(keyless, headers)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden" and words in error["message"]
    assert "access-control-allow-origin" not in response.headers


def test_refusals_speak_the_endpoints_dialect(keyless: LiveServer) -> None:
    response = httpx.post(
        f"{keyless.url}/client/v4/accounts/local/ai/run/{SCRIPTED}",
        json={"messages": USER},
        headers={"Origin": ATTACKER},
        timeout=60,
    )
    assert response.status_code == 403
    body = response.json()
    assert body["success"] is False and body["errors"][0]["code"] == 7403
    # A page must not read the health page or the metrics under a rebound name either.
    assert httpx.get(keyless.url + "/health", headers={"Host": "attacker.example"}).status_code == 403


def test_loopback_names_its_own_origin_and_plain_clients_are_served(keyless: LiveServer) -> None:
    port = keyless.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "127.0.0.1"):
        assert post_chat(keyless, {"Host": host, "Content-Type": "application/json"}).status_code == 200, host
    same_origin = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json; charset=utf-8"}
    assert post_chat(keyless, same_origin).status_code == 200
    assert post_chat(keyless, {}).status_code == 200  # no Content-Type at all: not what a page sends unasked


def test_the_openai_sdk_still_works_keyless(keyless: LiveServer) -> None:
    for base in (keyless.url, f"http://localhost:{keyless.port}"):
        client = OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(model=SCRIPTED, messages=USER, tools=[openai_tool()])
        (call,) = completion.choices[0].message.tool_calls or []
        assert call.function.name == "get_weather"


def openai_tool() -> Any:
    return {"type": "function", "function": WEATHER_TOOL}


def test_an_allowed_cors_origin_is_served_with_cors_headers(start_server) -> None:
    server = start_server(scripted_ai()[0], cors_origins=[ATTACKER])
    preflight = httpx.options(
        server.url + "/v1/chat/completions",
        headers={
            "Origin": ATTACKER,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, x-stainless-os",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ATTACKER
    assert "POST" in preflight.headers["access-control-allow-methods"]
    for content_type in ("application/json", "text/plain"):
        response = post_chat(server, {"Origin": ATTACKER, "Content-Type": content_type})
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ATTACKER
    # Another page, and a rebound name, stay refused.
    assert post_chat(server, {"Origin": "http://other.example"}).status_code == 403
    refused_preflight = httpx.options(
        server.url + "/v1/chat/completions",
        headers={"Origin": "http://other.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused_preflight.status_code == 403
    assert "access-control-allow-origin" not in refused_preflight.headers
    assert post_chat(server, {"Host": "attacker.example", "Origin": ATTACKER}).status_code == 403


def test_with_api_keys_the_key_is_the_guard(scripted_server: LiveServer) -> None:
    """A page cannot attach the key without a pre-flight, which no origin passes by default."""
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    assert post_chat(scripted_server, {**auth, "Host": "toolrun.internal:8787"}).status_code == 200
    assert post_chat(scripted_server, {"Origin": ATTACKER, "Content-Type": "text/plain"}).status_code == 401


def test_cors_origins_and_allow_download_in_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nallow_download = true\ncors_origins = ["http://localhost:5173"]\nheader_timeout = 5\n')
    assert read_server_section(config) == {
        "allow_download": True,
        "cors_origins": ["http://localhost:5173"],
        "header_timeout": 5,
    }
    config.write_text('[server]\nallow_download = "yes"\n')
    with pytest.raises(InvalidInputError, match="allow_download must be true or false"):
        read_server_section(config)
    with pytest.raises(InvalidInputError, match="is not an origin"):
        ServerConfig(cors_origins=("http://localhost:5173/app",))
    with pytest.raises(InvalidInputError, match="positive number of seconds"):
        ServerConfig(body_timeout=0)


# ------------------------------------------------- 9c. read deadlines and framing


@pytest.fixture
def impatient(start_server) -> LiveServer:
    """Deadlines of half a second, so that the tests see a connection closed without waiting long."""
    return start_server(scripted_ai()[0], header_timeout=0.5, body_timeout=0.5)


def read_until_closed(sock: socket.socket) -> bytes:
    # 30 s of socket timeout against 0.5 s deadlines: 60x, so only a missing deadline trips it.
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def assert_timed_out(data: bytes, phase: str) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    parsed = json.loads(body)
    assert parsed["success"] is False and parsed["error"]["code"] == "request_timeout"
    assert f"request's {phase} did not arrive" in parsed["error"]["message"]


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_headers_that_never_finish_are_closed(impatient: LiveServer, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(sent)
        assert_timed_out(read_until_closed(sock), "headers")


def test_many_stalled_connections_are_all_closed(impatient: LiveServer) -> None:
    socks = [socket.create_connection(("127.0.0.1", impatient.port)) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
        for sock in socks:
            assert_timed_out(read_until_closed(sock), "headers")
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(impatient.url + "/health").status_code == 200


def test_a_body_that_stalls_or_trickles_is_closed(impatient: LiveServer) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(head + b'Content-Length: 100\r\n\r\n{"model"')
        assert_timed_out(read_until_closed(sock), "body")

    # One byte every 50 ms would take 10 s; the deadline is for the whole body, so 0.5 s ends it.
    body = b" " * 200
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(head + b"Content-Length: 200\r\n\r\n")
        sent = 0
        try:
            for byte in body:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass  # the server closed the connection under us: what this test wants
        assert sent < len(body)
        data = read_until_closed(sock)
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
    assert httpx.get(impatient.url + "/health").status_code == 200


def test_kept_alive_connections_and_ordinary_requests_are_untouched(impatient: LiveServer) -> None:
    with httpx.Client(base_url=impatient.url) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
            time.sleep(0.7)  # longer than the deadlines: an idle kept-alive connection is not a slow request


def test_content_length_with_chunked_is_refused(keyless: LiveServer) -> None:
    body = json.dumps(CHAT).encode()
    smuggled = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n%s"
        % (len(body) + 5 + len(smuggled), len(body), body, smuggled)
    )
    with socket.create_connection(("127.0.0.1", keyless.port)) as sock:
        sock.sendall(request)
        data = read_until_closed(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data
    assert data.count(b"HTTP/1.1") == 1  # one answer: nothing was read as a second request
    error = json.loads(rest)["error"]
    assert "both Content-Length and Transfer-Encoding" in error["message"]


def test_the_default_deadlines() -> None:
    protocol = uvicorn_config(create_app(scripted_ai()[0])).http
    assert (protocol.header_timeout, protocol.body_timeout) == (10.0, 30.0)


# ------------------------------------------------- 9f. OpenAI fields checked by type


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"n": True}, "n", "n must be 1 (an integer: one choice per request), not true"),
        ({"n": 1.0}, "n", "not 1.0"),
        ({"n": 2}, "n", "not 2"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream is true"),
        ({"stream": False, "stream_options": {}}, "stream_options", "only allowed when stream is true"),
    ],
)
def test_n_and_stream_options_are_checked(keyless: LiveServer, extra: dict[str, Any], param: str, words: str) -> None:
    response = post_chat(keyless, {"Content-Type": "application/json"}, {**CHAT, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_n_one_and_stream_options_with_stream_are_accepted(keyless: LiveServer) -> None:
    assert post_chat(keyless, {"Content-Type": "application/json"}, {**CHAT, "n": 1}).status_code == 200
    streamed = post_chat(
        keyless,
        {"Content-Type": "application/json"},
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert streamed.status_code == 200 and '"usage"' in streamed.text


def test_serve_passes_the_new_options_from_flags_and_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import toolrun.server
    from toolrun.cli import app

    config = tmp_path / "config.toml"
    config.write_text('[server]\ncors_origins = ["https://app.example"]\nbody_timeout = 7.5\n')
    monkeypatch.setenv("TOOLRUN_CONFIG", str(config))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(toolrun.server, "serve", lambda *a, **k: calls.append(k))
    flags = ["serve", "--cors-origin", "http://localhost:5173", "--allow-download", "--header-timeout", "2"]
    started = CliRunner().invoke(app, flags)
    assert started.exit_code == 0, started.output
    (options,) = calls
    assert options["cors_origins"] == ["http://localhost:5173", "https://app.example"]
    assert (options["allow_download"], options["header_timeout"], options["body_timeout"]) == (True, 2.0, 7.5)
    refused = CliRunner().invoke(app, ["serve", "--cors-origin", "localhost:5173"])
    assert refused.exit_code == 1 and "is not an origin" in refused.stderr
