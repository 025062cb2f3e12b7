"""Calling operations against a loopback API: encoding, overrides, auth, redirects, limits, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun._errors import ToolExecutionError
from toolrun.tools.openapi import _call, create_tools_from_openapi_spec


def _spec(server: str, paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": server}],
        "paths": paths,
        **extra,
    }


def _q(got: dict[str, Any]) -> list[tuple[str, str]]:
    return [tuple(pair) for pair in got["query"]]


def _param(name: str, where: str, schema: dict | None = None, **kw: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": schema or {"type": "string"}, **kw}


async def _tool(spec: dict, name: str, **kw: Any) -> Any:
    tools = {t.name: t for t in await create_tools_from_openapi_spec(spec, **kw)}
    return tools[name]


ECHO = {
    "/echo/items/{id}": {
        "parameters": [_param("id", "path", required=True)],
        "get": {
            "operationId": "getItem",
            "parameters": [
                _param("q", "query"),
                _param("tags", "query", {"type": "array", "items": {"type": "string"}}),
                _param("csv", "query", {"type": "array", "items": {"type": "integer"}}, explode=False),
                _param("pipes", "query", {"type": "array", "items": {"type": "string"}}, style="pipeDelimited"),
                _param("filter", "query", {"type": "object"}, style="deepObject"),
                _param("flag", "query", {"type": "boolean"}),
                _param("X-Trace", "header"),
                _param("session", "cookie"),
            ],
        },
        "post": {
            "operationId": "postItem",
            "requestBody": {
                "required": True,
                "content": {
                    "application/vnd.api+json": {
                        "schema": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
                        }
                    }
                },
            },
        },
        "put": {
            "operationId": "putForm",
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "a": {"type": "string"},
                                "b": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    }
                }
            },
        },
        "patch": {
            "operationId": "patchMultipart",
            "requestBody": {
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"note": {"type": "string"}, "file": {"type": "string", "format": "binary"}},
                        }
                    }
                }
            },
        },
        "delete": {
            "operationId": "deleteText",
            "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}},
        },
    },
}


async def test_path_query_header_cookie_encoding(api) -> None:
    tool = await _tool(_spec(api.url, ECHO), "getItem")
    out = await tool.function(
        {
            "path": {"id": "a b/c"},
            "query": {
                "q": "x&y=z",
                "tags": ["t1", "t2"],
                "csv": [1, 2, 3],
                "pipes": ["p", "q"],
                "filter": {"color": "red", "size": 2},
                "flag": True,
                "extra": "kept",
            },
            "header": {"x-trace": "abc", "Host": "evil.test", "X-Undeclared": "dropped"},
            "cookie": {"session": "s 1;evil=1", "undeclared": "dropped"},
        }
    )
    got = json.loads(out)
    assert got["method"] == "GET"
    assert got["raw_path"] == "/echo/items/a%20b%2Fc"
    assert _q(got) == [
        ("q", "x&y=z"),
        ("tags", "t1"),
        ("tags", "t2"),
        ("csv", "1,2,3"),
        ("pipes", "p|q"),
        ("filter[color]", "red"),
        ("filter[size]", "2"),
        ("flag", "true"),
        ("extra", "kept"),
    ]
    headers = got["headers"]
    assert headers["x-trace"] == "abc"
    assert headers["host"] == f"127.0.0.1:{api.port}"
    assert "x-undeclared" not in headers
    assert headers["cookie"] == "session=s%201%3Bevil=1"


async def test_json_body_uses_the_declared_media_type(api) -> None:
    tool = await _tool(_spec(api.url, ECHO), "postItem")
    assert "required" not in tool.parameters  # as ai-utils; missing parts are told to the model
    assert "needs a request body" in json.loads(await tool.function({"path": {"id": "1"}}))["error"]
    got = json.loads(await tool.function({"path": {"id": "1"}, "body": {"name": "n", "count": 2}}))
    assert got["method"] == "POST"
    assert got["headers"]["content-type"] == "application/vnd.api+json"
    assert json.loads(got["body"]) == {"name": "n", "count": 2}


async def test_form_multipart_and_text_bodies(api) -> None:
    spec = _spec(api.url, ECHO)
    got = json.loads(
        await (await _tool(spec, "putForm")).function({"path": {"id": "1"}, "body": {"a": "x y", "b": ["1", "2"]}})
    )
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert got["body"] == "a=x+y&b=1&b=2"

    multipart = await _tool(spec, "patchMultipart")
    got = json.loads(await multipart.function({"path": {"id": "1"}, "body": {"note": "hello"}}))
    assert got["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'name="note"' in got["body"] and "hello" in got["body"]
    refused = json.loads(await multipart.function({"path": {"id": "1"}, "body": {"note": "n", "file": "data"}}))
    assert "uploading files is not supported" in refused["error"] and "'file'" in refused["error"]

    got = json.loads(await (await _tool(spec, "deleteText")).function({"path": {"id": "1"}, "body": "plain words"}))
    assert got["headers"]["content-type"] == "text/plain"
    assert got["body"] == "plain words"


async def test_swagger2_form_data(api) -> None:
    spec = {
        "swagger": "2.0",
        "host": f"127.0.0.1:{api.port}",
        "schemes": ["http"],
        "basePath": "/echo",
        "paths": {
            "/pets/{petId}": {
                "post": {
                    "operationId": "updatePetWithForm",
                    "consumes": ["application/x-www-form-urlencoded"],
                    "parameters": [
                        {"name": "petId", "in": "path", "required": True, "type": "integer"},
                        {"name": "name", "in": "formData", "type": "string"},
                        {
                            "name": "tags",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "csv",
                        },
                    ],
                }
            }
        },
    }
    tool = await _tool(spec, "updatePetWithForm")
    got = json.loads(
        await tool.function({"path": {"petId": 7}, "formData": {"name": "Rex"}, "query": {"tags": ["a", "b"]}})
    )
    assert got["raw_path"] == "/echo/pets/7"
    assert got["body"] == "name=Rex"
    assert _q(got) == [("tags", "a,b")]


async def test_flat_arguments_are_routed_by_name(api) -> None:
    tool = await _tool(_spec(api.url, ECHO), "getItem")
    got = json.loads(await tool.function({"id": "42", "q": "search", "x-trace": "t"}))
    assert got["raw_path"] == "/echo/items/42"
    assert _q(got) == [("q", "search"), ("x-trace", "t")]  # not a declared header name: query
    post = await _tool(_spec(api.url, ECHO), "postItem")
    got = json.loads(await post.function({"id": "1", "name": "n", "other": 1}))
    assert json.loads(got["body"]) == {"name": "n"} and _q(got) == [("other", "1")]
    # a JSON string of arguments, as some engines hand them over
    got = json.loads(await tool.function(json.dumps({"path": {"id": "9"}})))
    assert got["raw_path"] == "/echo/items/9"


async def test_bad_arguments_go_back_to_the_model(api) -> None:
    tool = await _tool(_spec(api.url, ECHO), "getItem")
    assert "missing path parameter 'id'" in json.loads(await tool.function({"query": {"q": "x"}}))["error"]
    assert "'query' must be an object" in json.loads(await tool.function({"path": {"id": 1}, "query": "q=1"}))["error"]
    assert "must be an object" in json.loads(await tool.function("[1, 2]"))["error"]
    assert "must be ASCII" in json.loads(await tool.function({"path": {"id": 1}, "header": {"X-Trace": "é"}}))["error"]
    out = json.loads(await tool.function({"path": {"id": 1}, "header": {"X-Trace": "a\r\nB: c"}}))
    assert "line breaks" in out["error"]
    assert api.requests == []


# --------------------------------------------------------------- overrides


async def test_overrides_apply_where_the_matcher_says(api) -> None:
    seen: list[tuple[Any, str]] = []

    def matcher(url: httpx.URL, method: str) -> bool:
        seen.append((url, method))
        return url.host == "127.0.0.1" and method == "get"

    tools = {
        t.name: t
        for t in await create_tools_from_openapi_spec(
            _spec(api.url, ECHO),
            overrides=[
                {
                    "matcher": matcher,
                    "values": {
                        "headers": {"User-Agent": "toolrun", "X-Trace": "forced"},
                        "query": {"q": "forced"},
                        "cookies": {"session": "forced"},
                        "path_data": {"id": "from-override"},
                    },
                },
                {"matcher": lambda url, method: method == "post", "values": {"body": {"count": 99}}},
            ],
        )
    }
    got = json.loads(
        await tools["getItem"].function(
            {"path": {"id": "1"}, "query": {"q": "model", "flag": False}, "header": {"X-Trace": "model"}}
        )
    )
    assert isinstance(seen[0][0], httpx.URL) and seen[0][0].path == "/echo/items/{id}" and seen[0][1] == "get"
    assert got["raw_path"] == "/echo/items/from-override"
    assert _q(got) == [("flag", "false"), ("q", "forced")]
    assert got["headers"]["user-agent"] == "toolrun" and got["headers"]["x-trace"] == "forced"
    assert got["headers"]["cookie"] == "session=forced"

    got = json.loads(await tools["postItem"].function({"path": {"id": "1"}, "body": {"name": "n", "count": 1}}))
    assert json.loads(got["body"]) == {"name": "n", "count": 99}
    assert "user-agent" not in got["headers"] or got["headers"]["user-agent"] != "toolrun"


async def test_ai_utils_spellings_and_form_data_override(api) -> None:
    spec = _spec(
        api.url, {"/echo/{x}": {"post": {"operationId": "noBody", "parameters": [_param("x", "path", required=True)]}}}
    )
    tool = await _tool(
        spec,
        "noBody",
        overrides=[{"matcher": lambda url, method: True, "values": {"pathData": {"x": "p"}, "formData": {"k": "v"}}}],
    )
    got = json.loads(await tool.function({}))
    assert got["raw_path"] == "/echo/p"
    assert got["body"] == "k=v" and got["headers"]["content-type"] == "application/x-www-form-urlencoded"


# -------------------------------------------------------------------- auth

SECURED = {
    "components": {
        "securitySchemes": {
            "key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "qkey": {"type": "apiKey", "in": "query", "name": "api_key"},
            "ckey": {"type": "apiKey", "in": "cookie", "name": "sid"},
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"},
            "mtls": {"type": "mutualTLS"},
            "digest": {"type": "http", "scheme": "digest"},
        }
    },
}


def _secured(url: str, security: list[dict]) -> dict[str, Any]:
    return _spec(
        url,
        {"/echo/s": {"get": {"operationId": "op", "security": security, "parameters": [_param("api_key", "query")]}}},
        **SECURED,
    )


@pytest.mark.parametrize(
    "security, credentials, check",
    [
        ([{"key": []}], {"key": "k1"}, lambda g: g["headers"]["x-api-key"] == "k1"),
        ([{"qkey": []}], {"qkey": "k2"}, lambda g: _q(g) == [("api_key", "k2")]),  # wins over the model's
        ([{"ckey": []}], {"ckey": "k3"}, lambda g: g["headers"]["cookie"] == "sid=k3"),
        ([{"bearer": []}], {"bearer": "tok"}, lambda g: g["headers"]["authorization"] == "Bearer tok"),
        (
            [{"basic": []}],
            {"basic": ("u", "p")},
            lambda g: g["headers"]["authorization"] == "Basic " + base64.b64encode(b"u:p").decode(),
        ),
        (
            [{"key": [], "bearer": []}, {"qkey": []}],
            {"qkey": "only"},
            lambda g: _q(g) == [("api_key", "only")] and "authorization" not in g["headers"],
        ),
        ([{"bearer": []}], {}, lambda g: "authorization" not in g["headers"]),
        ([{"mtls": []}], {"mtls": "cert"}, lambda g: "authorization" not in g["headers"]),
        (
            [{"digest": []}],
            {"digest": 'username="u"'},
            lambda g: g["headers"]["authorization"] == 'Digest username="u"',
        ),
    ],
)
async def test_security_schemes(api, security: list, credentials: dict, check: Any) -> None:
    tool = await _tool(_secured(api.url, security), "op", credentials=credentials)
    got = json.loads(await tool.function({"query": {"api_key": "from-model"}} if security == [{"qkey": []}] else {}))
    assert check(got), got


async def test_document_level_security_and_swagger2_basic(api) -> None:
    spec = {
        "swagger": "2.0",
        "host": f"127.0.0.1:{api.port}",
        "schemes": ["http"],
        "securityDefinitions": {"b": {"type": "basic"}},
        "security": [{"b": []}],
        "paths": {"/echo/x": {"get": {"operationId": "x"}}},
    }
    tool = await _tool(spec, "x", credentials={"b": "user:pw"})
    got = json.loads(await tool.function({}))
    assert got["headers"]["authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()


# -------------------------------------------------------- where requests go

SSRF_VALUES = [
    "../admin",
    "../../etc/passwd",
    "a/b",
    "%2F",
    "%2e%2e",
    "?x=1",
    "#frag",
    "http://evil.example/",
    "//evil.example/x",
    "@evil.example",
    "a\\b",
    "\u00e9\u4e2d",
    " ",
]


async def test_path_values_cannot_change_the_path_or_host(api, other) -> None:
    tool = await _tool(
        _spec(
            api.url + "/echo/base",
            {
                "/users/{name}/repos": {
                    "get": {"operationId": "repos", "parameters": [_param("name", "path", required=True)]}
                }
            },
        ),
        "repos",
    )
    for value in SSRF_VALUES:
        got = json.loads(await tool.function({"path": {"name": value}}))
        prefix, segment, suffix = got["raw_path"].rsplit("/", 2)[0], *got["raw_path"].rsplit("/", 2)[1:]
        assert prefix == "/echo/base/users" and suffix == "repos", (value, got["raw_path"])
        assert unquote(segment) == value
        assert got["raw_query"] == ""
    for value in (".", "..", ""):
        out = json.loads(await tool.function({"path": {"name": value}}))
        assert "cannot be" in out["error"]
    assert other.requests == []


@settings(max_examples=300, deadline=None)
@given(value=st.text(min_size=1))
def test_any_path_value_stays_one_segment_on_the_same_origin(value: str) -> None:
    tool = asyncio.run(
        _tool(
            _spec(
                "https://api.example.com/v1",
                {"/items/{id}/x": {"get": {"operationId": "g", "parameters": [_param("id", "path", required=True)]}}},
            ),
            "g",
        )
    )
    try:
        request = _call._build(tool.function.op, tool.function.settings, {"path": {"id": value}})
    except _call.ArgumentError:
        assert value in (".", "..")
        return
    url = request.url
    assert (url.scheme, url.host, url.port) == ("https", "api.example.com", None)
    raw = url.raw_path.decode()
    assert "?" not in raw and "#" not in raw and url.query == b""
    head, segment, tail = raw.rsplit("/", 2)
    assert head == "/v1/items" and tail == "x"
    assert unquote(segment) == value


async def test_redirects_stay_on_the_origin(api, other) -> None:
    paths = {
        "/redirect": {
            "get": {"operationId": "go", "parameters": [_param("to", "query"), _param("code", "query")]},
            "post": {
                "operationId": "postGo",
                "parameters": [_param("to", "query"), _param("code", "query")],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            },
        }
    }
    spec = _spec(api.url, paths, security=[{"key": []}], **SECURED)
    tools = {
        t.name: t
        for t in await create_tools_from_openapi_spec(
            spec,
            credentials={"key": "secret"},
            overrides=[{"matcher": lambda u, m: True, "values": {"headers": {"X-Override": "o"}}}],
        )
    }
    # same origin: followed, with the credentials
    got = json.loads(await tools["go"].function({"query": {"to": "/echo/landed"}}))
    assert got["raw_path"] == "/echo/landed" and got["headers"]["x-api-key"] == "secret"
    # 303 after a POST: a GET without the body
    got = json.loads(await tools["postGo"].function({"query": {"to": "/echo/after", "code": "303"}, "body": {"a": 1}}))
    assert got["method"] == "GET" and got["body"] == "" and "content-type" not in got["headers"]
    # 307 keeps the method and body
    got = json.loads(await tools["postGo"].function({"query": {"to": "/echo/kept", "code": "307"}, "body": {"a": 1}}))
    assert got["method"] == "POST" and json.loads(got["body"]) == {"a": 1}
    # another origin (another port): refused, nothing sent there
    for target in (f"{other.url}/echo/stolen", f"http://localhost:{api.port}/echo/x"):
        out = json.loads(await tools["go"].function({"query": {"to": target}}))
        assert "another origin; not followed" in out["error"] and out["status"] == 302
    assert other.requests == []
    # a redirect loop ends (/redirect with no target sends you to /redirect)
    out = json.loads(await tools["go"].function({}))
    assert out == {"error": "more than 5 redirects"}


# ----------------------------------------------------------------- answers


async def test_response_size_cap(api) -> None:
    spec = _spec(api.url, {"/big": {"get": {"operationId": "big", "parameters": [_param("n", "query")]}}})
    tool = await _tool(spec, "big", max_response_bytes=1000)
    out = await tool.function({"query": {"n": 50_000}})
    body, marker = out.rsplit("\n", 1)
    assert len(body.encode()) <= 1000 and body.startswith("é")
    assert marker == "[response truncated: showing the first 1000 bytes of 50000 bytes]"
    small = await tool.function({"query": {"n": 10}})
    assert small == "é" + "x" * 8


async def test_timeouts_cover_the_whole_exchange(api) -> None:
    spec = _spec(
        api.url,
        {
            "/slow": {"get": {"operationId": "slow", "parameters": [_param("s", "query")]}},
            "/drip": {"get": {"operationId": "drip", "parameters": [_param("n", "query"), _param("s", "query")]}},
        },
    )
    tools = {t.name: t for t in await create_tools_from_openapi_spec(spec, timeout=0.5)}
    # Both answers would take 60 s; drip's every read is quick, so only a whole-exchange timeout stops it.
    for name, query in (("slow", {"s": 60}), ("drip", {"n": 600, "s": 0.1})):
        started = time.perf_counter()
        out = json.loads(await tools[name].function({"query": query}))
        assert out == {"error": "the request timed out after 0.5s"}
        assert time.perf_counter() - started < 10  # hang guard: normally 0.5 s (20x); waiting it out is 60 s


async def test_error_statuses_and_network_errors(api) -> None:
    spec = _spec(
        api.url,
        {
            "/status/{code}": {"get": {"operationId": "status", "parameters": [_param("code", "path", required=True)]}},
            "/users/{u}": {"get": {"operationId": "user", "parameters": [_param("u", "path", required=True)]}},
        },
    )
    tools = {t.name: t for t in await create_tools_from_openapi_spec(spec)}
    out = json.loads(await tools["status"].function({"path": {"code": 404}}))
    assert out == {"error": "HTTP 404 Not Found", "status": 404, "body": {"message": "status 404"}}
    out = json.loads(await tools["status"].function({"path": {"code": 503}}))
    assert out["status"] == 503
    assert json.loads(await tools["status"].function({"path": {"code": 204}})) == {"status": 204}
    assert json.loads(await tools["user"].function({"path": {"u": "cloudflare"}}))["name"] == "Cloudflare"

    dead = await _tool(_spec("http://127.0.0.1:9", {"/x": {"get": {"operationId": "x"}}}), "x")
    out = json.loads(await dead.function({}))
    assert set(out) == {"error"} and "Connect" in out["error"]


async def test_no_server_url_is_the_callers_error(corpus_dir) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "3.0/json/callbacks.json")  # no servers: "/"
    with pytest.raises(ToolExecutionError, match="pass base_url="):
        await tools[0].function({})


async def test_base_url_overrides_the_servers(api) -> None:
    spec = _spec(
        "https://api.example.com/v1",
        {"/echo/{x}": {"get": {"operationId": "g", "parameters": [_param("x", "path", required=True)]}}},
    )
    tool = await _tool(spec, "g", base_url=api.url)
    assert json.loads(await tool.function({"path": {"x": "y"}}))["raw_path"] == "/echo/y"


async def test_tools_share_one_client_per_loop(api) -> None:
    tools = await create_tools_from_openapi_spec(_spec(api.url, ECHO))
    await tools[0].function({"path": {"id": "1"}})
    client = _call.shared_client()
    await tools[1].function({"path": {"id": "1"}, "body": {}})
    assert _call.shared_client() is client
    assert len(client.cookies.jar) == 0


async def test_given_client_is_used(api) -> None:
    async with httpx.AsyncClient(headers={"X-Client": "mine"}) as client:
        tool = await _tool(_spec(api.url, ECHO), "getItem", client=client)
        got = json.loads(await tool.function({"path": {"id": "1"}}))
    assert got["headers"]["x-client"] == "mine"


async def test_verbose_logs_calls_without_secrets(api, caplog: pytest.LogCaptureFixture) -> None:
    spec = _secured(api.url, [{"qkey": []}])
    quiet = await _tool(spec, "op", credentials={"qkey": "s3cret"})
    loud = await _tool(spec, "op", credentials={"qkey": "s3cret"}, verbose=True)
    with caplog.at_level("INFO", logger="toolrun.openapi"):
        await quiet.function({})
        assert caplog.records == []
        await loud.function({})
    text = caplog.text
    assert f"op: GET {api.url}/echo/s" in text and "answered" in text
    assert "s3cret" not in text
