"""Hostile documents: every bomb fails fast and small with an OpenAPISpecError that says where,
and nothing a document says sends a request to a link-local or metadata address.

Each bomb's figure before the limits is in its test (measured on a 2-core machine): the
bounds asserted here are ten times or more above what the bounded code takes.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import socket
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpcore
import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun._errors import InvalidInputError, OpenAPISpecError, ToolExecutionError
from toolrun.tools.openapi import MatcherURL, _address, _document, _yaml, create_tools_from_openapi_spec

META = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
PACKAGE = Path(_yaml.__file__).parent


async def measure(make: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """``(result or exception, seconds, peak MiB)`` of ``await make()``, under tracemalloc."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: Any = await make()
    except Exception as exc:
        result = exc
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, elapsed, peak


async def tools_and_schemas(spec: Any, **kw: Any) -> list[dict[str, Any]]:
    return [dict(t.parameters) for t in await create_tools_from_openapi_spec(spec, **kw)]


# ------------------------------------------------------------------ documents


def yaml_laughs_schema(levels: int, fan: int = 9) -> str:
    """A schema whose level i has ``fan`` properties aliasing level i-1: fan**levels leaves."""
    lines = ["openapi: 3.0.0", "servers: [{url: 'https://x.test'}]", "x-laughs:", "  l0: &l0 {type: string}"]
    for i in range(1, levels + 1):
        props = ", ".join(f"p{j}: *l{i - 1}" for j in range(fan))
        lines.append(f"  l{i}: &l{i} {{type: object, properties: {{{props}}}}}")
    lines += [
        "paths:",
        "  /a:",
        "    post:",
        "      operationId: bomb",
        "      requestBody:",
        "        content:",
        "          application/json:",
        f"            schema: *l{levels}",
    ]
    return "\n".join(lines) + "\n"


def yaml_laughs_value(levels: int, key: str = "default", fan: int = 9) -> str:
    """A parameter whose schema's ``key`` is a list of lists ... of ``fan`` aliases each."""
    lines = ["openapi: 3.0.0", "servers: [{url: 'https://x.test'}]", "x-laughs:", "  l0: &l0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    lines += [
        "paths:",
        "  /a:",
        "    get:",
        "      operationId: bomb",
        "      parameters:",
        "        - {name: q, in: query, schema: {type: array, " + f"{key}: *l{levels}" + "}}",
    ]
    return "\n".join(lines) + "\n"


def ref_bomb(levels: int, fan: int = 4) -> str:
    """Level i's ``fan`` properties each ``$ref`` level i-1: fan**levels nodes from a few KB."""
    schemas: dict[str, Any] = {"L0": {"type": "string"}}
    for i in range(1, levels + 1):
        schemas[f"L{i}"] = {
            "type": "object",
            "properties": {f"p{j}": {"$ref": f"#/components/schemas/L{i - 1}"} for j in range(fan)},
        }
    return json.dumps(
        {
            "openapi": "3.0.0",
            "servers": [{"url": "https://x.test"}],
            "paths": {
                "/a": {
                    "post": {
                        "operationId": "bomb",
                        "requestBody": {
                            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/L{levels}"}}}
                        },
                    }
                }
            },
            "components": {"schemas": schemas},
        }
    )


def deep_schema_json(levels: int) -> str:
    text = '{"type": "string"}'
    for _ in range(levels):
        text = '{"type": "object", "properties": {"a": ' + text + "}}"
    return (
        '{"openapi": "3.0.0", "servers": [{"url": "https://x.test"}], "paths": {"/a": {"post": {'
        '"operationId": "bomb", "requestBody": {"content": {"application/json": {"schema": ' + text + "}}}}}}}"
    )


def deep_schema_mapping(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {
            "/a": {
                "post": {"operationId": "bomb", "requestBody": {"content": {"application/json": {"schema": schema}}}}
            }
        },
    }


# ------------------------------------------------------------------ YAML aliases


async def test_billion_laughs_in_a_schema_is_refused_while_loading() -> None:
    # Before: building tool.parameters passed 628 MB (and 60 s) and kept going.
    text = yaml_laughs_schema(9)
    assert len(text) < 2000
    error, _, peak = await measure(lambda: tools_and_schemas(text))
    assert isinstance(error, OpenAPISpecError), error
    assert "aliases stand for more than 1,000,000 values" in str(error) and "line " in str(error)
    assert error.where == "spec"
    assert peak < 20, peak  # the bomb is memory: measured by tracemalloc's peak, not by time


@pytest.mark.parametrize("key", ["default", "example", "enum"])
async def test_billion_laughs_in_a_value_is_refused_while_loading(key: str) -> None:
    # Before: a CPU-bound hang (no answer in 60 s) when the default was checked for JSON-ness.
    error, elapsed, peak = await measure(lambda: tools_and_schemas(yaml_laughs_value(9, key)))
    assert isinstance(error, OpenAPISpecError) and "billion laughs" in str(error), error
    assert peak < 20, peak
    assert elapsed < 2, elapsed  # hang guard (the bomb was CPU-bound): normally 0.01 s, 200x


async def test_laughs_under_the_alias_limit_are_cut_in_the_schema() -> None:
    # 9**5 = 59,049 leaves: allowed by the loader, cut like a $ref bomb when the schema is built.
    (schema,), _, peak = await measure(lambda: tools_and_schemas(yaml_laughs_schema(5)))
    text = json.dumps(schema)
    assert "not expanded: schema too large" in text
    assert len(text) < 500_000 and peak < 50, (len(text), peak)  # work: bytes written, memory
    assert not list(META.iter_errors(schema))


async def test_a_default_of_a_hundred_thousand_values_names_the_operation() -> None:
    # 9**5 values in one default: more than any tool schema may hold once it is written out.
    error, _, peak = await measure(lambda: tools_and_schemas(yaml_laughs_value(5)))
    assert isinstance(error, OpenAPISpecError), error
    assert error.where == "paths['/a'].get"
    assert "tool 'bomb'" in str(error) and "larger than 100,000 nodes" in str(error)
    assert peak < 50, peak  # work: memory, not time


