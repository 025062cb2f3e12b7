"""Reading a document: URL, file, text, mapping; JSON or YAML; and the errors for everything else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from toolrun._errors import InvalidInputError, OpenAPISpecError
from toolrun.tools.openapi import _document, create_tools_from_openapi_spec

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Users", "version": "1"},
    "servers": [{"url": "/api"}],
    "paths": {
        "/users/{username}": {
            "get": {
                "operationId": "getUser",
                "summary": "Get a user",
                "parameters": [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}],
            }
        }
    },
}


async def test_from_url_resolves_relative_servers_against_it(api) -> None:
    url = api.serve_spec("spec.json", json.dumps(SPEC))
    (tool,) = await create_tools_from_openapi_spec(url)
    assert tool.name == "getUser"
    assert tool.function.op.server.base == f"{api.url}/api"


async def test_from_url_follows_redirects_and_uses_the_final_url(api) -> None:
    api.serve_spec("spec.yaml", yaml.safe_dump(SPEC), "application/yaml")
    (tool,) = await create_tools_from_openapi_spec(f"{api.url}/redirect?to=/spec.yaml")
    assert tool.function.op.server.base == f"{api.url}/api"


async def test_from_url_errors(api) -> None:
    with pytest.raises(OpenAPISpecError, match="answered HTTP 404"):
        await create_tools_from_openapi_spec(f"{api.url}/status/404")
    with pytest.raises(OpenAPISpecError, match=r"timed out after 0\.2s"):
        await create_tools_from_openapi_spec(f"{api.url}/slow?s=1", timeout=0.2)
    with pytest.raises(OpenAPISpecError, match="more than the 1000-byte limit"):
        await create_tools_from_openapi_spec(f"{api.url}/big?n=5000", max_spec_bytes=1000)
    with pytest.raises(OpenAPISpecError, match="failed"):
        await create_tools_from_openapi_spec("http://127.0.0.1:9/openapi.json")  # discard port: refused


async def test_from_url_with_a_given_client(api) -> None:
    url = api.serve_spec("spec.json", json.dumps(SPEC))
    async with httpx.AsyncClient(headers={"X-From": "my-client"}) as client:
        await create_tools_from_openapi_spec(url, client=client)
    assert api.requests[-1]["headers"]["x-from"] == "my-client"


async def test_from_file_text_bytes_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    spec = dict(SPEC, servers=[{"url": "https://api.example.com"}])
    variants = [
        path,
        str(path),
        json.dumps(spec),
        json.dumps(spec).encode(),
        yaml.safe_dump(spec),
        spec,
        "\ufeff" + json.dumps(spec),
    ]
    for variant in variants:
        (tool,) = await create_tools_from_openapi_spec(variant)
        assert tool.name == "getUser", type(variant)


async def test_json_with_an_odd_shape_still_converts() -> None:
    # Not the typed fast path's shape (operationId a number, parameters an object): the generic path.
    spec = {
        **SPEC,
        "servers": [{"url": "https://x.test"}],
        "paths": {"/a": {"get": {"operationId": 12, "parameters": {"not": "a list"}}}},
    }
    (tool,) = await create_tools_from_openapi_spec(json.dumps(spec))
    assert tool.name == "12"
    assert tool.parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("/no/such/file.json", r"not an http\(s\) URL, an existing file or an OpenAPI document"),
        ('{"openapi": "3.0.0", "paths": {', "not valid JSON"),
        ("openapi: 3.0.0\npaths: [unclosed\n", "neither JSON nor valid YAML"),
        ("[1, 2, 3]", "it is a list, not an object"),
        ("just: a mapping\nand: more\n", "neither an 'openapi' nor a 'swagger' field"),
        ('{"openapi": "4.0.0", "paths": {}}', "version '4.0.0' is not supported"),
        ('{"swagger": "1.2", "paths": {}}', "Swagger version '1.2' is not supported"),
        ('{"openapi": "3.0.0", "paths": []}', "'paths' must be an object"),
        ('{"openapi": "3.0.0", "paths": {"/a": 5}}', "a path item must be an object"),
        ('{"openapi": "3.0.0", "paths": {"/a": {"get": "x"}}}', "an operation must be an object"),
        ('{"openapi": "3.0.0", "paths": {"/a": {"$ref": "#/nowhere"}}}', "points at nothing"),
        (b"\xff\xfe{not utf8", "neither JSON nor valid YAML"),
        (b'{"openapi": "3.0.0", "paths": {"/a": {"get": {"summary": "\xff"}}}}', "not UTF-8 text"),
        (42, "not int"),
    ],
)
async def test_documents_that_are_not_specs(spec: object, message: str) -> None:
    with pytest.raises(OpenAPISpecError, match=message):
        await create_tools_from_openapi_spec(spec)


async def test_broken_bytes_in_a_lazily_read_part_are_reported_when_read() -> None:
    spec = (
        b'{"openapi": "3.0.0", "servers": [{"url": "https://x.test"}], "paths": {"/a": {"post": {'
        b'"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},'
        b'"components": {"schemas": {"A": {"type": "string", "description": "\xff"}}}}'
    )
    if _document.msgspec is None:  # the plain path decodes everything at once
        with pytest.raises(OpenAPISpecError, match="not UTF-8 text"):
            await create_tools_from_openapi_spec(spec)
        return
    (tool,) = await create_tools_from_openapi_spec(spec)
    with pytest.raises(OpenAPISpecError, match="broken at #/components/schemas/A"):
        _ = tool.parameters


async def test_errors_say_where() -> None:
    with pytest.raises(OpenAPISpecError) as info:
        await create_tools_from_openapi_spec('{"openapi": "3.0.0", "paths": {"/pets": {"get": []}}}')
    assert info.value.where == "paths['/pets'].get"
    with pytest.raises(OpenAPISpecError) as info:
        await create_tools_from_openapi_spec('{"openapi": "3.0.0",\n "paths": {\n "/pets": {\n}')
    assert "line 4" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, where",
    [
        ({"match_patterns": ["("]}, "match_patterns[0]"),
        ({"match_patterns": [5]}, "match_patterns[0]"),
        ({"overrides": [{"matcher": "x", "values": {}}]}, "overrides[0].matcher"),
        ({"overrides": [{"matcher": lambda u, m: True, "values": {"header": {}}}]}, "overrides[0].values"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "ftp://example.com"}, "base_url"),
    ],
)
async def test_bad_options(kwargs: dict, where: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await create_tools_from_openapi_spec(SPEC, **kwargs)
    assert info.value.where == where


async def test_match_patterns_select_operations(corpus_dir: Path) -> None:
    spec = corpus_dir / "3.0/json/petstore.json"
    everything = await create_tools_from_openapi_spec(spec)
    pets = await create_tools_from_openapi_spec(spec, match_patterns=[r"/pet/\{petId\}$"])
    assert 0 < len(pets) < len(everything)
    assert all(t.function.op.path == "/pet/{petId}" for t in pets)
    compiled = await create_tools_from_openapi_spec(
        spec, match_patterns=[re.compile(r"^http://petstore\.swagger\.io/v2/store/")]
    )
    assert {t.function.op.path for t in compiled} >= {"/store/inventory", "/store/order"}


async def test_names_are_valid_unique_and_deterministic() -> None:
    spec = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://x.test"}],
        "paths": {
            "/": {"get": {"operationId": "meta/root"}},
            "/a": {"get": {"operationId": "meta_root"}, "post": {}},  # exact valid id keeps its name
            "/b/{id}": {"get": {}, "delete": {"operationId": "x" * 100}},
            "/c": {"get": {"operationId": "has space & symbols!"}, "put": {"operationId": "has_space_symbols"}},
            "/d": {"get": {"operationId": "x" * 100}},
        },
    }
    first = [t.name for t in await create_tools_from_openapi_spec(spec)]
    again = [t.name for t in await create_tools_from_openapi_spec(spec)]
    assert first == again
    assert first == [
        "meta_root_2",
        "meta_root",
        "post_a",
        "get_b_id",
        "x" * 64,
        "has_space_symbols_2",
        "has_space_symbols",
        "x" * 62 + "_2",
    ]