async def test_self_alias_is_refused() -> None:
    # Before: RecursionError when the schema was built.
    text = (
        "openapi: 3.0.0\nservers: [{url: 'https://x.test'}]\npaths:\n  /a:\n    get:\n      parameters:\n"
        "        - name: q\n          in: query\n          schema:\n            type: object\n"
        "            default: &d {a: *d}\n"
    )
    with pytest.raises(OpenAPISpecError, match=r"alias \*d is used inside the node it names.*line 11"):
        await create_tools_from_openapi_spec(text)


async def test_aliases_cannot_stack_nesting_past_the_limit() -> None:
    # Each anchor nests the one before 200 levels deeper: 200 syntactic levels, 2,000 real ones.
    lines = ["openapi: 3.0.0", "x:", "  a0: &a0 1"]
    for i in range(1, 11):
        lines.append(f"  a{i}: &a{i} " + "[" * 200 + f"*a{i - 1}" + "]" * 200)
    with pytest.raises(OpenAPISpecError, match=r"alias \*a1 nests the document more than 256 levels deep"):
        await create_tools_from_openapi_spec("\n".join(lines) + "\n")


async def test_alias_limits_can_be_raised() -> None:
    text = yaml_laughs_value(6)  # 9**6 = 531,441 values twice over
    with pytest.raises(OpenAPISpecError, match="billion laughs"):
        await create_tools_from_openapi_spec(text)
    # Raised, the loader takes it, and the schema's own limit still stands.
    (tool,) = await create_tools_from_openapi_spec(text, max_alias_nodes=5_000_000)
    with pytest.raises(OpenAPISpecError, match="larger than 100,000 nodes"):
        _ = tool.parameters


# ------------------------------------------------------------------ $ref bombs


@pytest.mark.parametrize("levels", [10, 12, 14])
async def test_ref_bomb_is_cut_to_the_budget(levels: int) -> None:
    # Before: 10 levels serialised to 42 MB (7.9 s); 12 levels passed 1.35 GB; 14 never finished.
    text = ref_bomb(levels)
    assert len(text) < 4000
    (schema,), _, peak = await measure(lambda: tools_and_schemas(text))
    written = json.dumps(schema)
    assert "a L" in written and "(not expanded: schema too large)" in written
    assert len(written) < 400_000, len(written)  # work: bytes written and memory, not time
    assert peak < 50, peak
    assert not list(META.iter_errors(schema))


async def test_the_schema_budget_can_be_raised_and_lowered() -> None:
    small = json.dumps(await tools_and_schemas(ref_bomb(8), max_schema_nodes=100))
    default = json.dumps(await tools_and_schemas(ref_bomb(8)))
    large = json.dumps(await tools_and_schemas(ref_bomb(8), max_schema_nodes=50_000))  # 4**8 = 65,536 leaves
    assert len(small) < len(default) < len(large)
    assert "schema too large" in large
    whole = json.dumps(await tools_and_schemas(ref_bomb(6), max_schema_nodes=50_000))
    assert "not expanded" not in whole and whole.count('"type": "string"') == 4**6


async def test_shared_python_objects_count_each_time_they_appear() -> None:
    # A mapping given by the caller can share sub-objects like YAML aliases do.
    leaf: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        leaf = {"type": "object", "properties": {f"p{j}": leaf for j in range(4)}}
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": leaf}}}}}},
    }
    (schema,), _, peak = await measure(lambda: tools_and_schemas(spec))
    assert "(repeated schema, not expanded: schema too large)" in json.dumps(schema)
    assert len(json.dumps(schema)) < 400_000 and peak < 50, peak  # work: bytes written and memory


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize("n", [100_000, 1_000_000])
async def test_deep_yaml_is_refused_in_linear_time(n: int) -> None:
    # Before: 100,000 "[" (200 KB) took 41.6 s to parse; 40,000 took 6 s (libyaml is quadratic in it).
    text = "openapi: 3.0.0\nx: " + "[" * n + "]" * n + "\n"
    error, elapsed, peak = await measure(lambda: create_tools_from_openapi_spec(text))
    assert isinstance(error, OpenAPISpecError), error
    assert "nested more than 256 levels deep at line 2" in str(error)
    assert peak < 20, peak
    assert elapsed < 1, elapsed  # hang guard (quadratic parse, 41.6 s before): normally 0.02 s, 50x


async def test_yaml_depth_limit_can_be_raised() -> None:
    text = "openapi: 3.0.0\npaths: {}\nx: " + "[" * 300 + "]" * 300 + "\n"
    with pytest.raises(OpenAPISpecError, match="more than 256 levels"):
        await create_tools_from_openapi_spec(text)
    assert await create_tools_from_openapi_spec(text, max_depth=400) == []
    with pytest.raises(InvalidInputError) as info:
        await create_tools_from_openapi_spec(text, max_depth=0)
    assert info.value.where == "max_depth"


@pytest.mark.parametrize("fast_json", [True, False])
async def test_deep_json_is_an_openapi_error(fast_json: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: RecursionError.
    if not fast_json:
        monkeypatch.setattr(_document, "msgspec", None)
    for text in (
        '{"openapi": "3.0.0", "x": ' + "[" * 100_000 + "]" * 100_000 + ', "paths": {}}',
        deep_schema_json(3000),
    ):
        error, elapsed, _ = await measure(lambda text=text: create_tools_from_openapi_spec(text))
        assert isinstance(error, OpenAPISpecError) and "nested too deeply" in str(error), error
        assert elapsed < 1  # hang guard: normally 0.01 s, 100x


@pytest.mark.parametrize("make", [deep_schema_json, deep_schema_mapping])
async def test_a_schema_deeper_than_tools_may_be_names_the_operation(make: Callable[[int], Any]) -> None:
    (tool,) = await create_tools_from_openapi_spec(make(300))
    with pytest.raises(OpenAPISpecError) as info:
        _ = tool.parameters
    assert info.value.where == "paths['/a'].post"
    assert "tool 'bomb': the schema is nested more than 48 levels deep" in str(info.value)
    (tool,) = await create_tools_from_openapi_spec(make(40))  # deep, but within the limit
    assert json.dumps(tool.parameters).count('"properties"') == 41


async def test_a_python_value_that_contains_itself() -> None:
    looped: dict[str, Any] = {}
    looped["a"] = looped
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {
            "/a": {
                "get": {
                    "operationId": "loop",
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "object", "default": looped}}],
                }
            }
        },
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    with pytest.raises(OpenAPISpecError, match="tool 'loop': an enum, default or const value is nested too deeply"):
        _ = tool.parameters


async def test_a_schema_that_contains_itself() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    schema["properties"]["self"] = schema
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}}}}},
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    assert tool.parameters["properties"]["body"]["properties"]["self"] == {
        "description": "(recursive schema, not expanded)"
    }


# ------------------------------------------------------------------ real documents stay whole


async def test_limits_cut_nothing_in_github_or_the_corpus(github_spec: bytes, corpus_files: list[Path]) -> None:
    for spec in (github_spec, *corpus_files):
        for tool in await create_tools_from_openapi_spec(spec):
            assert "schema too large" not in json.dumps(tool.parameters), tool.name


# ------------------------------------------------------------------ link-local and metadata hosts


METADATA_HOSTS = [
    "169.254.169.254",
    "169.254.170.2",
    "2852039166",
    "0xa9fea9fe",
    "169.254.43518",
    "169.254.169.254.",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "[fd00:ec2::254]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "metadata.google.internal",
    "METADATA.Google.Internal.",
    "metadata",
    "100.100.100.200",
    "192.0.0.192",
    "168.63.129.16",
]


@pytest.mark.parametrize("host", METADATA_HOSTS)
async def test_a_document_server_on_a_metadata_address_is_refused(host: str) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": f"http://{host}/latest"}],
        "paths": {"/meta-data": {"get": {"operationId": "steal"}}},
    }
    with pytest.raises(OpenAPISpecError) as info:
        await create_tools_from_openapi_spec(spec)
    assert info.value.where == "servers[0]"
    assert "operation GET /meta-data" in str(info.value) and "allow_link_local=True" in str(info.value)
    (tool,) = await create_tools_from_openapi_spec(spec, allow_link_local=True)  # made, never called here
    assert tool.function.op.server.base == f"http://{host.lower()}/latest"


@pytest.mark.parametrize(
    "spec, where",
    [
        (
            {
                "openapi": "3.0.0",
                "servers": [
                    {"url": "https://{region}.example.com", "variables": {"region": {"default": "169.254.169.254/x?"}}}
                ],
                "paths": {"/a": {"get": {}}},
            },
            "servers[0]",
        ),
        (
            {
                "openapi": "3.0.0",
                "servers": [{"url": "https://api.example.com"}],
                "paths": {"/a": {"get": {"servers": [{"url": "http://[fe80::a9fe:a9fe]"}]}}},
            },
            "paths['/a'].get.servers[0]",
        ),
        (
            {
                "openapi": "3.0.0",
                "servers": [{"url": "https://api.example.com"}],
                "paths": {
                    "/a": {"servers": [{"url": "http://metadata.google.internal/computeMetadata/v1"}], "get": {}}
                },
            },
            "paths['/a'].servers[0]",
        ),
        ({"swagger": "2.0", "host": "169.254.169.254", "paths": {"/a": {"get": {}}}}, "host"),
        ({"swagger": "2.0", "host": "user@169.254.169.254", "schemes": ["http"], "paths": {"/a": {"get": {}}}}, "host"),
    ],
)
async def test_every_place_a_document_names_a_server_is_checked(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(OpenAPISpecError) as info:
        await create_tools_from_openapi_spec(spec)
    assert info.value.where == where, info.value


async def test_only_selected_operations_need_an_allowed_server() -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://api.example.com"}],
        "paths": {
            "/fine": {"get": {"operationId": "fine"}},
            "/meta": {"get": {"operationId": "meta", "servers": [{"url": "http://169.254.169.254"}]}},
        },
    }
    (tool,) = await create_tools_from_openapi_spec(spec, match_patterns=["/fine$"])
    assert tool.name == "fine"


async def test_base_url_on_a_metadata_address_is_refused(api) -> None:
    spec = {"openapi": "3.0.0", "servers": [{"url": api.url}], "paths": {"/a": {"get": {}}}}
    with pytest.raises(InvalidInputError) as info:
        await create_tools_from_openapi_spec(spec, base_url="http://169.254.169.254/")
    assert info.value.where == "base_url" and "link-local" in str(info.value)
    (tool,) = await create_tools_from_openapi_spec(spec, base_url="http://169.254.169.254/", allow_link_local=True)
    assert tool.function.op.server.base == "http://169.254.169.254"
    (tool,) = await create_tools_from_openapi_spec(spec, base_url=f"http://localhost:{api.port}")  # loopback: fine
    assert json.loads(await tool.function({}))["status"] == 404  # answered by the loopback server


async def test_the_document_url_and_its_redirects_are_checked(api) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(500))
    async with httpx.AsyncClient(transport=transport) as client:
        refused = r"the document's URL .* is refused: 169\.254\.169\.254 is a link-local"
        with pytest.raises(OpenAPISpecError, match=refused):
            await create_tools_from_openapi_spec("http://169.254.169.254/openapi.json", client=client)
    assert seen == []  # refused before any request
    with pytest.raises(OpenAPISpecError, match=r"redirected to 'http://metadata\.google\.internal/x' is refused"):
        await create_tools_from_openapi_spec(f"{api.url}/redirect?to=http://metadata.google.internal/x")
    assert [r["raw_path"] for r in api.requests] == ["/redirect"]
    with pytest.raises(OpenAPISpecError, match="redirected to 'file'"):
        await create_tools_from_openapi_spec(f"{api.url}/redirect?to=file:///etc/passwd")
    with pytest.raises(OpenAPISpecError, match="redirected more than 10 times"):
        await create_tools_from_openapi_spec(f"{api.url}/redirect?to=/redirect")


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names under .test resolve as listed here; every connection toolrun opens is recorded, and
    one to anything but loopback fails the test instead of leaving the machine."""
    table = {
        "metadata-alias.test": "169.254.169.254",
        "api-alias.test": "127.0.0.1",
        "split.test": ["127.0.0.1", "169.254.169.254"],
    }
    opened: list[str] = []

    async def resolve(host: str, port: int) -> list[Any]:
        found = table.get(host)
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = [found] if isinstance(found, str) else found
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    real_connect = httpcore.AnyIOBackend.connect_tcp

    async def connect(self: Any, host: str, port: int, **kw: Any) -> Any:
        opened.append(host)
        assert host in ("127.0.0.1", "::1", "localhost"), f"a test tried to connect to {host}"
        return await real_connect(self, host, port, **kw)

    monkeypatch.setattr(_address, "resolve", resolve)
    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect)
    return opened


async def test_a_name_that_resolves_to_a_metadata_address_is_refused_when_connecting(api, fake_dns) -> None:
    spec = {"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a"}}}}
    (tool,) = await create_tools_from_openapi_spec(
        {**spec, "servers": [{"url": f"http://metadata-alias.test:{api.port}"}]}
    )
    out = json.loads(await tool.function({}))
    assert "refused to connect: metadata-alias.test (169.254.169.254) is a link-local address" in out["error"]
    (tool,) = await create_tools_from_openapi_spec({**spec, "servers": [{"url": f"http://split.test:{api.port}"}]})
    assert "refused to connect" in json.loads(await tool.function({}))["error"]  # one bad address is enough
    assert fake_dns == []  # nothing was opened
    with pytest.raises(OpenAPISpecError, match="refused to connect"):
        await create_tools_from_openapi_spec(f"http://metadata-alias.test:{api.port}/spec.json")
    assert fake_dns == []


async def test_a_name_that_resolves_to_loopback_is_called_at_the_checked_address(api, fake_dns) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": f"http://api-alias.test:{api.port}/echo"}],
        "paths": {"/a": {"get": {"operationId": "a"}}},
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    got = json.loads(await tool.function({}))
    assert got["raw_path"] == "/echo/a" and got["headers"]["host"] == f"api-alias.test:{api.port}"
    assert fake_dns == ["127.0.0.1"]


async def test_credentials_in_a_server_url_are_not_sent_and_say_so(api, caplog: pytest.LogCaptureFixture) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": f"http://bob:s3cret@127.0.0.1:{api.port}/echo"}],
        "paths": {"/a": {"get": {"operationId": "a"}}},
    }
    with caplog.at_level("WARNING", logger="toolrun.openapi"):
        (tool,) = await create_tools_from_openapi_spec(spec)
    (record,) = [r for r in caplog.records if r.name == "toolrun.openapi"]
    assert "has credentials in it" in record.getMessage() and "s3cret" not in record.getMessage()
    got = json.loads(await tool.function({}))
    assert "authorization" not in got["headers"]


# ------------------------------------------------------------------ override matchers


GITHUB_LIKE = {
    "openapi": "3.0.3",
    "servers": [{"url": "https://api.github.com"}],
    "paths": {
        "/users/{username}": {
            "get": {
                "operationId": "getGithubUser",
                "parameters": [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}],
            }
        }
    },
}


async def test_the_seeds_matcher_works_verbatim() -> None:
    # Cloudflare's docs: matcher: ({ url, method }) => url.hostname === "api.github.com". Before, the
    # Python port was accepted and then raised inside every call (httpx.URL has no .hostname).
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"login": "cloudflare"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:  # nothing leaves the process
        (tool,) = await create_tools_from_openapi_spec(
            GITHUB_LIKE,
            client=client,
            overrides=[
                {
                    "matcher": lambda url, method: url.hostname == "api.github.com",
                    "values": {"headers": {"User-Agent": "toolrun"}},
                }
            ],
        )
        assert json.loads(await tool.function({"path": {"username": "cloudflare"}})) == {"login": "cloudflare"}
    assert str(sent[0].url) == "https://api.github.com/users/cloudflare"
    assert sent[0].headers["user-agent"] == "toolrun"


def test_matcher_url_answers_the_whatwg_names() -> None:
    url = MatcherURL("https://api.github.com:8443/users/{username}?per_page=2#top")
    assert url.hostname == url.host == "api.github.com"
    assert url.href == "https://api.github.com:8443/users/%7Busername%7D?per_page=2#top"
    assert url.pathname == "/users/%7Busername%7D"
    assert (url.protocol, url.search, url.hash) == ("https:", "?per_page=2", "#top")
    assert url.origin == "https://api.github.com:8443"
    assert url.searchParams.get("per_page") == "2" and url.toString() == url.href
    assert isinstance(url, httpx.URL) and url.port == 8443
    bare = MatcherURL("http://[::1]")
    assert (bare.pathname, bare.search, bare.hash, bare.origin) == ("/", "", "", "http://[::1]")


class _CallableMatcher:
    def __call__(self, url: Any, method: str) -> bool:
        return True


@pytest.mark.parametrize(
    "matcher",
    [
        lambda url, method: True,
        lambda *args: True,
        lambda url, method, extra=None: True,
        functools.partial(lambda flag, url, method: flag, True),
        _CallableMatcher(),
        max,
    ],
)
async def test_matchers_that_take_url_and_method(matcher: Any) -> None:
    await create_tools_from_openapi_spec(GITHUB_LIKE, overrides=[{"matcher": matcher, "values": {}}])


@pytest.mark.parametrize(
    "matcher",
    [
        lambda request: True,  # ai-utils' ({ url, method }) => ... taken literally
        lambda: True,
        lambda url, method, extra: True,
        lambda *, url, method: True,
    ],
)
async def test_matchers_that_cannot_take_url_and_method_are_refused_when_made(matcher: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"must take two arguments \(url, method\)") as info:
        await create_tools_from_openapi_spec(GITHUB_LIKE, overrides=[{"matcher": matcher, "values": {}}])
    assert info.value.where == "overrides[0].matcher"


async def test_a_matcher_that_raises_is_a_tool_execution_error(api) -> None:
    spec = {**GITHUB_LIKE, "servers": [{"url": api.url}]}
    (tool,) = await create_tools_from_openapi_spec(
        spec, overrides=[{"matcher": lambda url, method: url.no_such_name, "values": {}}]
    )
    with pytest.raises(ToolExecutionError, match=r"overrides\[0\]\.matcher failed for GET .*AttributeError"):
        await tool.function({"path": {"username": "cloudflare"}})
    assert api.requests == []


# ------------------------------------------------------------------ structure


def test_yaml_loader_does_not_import_the_document_module() -> None:
    tree = ast.parse((PACKAGE / "_yaml.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.endswith("_document") for m in imported), imported


# ------------------------------------------------------------------ what servers answer


async def test_a_gzip_bomb_answer_is_inflated_only_to_the_limit(api) -> None:
    # Before: httpx inflated each 64 KB chunk whole, 64 MB at a time, whatever max_response_bytes said.
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": api.url}],
        "paths": {"/gzip-bomb": {"get": {"operationId": "bomb"}}},
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    out, _, peak = await measure(lambda: tool.function({"query": {"mb": 200}}))
    assert out.startswith("\0" * 1000) and out.endswith(
        "[response truncated: showing the first 32768 bytes of more than 32768 bytes]"
    )
    assert peak < 8, peak  # work: memory inflated, not time


async def test_a_gzip_bomb_document_is_inflated_only_to_the_limit(api) -> None:
    error, _, peak = await measure(
        lambda: create_tools_from_openapi_spec(f"{api.url}/gzip-bomb?mb=200", max_spec_bytes=1 << 20)
    )
    assert isinstance(error, OpenAPISpecError) and str(error).endswith("more than the 1048576-byte limit"), error
    assert peak < 16, peak  # work: memory inflated, not time


async def test_encodings_not_asked_for_are_an_error(api) -> None:
    spec = {"openapi": "3.0.0", "servers": [{"url": api.url}], "paths": {"/encoded": {"get": {"operationId": "e"}}}}
    (tool,) = await create_tools_from_openapi_spec(spec)
    for encoding in ("br", "gzip, gzip", "compress"):
        out = json.loads(await tool.function({"query": {"as": encoding}}))
        assert "which toolrun did not ask for" in out["error"], encoding
    assert "the gzip body is broken" in json.loads(await tool.function({"query": {"as": "gzip"}}))["error"]
    with pytest.raises(OpenAPISpecError, match="did not ask for"):
        await create_tools_from_openapi_spec(f"{api.url}/encoded?as=br")


async def test_a_broken_idna_host_is_an_error_not_a_crash(api) -> None:
    # httpx.URL("http://xn--a-.test").host raises idna's error: it escaped create_tools_from_openapi_spec.
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "http://xn--metadata-.google.internal/"}],
        "paths": {"/a": {"get": {"operationId": "a"}}},
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    assert "is not a valid URL" in tool.function.op.server.error
    with pytest.raises(ToolExecutionError, match="is not a valid URL"):
        await tool.function({})
    spec = {"openapi": "3.0.0", "servers": [{"url": api.url}], "paths": {"/redirect": {"get": {"operationId": "r"}}}}
    (tool,) = await create_tools_from_openapi_spec(spec)
    out = json.loads(await tool.function({"query": {"to": "http://xn--a-.test/x"}}))
    assert "the server's answer cannot be read: IDNAError" in out["error"]
    with pytest.raises(OpenAPISpecError):
        await create_tools_from_openapi_spec(f"{api.url}/redirect?to=http://xn--a-.test/x")


@pytest.mark.parametrize(
    "where, param",
    [
        ("header", {"name": "X-A\r\nInjected: 1", "in": "header"}),
        ("header", {"name": "X A", "in": "header"}),
        ("cookie", {"name": "a=b; admin", "in": "cookie"}),
    ],
)
async def test_header_and_cookie_names_from_the_document_must_be_tokens(api, where: str, param: dict) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": api.url}],
        "paths": {"/echo": {"get": {"operationId": "e", "parameters": [{**param, "schema": {"type": "string"}}]}}},
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    out = json.loads(await tool.function({where: {param["name"]: "v"}}))
    assert f"is not a valid {where} name" in out["error"]
    assert api.requests == []


async def test_security_scheme_fields_are_read_only_as_text(api) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": api.url}],
        "security": [{"k": []}, {"h": []}],
        "paths": {"/echo": {"get": {"operationId": "e"}}},
        "components": {
            "securitySchemes": {
                "k": {"type": "apiKey", "in": "header", "name": "X-Key\r\nX-Injected: 1"},
                "h": {"type": "http", "scheme": ["basic"] * 1000},
            }
        },
    }
    (tool,) = await create_tools_from_openapi_spec(spec, credentials={"k": "secret"})
    assert "is not a valid header name" in json.loads(await tool.function({}))["error"]
    (tool,) = await create_tools_from_openapi_spec(spec, credentials={"h": "token"})
    got = json.loads(await tool.function({}))
    assert got["headers"]["authorization"] == "Bearer token"  # no scheme text: treated as a bearer token


# ------------------------------------------------------------------ the model's arguments

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_DOTTY = st.sampled_from([".", "..", "", "%2e%2e", "../..", "a/../b", "\r\nX: y", "%2F", "/", "?", "#"])


@settings(max_examples=400, deadline=None)
@given(
    style=st.sampled_from(["simple", "label", "matrix"]),
    explode=st.booleans(),
    value=_JSON | _DOTTY | st.lists(_DOTTY, max_size=3) | st.dictionaries(_DOTTY, _DOTTY, max_size=2),
    header=_JSON | _DOTTY,
    cookie=_JSON | _DOTTY,
    query=_JSON | _DOTTY,
)
def test_no_argument_changes_where_a_request_goes(
    style: str, explode: bool, value: Any, header: Any, cookie: Any, query: Any
) -> None:
    from toolrun.tools.openapi import _call

    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://api.example.com/v1"}],
        "paths": {
            "/items/{id}/x": {
                "get": {
                    "operationId": "g",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "style": style,
                            "explode": explode,
                            "schema": {},
                        },
                        {"name": "X-H", "in": "header", "schema": {}},
                        {"name": "c", "in": "cookie", "schema": {}},
                        {"name": "q", "in": "query", "schema": {}},
                    ],
                }
            }
        },
    }
    (tool,) = asyncio.run(create_tools_from_openapi_spec(spec))
    args = {"path": {"id": value}, "header": {"X-H": header}, "cookie": {"c": cookie}, "query": {"q": query}}
    try:
        request = _call._build(tool.function.op, tool.function.settings, args)
    except (_call.ArgumentError, httpx.InvalidURL):
        return
    url = request.url
    assert (url.scheme, url.raw_host, url.port) == ("https", b"api.example.com", None)
    parts = url.raw_path.decode().split("?", 1)[0].split("/")
    assert parts[:3] == ["", "v1", "items"] and parts[4:] == ["x"], url
    assert parts[3] not in ("", ".", ".."), url  # never a dot segment (the URL's path would climb)
    assert "#" not in url.raw_path.decode()
    for name, text in request.headers:
        assert not any(c in text for c in "\r\n\0"), (name, text)


@pytest.mark.parametrize("fast_json", [True, False])
async def test_lone_surrogates_never_reach_a_tool(fast_json: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # JSON's "\ud800" is valid syntax for text that no encoder takes: the binding refused the whole tool
    # at request time, and a path holding one made every call raise UnicodeEncodeError.
    if not fast_json:
        monkeypatch.setattr(_document, "msgspec", None)
    text = (
        r'{"openapi": "3.0.0", "servers": [{"url": "https://x.test"}], "paths": {'
        r'"/a": {"get": {"operationId": "a\ud800b", "summary": "x\udfffy", "parameters": ['
        r'{"name": "q\ud800", "in": "query", "schema": {"type": "string"}},'
        r'{"name": "r", "in": "query", "schema": {"type": "string", "enum": ["\ud800", "ok"], "default": "\ud800",'
        r' "description": "d\ud800", "format": "\ud800", "pattern": "\ud800"}}]}},'
        r'"/b\ud800/{id}": {"get": {"operationId": "b", "parameters": [{"name": "id", "in": "path"}]}}}}'
    )
    from toolrun._json import check_json

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        tools = {t.name: t for t in await create_tools_from_openapi_spec(text, client=client)}
        assert set(tools) == {"a_b", "b"}
        a = tools["a_b"]
        assert a.description == "x?y"
        assert a.parameters["properties"]["query"]["properties"] == {
            "r": {"type": "string", "enum": ["ok"], "description": "d?"}
        }
        for tool in tools.values():
            check_json({"d": tool.description, "p": dict(tool.parameters)}, "tool")  # what the binding checks
        out = json.loads(await tools["b"].function({"path": {"id": 1}}))
        assert "cannot make a URL" in out["error"]


async def test_arguments_are_checked_before_they_are_used(api) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": api.url}],
        "paths": {
            "/echo/{id}": {
                "post": {
                    "operationId": "e",
                    "parameters": [{"name": "id", "in": "path", "required": True}],
                    "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
                }
            }
        },
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    looped: dict[str, Any] = {}
    looped["a"] = looped
    for args, message in [
        ({"path": {"id": "\ud800"}}, "lone surrogate"),
        ({"path": {"id": 1}, "body": {"a": "\udfff"}}, "lone surrogate"),
        ({"path": {"id": float("nan")}}, "not a JSON number"),
        ({"path": {"id": 1}, "body": looped}, "contains itself"),
        ('{"path": {"id": ' + "[" * 5000 + "]" * 5000 + "}}", "not a JSON object"),
        ('{"path": {"id": 1' + "0" * 5000 + "}}", "not a JSON object"),
    ]:
        out = json.loads(await tool.function(args))
        assert message in out["error"], (message, out)
    assert api.requests == []


# ------------------------------------------------------------------ work that grew with the square


def _names_counting_from_one(ops: list[tuple[Any, str, str]]) -> list[str]:
    """assign_names as it was: each clash counted its suffix up from 1 (quadratic in clashes)."""
    from toolrun.tools.openapi._convert import NAME_LIMIT, NAME_PATTERN, fallback_name, sanitize_name

    names: list[Any] = [None] * len(ops)
    taken: set[str] = set()
    for i, (op_id, _, _) in enumerate(ops):
        if isinstance(op_id, str) and NAME_PATTERN.match(op_id) and op_id not in taken:
            names[i] = op_id
            taken.add(op_id)
    for i, (op_id, method, path) in enumerate(ops):
        if names[i] is None:
            base = (sanitize_name(op_id) if isinstance(op_id, str) else "") or fallback_name(method, path)
            name, n = base, 1
            while name in taken:
                n += 1
                name = base[: NAME_LIMIT - len(f"_{n}")] + f"_{n}"
            names[i] = name
            taken.add(name)
    return names


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [None, "x", "x_2", "x_3", "a b", "a_b", "x" * 63, "x" * 64, "x" * 70, "x" * 62 + "_2", "y/z", "y_z"]
            ),
            st.sampled_from(["get", "post"]),
            st.sampled_from(["/x", "/a/b", "/y/z"]),
        ),
        max_size=30,
    )
)
def test_names_are_what_counting_from_one_gave(ops: list[tuple[Any, str, str]]) -> None:
    from toolrun.tools.openapi._convert import assign_names

    assert assign_names(ops) == _names_counting_from_one(ops)


async def test_ten_thousand_equal_operation_ids_are_named_in_linear_time() -> None:
    # Before: 8,000 operations all called "x" took 13 s to name (each counted up from x_2).
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {f"/p{i}": {"get": {"operationId": "x"}} for i in range(10_000)},
    }
    started = time.perf_counter()
    tools = await create_tools_from_openapi_spec(json.dumps(spec))
    assert time.perf_counter() - started < 5  # hang guard: normally 0.3 s (15x), quadratic took 13 s for 8,000
    assert [t.name for t in tools[:3]] == ["x", "x_2", "x_3"] and tools[-1].name == "x_10000"


async def test_document_wide_security_is_read_once() -> None:
    # Before: 4,000 operations under 4,000 document-wide security alternatives took 108 s to build.
    n = 4000
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "security": [{f"s{i}": []} for i in range(n)],
        "components": {"securitySchemes": {f"s{i}": {"type": "apiKey", "in": "header", "name": "k"} for i in range(n)}},
        "paths": {f"/p{i}": {"get": {}} for i in range(n)},
    }
    started = time.perf_counter()
    for tool in await create_tools_from_openapi_spec(json.dumps(spec)):
        _ = tool.parameters
    assert time.perf_counter() - started < 10  # hang guard: normally 0.15 s (60x), 108 s before


def test_references_that_miss_in_a_big_mapping_are_cheap() -> None:
    # Before: each miss scanned every key for YAML's int keys (200: ...): 10,000 misses in a mapping
    # of 100,000 keys were 10**9 str() calls.
    # Work, not time: the keys count how often their text is asked for.
    texts_made = 0

    class CountedKey(int):
        def __str__(self) -> str:
            nonlocal texts_made
            texts_made += 1
            return int.__repr__(self)

    schemas: dict[Any, Any] = {CountedKey(i): {"type": "string"} for i in range(100_000)}
    doc = _document.Document.from_tree({"openapi": "3.0.0", "components": {"schemas": schemas}}, "doc")
    assert all(doc.resolve(f"#/components/schemas/missing{i}") is _document.MISSING for i in range(100))
    assert doc.resolve("#/components/schemas/99999") == {"type": "string"}
    assert texts_made <= len(schemas), texts_made  # once per key, not once per key per miss


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: &d {b: *d}\n", "used inside the node it names"),
        ("x: " + "[" * 300 + "]" * 300 + "\n", "nested more than 256 levels deep"),
        (
            "l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 8)),
            "billion laughs",
        ),
    ],
)
@pytest.mark.parametrize("parser", ["libyaml", "pure python"])
def test_yaml_limits_hold_with_either_parser(
    text: str, message: str, parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if parser == "pure python":
        monkeypatch.setattr(_yaml, "_CParser", None)  # PyYAML built without libyaml
    with pytest.raises(_yaml.YamlError, match=message):
        _yaml.load(text)
    assert _yaml.load("a: &x [1, {b: 2}]\nc: *x\nd: {<<: {e: 1}, f: 2}\n") == {
        "a": [1, {"b": 2}],
        "c": [1, {"b": 2}],
        "d": {"e": 1, "f": 2},
    }


async def test_odd_answers_are_text_for_the_model_not_crashes(api) -> None:
    # Before: RecursionError / ValueError from reading an error body as JSON, and Python's
    # non-text codecs chosen by the server's charset: TypeError (rot13), AssertionError (hex),
    # and "zlib" / "bz2" would inflate whatever the 32 KB held.
    spec = {"openapi": "3.0.0", "servers": [{"url": api.url}], "paths": {"/answer": {"get": {"operationId": "a"}}}}
    (tool,) = await create_tools_from_openapi_spec(spec)
    deep = json.loads(await tool.function({"query": {"code": 400, "body": "[", "times": 30000}}))
    assert deep["status"] == 400 and deep["body"].startswith("[[[[")
    nested = json.loads(await tool.function({"query": {"code": 400, "body": "[", "times": 500}}))
    assert isinstance(nested["body"], str)  # parses, but deeper than anything downstream takes
    big = json.loads(await tool.function({"query": {"code": 400, "body": "1", "times": 5000}}))
    assert big["body"] == "1" * 5000
    for charset in ("rot13", "zlib", "bz2", "hex", "base64", "no-such-charset"):
        out = await tool.function({"query": {"type": f"text/plain; charset={charset}", "body": "hello"}})
        assert out == "hello", charset
    latin = await tool.function({"query": {"type": "text/plain; charset=latin-1", "body": "caf\xe9"}})
    assert latin == "café"


async def test_long_strings_count_by_their_length() -> None:
    # A node can be a megabyte of text: counted as one, 5,000 aliases of one were 5 GB of schema
    # (before: 6.6 GB of memory and no end in 60 s).
    big = "x" * 1_000_000
    text = (
        "openapi: 3.0.0\nservers: [{url: 'https://x.test'}]\ns: &s " + big + "\npaths:\n  /a:\n    get:\n"
        "      operationId: a\n      parameters:\n        - {name: q, in: query, schema: {type: string, enum: ["
        + ", ".join(["*s"] * 5000)
        + "]}}\n"
    )
    (tool,) = await create_tools_from_openapi_spec(text)

    async def build() -> Any:
        return tool.parameters

    error, _, peak = await measure(build)
    assert isinstance(error, OpenAPISpecError) and "JSON would be longer than 1,048,576 characters" in str(error)
    assert peak < 20, peak  # work: memory (6.6 GB before), not time
    # Through references, the megabyte is written once and the repeats are cut.
    schemas: dict[str, Any] = {"L0": {"type": "string", "enum": [big]}}
    for i in range(1, 8):
        schemas[f"L{i}"] = {
            "type": "object",
            "properties": {f"p{j}": {"$ref": f"#/components/schemas/L{i - 1}"} for j in range(4)},
        }
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {
            "/a": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/L7"}}}}
                }
            }
        },
        "components": {"schemas": schemas},
    }
    (tool,) = await create_tools_from_openapi_spec(json.dumps(spec))
    written = json.dumps(tool.parameters)
    assert written.count(big) == 1 and "schema too large" in written and len(written) < 1_100_000


def test_a_file_is_read_only_up_to_the_limit() -> None:
    # /proc files report a size of 0 and hold more: the size a file states is not trusted.
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc here")
    with pytest.raises(OpenAPISpecError, match="more than the 100-byte limit"):
        asyncio.run(create_tools_from_openapi_spec(str(maps), max_spec_bytes=100))


# ------------------------------------------------------------------ any YAML at all

_ATOMS = st.sampled_from(
    [
        "1",
        "-1",
        "0x1f",
        "017",
        "1e3",
        ".nan",
        ".inf",
        "~",
        "yes",
        "2024-01-01",
        "'s'",
        '"q"',
        "!!str 3",
        "!!int '4'",
        "!!float x",
        "!!binary aGk=",
        "!!python/object:os.system x",
        "!custom x",
        "<<",
        "*a",
        "*b",
        "&a x",
        "&b [1, *a]",
        "{}",
        "[]",
        "{<<: *a}",
        '"\\u0000"',
        '"\\ud800"',
        "? [a]",
        "&c {d: *c}",
        "'" + "x" * 300 + "'",
    ]
)
_KEYS = st.sampled_from(
    [
        "openapi",
        "paths",
        "/a/{id}",
        "get",
        "parameters",
        "schema",
        "type",
        "default",
        "enum",
        "<<",
        "name",
        "in",
        "properties",
        "items",
        "$ref",
        "servers",
        "url",
        "A",
        "1",
        "&k key",
        "*a",
    ]
)


def _yaml_value(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _ATOMS
    inner = _yaml_value(depth - 1)
    return st.one_of(
        _ATOMS,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(_KEYS, inner), max_size=3).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
        st.tuples(st.sampled_from(["&a ", "&b ", "&c ", ""]), inner).map("".join),
    )


@settings(max_examples=300, deadline=None)
@given(st.tuples(_yaml_value(4), _yaml_value(4), _yaml_value(4)))
def test_any_yaml_document_converts_or_says_why(parts: tuple[str, str, str]) -> None:
    text = (
        "openapi: 3.0.0\nservers: [{url: 'https://x.test'}]\nx: " + parts[0] + "\npaths:\n  /a/{id}:\n    get:\n"
        "      parameters: [{name: id, in: path, schema: " + parts[1] + "}]\n"
        "      requestBody: {content: {application/json: {schema: " + parts[2] + "}}}\n"
    )
    started = time.perf_counter()
    try:
        tools = asyncio.run(create_tools_from_openapi_spec(text))
        for tool in tools:
            json.dumps(tool.parameters, allow_nan=False)  # plain JSON
    except OpenAPISpecError:
        pass
    assert time.perf_counter() - started < 5  # hang guard: an example normally takes milliseconds


_OA_KEYS = st.sampled_from(
    [
        "openapi",
        "servers",
        "paths",
        "components",
        "parameters",
        "requestBody",
        "schema",
        "type",
        "properties",
        "items",
        "allOf",
        "anyOf",
        "$ref",
        "enum",
        "default",
        "in",
        "name",
        "required",
        "content",
        "application/json",
        "url",
        "variables",
        "securitySchemes",
        "schemas",
        "additionalProperties",
        "style",
        "explode",
        "format",
        "pattern",
        "const",
        "nullable",
        "description",
        "operationId",
        "id",
        "query",
        "header",
        "cookie",
        "path",
        "body",
        "apiKey",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "text/plain",
        "security",
        "scheme",
        "http",
    ]
)
_OA_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=10)
    | _OA_KEYS
    | st.sampled_from(
        [
            "#/components/schemas/A",
            "#/components/schemas/A/properties/a",
            "#",
            "http://169.254.169.254/x",
            "file:///etc/passwd",
            "#/paths",
        ]
    )
)
_OA_VALUES = st.recursive(
    _OA_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_OA_KEYS, inner, max_size=5), max_leaves=30
)


@settings(max_examples=200, deadline=None)
@given(
    op=_OA_VALUES,
    schemas=st.dictionaries(st.sampled_from(["A", "B"]), _OA_VALUES, max_size=2),
    security=_OA_VALUES,
    args=_JSON,
)
def test_any_document_shape_converts_or_says_why_and_calls_stay_home(
    op: Any, schemas: Any, security: Any, args: Any
) -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test/v1"}],
        "security": security,
        "paths": {"/a/{id}": {"get": op, "post": op}},
        "components": {"schemas": schemas, "securitySchemes": {"id": {"type": "http", "scheme": "bearer"}}},
    }
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="ok")

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            for form in (spec, json.dumps(spec)):
                try:
                    tools = await create_tools_from_openapi_spec(form, client=client, credentials={"id": "t"})
                except OpenAPISpecError:
                    continue
                for tool in tools:
                    try:
                        json.dumps(tool.parameters, allow_nan=False)
                    except OpenAPISpecError:
                        continue
                    try:
                        out = await tool.function(args)
                    except ToolExecutionError as exc:  # a server the document leaves unusable
                        assert "cannot be called" in str(exc)
                        continue
                    assert isinstance(out, str)

    asyncio.run(run())
    assert all(r.url.host == "x.test" and r.url.raw_path.startswith(b"/v1/a/") for r in sent)


async def test_credentials_do_not_follow_the_document_to_another_origin(api, other) -> None:
    # Redirects are followed one hop at a time (each is checked); like httpx's own following, a hop
    # to another origin goes without the client's Authorization.
    url = other.serve_spec("spec.json", json.dumps({"openapi": "3.0.0", "paths": {}}))
    async with httpx.AsyncClient(auth=("bob", "s3cret"), headers={"Authorization": "Bearer t0ken"}) as client:
        await create_tools_from_openapi_spec(f"{api.url}/redirect?to={url}", client=client)
        await create_tools_from_openapi_spec(url, client=client)
    assert "authorization" in api.requests[0]["headers"]
    (hop, direct) = other.requests
    assert "authorization" not in hop["headers"] and "authorization" in direct["headers"]
