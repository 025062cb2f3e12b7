"""The whole @readme/oas-examples corpus: every document converts, every tool is valid for every engine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from toolrun.tools.openapi import _document, _yaml, create_tools_from_openapi_spec

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
META = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)


class _SafeLoaderKeepingDates(yaml.CSafeLoader):
    """PyYAML's own answer for what toolrun's loader reads: safe_load, dates kept as strings."""


_SafeLoaderKeepingDates.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _summary(tools: list[Any]) -> list[tuple[str, str, str]]:
    return [(t.name, t.description, json.dumps(t.parameters, sort_keys=True)) for t in tools]


async def test_every_document_converts_to_valid_tools(corpus_files: list[Path]) -> None:
    total = 0
    for path in corpus_files:
        tools = await create_tools_from_openapi_spec(path)
        names = [t.name for t in tools]
        assert len(names) == len(set(names)), f"{path.name}: duplicate tool names"
        for tool in tools:
            assert NAME.match(tool.name), (path.name, tool.name)
            assert tool.description and len(tool.description) <= 1024
            params = tool.parameters
            errors = [e.message for e in META.iter_errors(params)]
            assert not errors, (path.name, tool.name, errors[:3])
            assert params["type"] == "object"
            assert not _refs(params), (path.name, tool.name, _refs(params)[:3])
            json.dumps(params)  # plain JSON, nothing YAML-specific left
        total += len(tools)
    assert total > 1000


async def test_json_and_yaml_forms_give_the_same_tools(corpus_dir: Path) -> None:
    pairs = 0
    for version in ("2.0", "3.0", "3.1"):
        for path in sorted((corpus_dir / version / "json").glob("*.json")):
            twin = corpus_dir / version / "yaml" / (path.stem + ".yaml")
            # A few twins really differ (a longer description, one more path): compare the rest.
            if not twin.exists() or json.loads(path.read_text()) != yaml.load(
                twin.read_text(), Loader=yaml.CSafeLoader
            ):
                continue
            from_json = await create_tools_from_openapi_spec(path.read_bytes())
            from_yaml = await create_tools_from_openapi_spec(twin.read_text())
            assert _summary(from_json) == _summary(from_yaml), path.name
            pairs += 1
    assert pairs >= 50


async def test_fast_json_path_and_plain_json_agree(corpus_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    if _document.msgspec is None:
        pytest.skip("msgspec is not installed: only the plain path exists")
    jsons = [p for p in corpus_files if p.suffix == ".json"]
    fast = [_summary(await create_tools_from_openapi_spec(p.read_bytes())) for p in jsons]
    monkeypatch.setattr(_document, "msgspec", None)
    plain = [_summary(await create_tools_from_openapi_spec(p.read_bytes())) for p in jsons]
    for path, a, b in zip(jsons, fast, plain, strict=True):
        assert a == b, path.name


def test_yaml_loader_matches_pyyaml_safe_load(corpus_files: list[Path]) -> None:
    for path in corpus_files:
        if path.suffix == ".yaml":
            data = path.read_bytes()
            assert _yaml.load(data) == yaml.load(data, Loader=_SafeLoaderKeepingDates), path.name


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 0x1f\nc: 017\nd: 1_000\ne: 1:30\nf: -.inf\ng: 1.5e+3\nh: ~\ni: yes\nj: Off\nk: 2024-01-01\n"
        "l: '3'\nm: !!str 3\nn: !!int '4'\no:\np: [a, {b: c}]\nq: \"yes\"\nr: 0b101\ns: +12\nt: .NaN\n",
        "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: &l [1, 2]\nref: *l\n",
        "m:\n  <<: [{a: 1}, {a: 2, b: 2}]\n  c: 3\n",
        "- 1\n- 2\n",
        "",
        "plain text",
    ],
)
def test_yaml_loader_edge_cases(text: str) -> None:
    expected = yaml.load(text, Loader=_SafeLoaderKeepingDates)
    got = _yaml.load(text)
    if isinstance(expected, dict) and "t" in expected:  # NaN != NaN
        assert got.pop("t") != got and expected.pop("t") != expected
    assert got == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: !!binary aGk=\n", "unsupported YAML tag"),
        ("? [a]\n: 1\n", "unhashable key"),
        ("a: 1\n---\nb: 2\n", "single document"),
        ("a: *nope\n", "undefined alias"),
    ],
)
def test_yaml_loader_refuses_what_json_cannot_hold(text: str, message: str) -> None:
    with pytest.raises(_yaml.YamlError, match=message):
        _yaml.load(text)


# ------------------------------------------------------------- what documents say


async def _tools(corpus_dir: Path, rel: str, **kw: Any) -> dict[str, Any]:
    return {t.name: t for t in await create_tools_from_openapi_spec(corpus_dir / rel, **kw)}


async def test_circular_schemas_are_cut(corpus_dir: Path) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "3.0/json/schema-circular.json")
    text = json.dumps([t.parameters for t in tools])
    assert "recursive, not expanded here" in text
    assert len(text) < 200_000


async def test_server_variables_take_their_defaults(corpus_dir: Path) -> None:
    spec = json.loads((corpus_dir / "3.0/json/server-variables.json").read_text())
    tools = await create_tools_from_openapi_spec(spec)
    server = spec["servers"][0]
    expected = server["url"]
    for name, var in server["variables"].items():
        expected = expected.replace("{" + name + "}", str(var["default"]))
    assert tools[0].function.op.server.base == str(httpx.URL(expected)).rstrip("/")  # :443 dropped


async def test_operation_and_path_level_servers(corpus_dir: Path) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "3.0/json/server-path-level.json")
    servers = {t.function.op.path: t.function.op.server for t in tools}
    assert servers["/operation-server-variables"].base == "https://operation.example.com/v3"
    assert servers["/path-item-ref-server"].base == "https://path-item-ref.example.com"  # via a path item $ref
    assert servers["/empty-operation-servers"].base == "https://empty-operation-path.example.com"
    assert servers["/empty-path-item-servers"].base == "https://demo.example.com/v2"  # empty list: the document's
    # Relative, and the document came from a file: nothing to resolve against (see test_openapi_load).
    assert servers["/relative-path-server"].base is None
    assert "pass base_url=" in servers["/relative-path-server"].error


async def test_swagger2_host_base_path_and_schemes(corpus_dir: Path) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "2.0/json/petstore.json")
    spec = json.loads((corpus_dir / "2.0/json/petstore.json").read_text())
    scheme = "https" if "https" in spec.get("schemes", ["https"]) else spec["schemes"][0]
    assert tools[0].function.op.server.base == f"{scheme}://{spec['host']}{spec.get('basePath', '')}".rstrip("/")


async def test_swagger2_body_and_form_parameters(corpus_dir: Path) -> None:
    tools = await _tools(corpus_dir, "2.0/json/petstore.json")
    add_pet = tools["addPet"].parameters
    assert "name" in add_pet["properties"]["body"]["properties"]
    upload = tools["uploadFile"].parameters["properties"]
    assert upload["formData"]["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "file to upload",
    }


async def test_callbacks_and_webhooks_are_not_tools(corpus_dir: Path) -> None:
    spec = json.loads((corpus_dir / "3.1/json/webhooks.json").read_text())
    tools = await create_tools_from_openapi_spec(spec)
    assert len(tools) == sum(
        1
        for item in spec.get("paths", {}).values()
        for m in item
        if m in ("get", "put", "post", "delete", "patch", "options", "head", "trace")
    )


async def test_parameters_keep_their_schema(corpus_dir: Path) -> None:
    tools = await _tools(corpus_dir, "3.0/json/petstore.json")
    status = tools["findPetsByStatus"].parameters["properties"]["query"]["properties"]["status"]
    assert status["type"] == "array"
    assert status["items"]["enum"] == ["available", "pending", "sold"]
    assert status["items"]["default"] == "available"
    assert "description" in status
    get_pet = tools["getPetById"].parameters
    assert get_pet["properties"]["path"] == {
        "type": "object",
        "required": ["petId"],
        "properties": {"petId": {"type": "integer", "format": "int64", "description": "ID of pet to return"}},
    }
    assert "required" not in get_pet


async def test_cookie_and_header_parameters(corpus_dir: Path) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "3.0/json/parameters-cookies.json")
    assert any("cookie" in t.parameters["properties"] for t in tools)


async def test_all_of_is_merged(corpus_dir: Path) -> None:
    # petstore-expanded: NewPet is allOf-free, Pet = allOf[NewPet, {id}] in responses only;
    # build one that a request uses.
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://x.test"}],
        "paths": {
            "/pets": {
                "post": {
                    "operationId": "addPet",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "NewPet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "tag": {"type": "string", "nullable": True}},
                },
                "Pet": {
                    "allOf": [
                        {"$ref": "#/components/schemas/NewPet"},
                        {
                            "type": "object",
                            "required": ["id"],
                            "properties": {
                                "id": {"type": "integer", "readOnly": True},
                                "age": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                            },
                        },
                    ]
                },
            }
        },
    }
    (tool,) = await create_tools_from_openapi_spec(spec)
    body = tool.parameters["properties"]["body"]
    assert body == {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "tag": {"type": ["string", "null"]},
            "age": {"type": "integer", "exclusiveMinimum": 0},
        },
    }  # readOnly id is not a request field


async def test_schemas_are_built_lazily(corpus_dir: Path) -> None:
    tools = await create_tools_from_openapi_spec(corpus_dir / "3.0/json/petstore.json")
    assert all(t._parameters is None for t in tools)
    _ = tools[0].parameters
    assert tools[0]._parameters is not None and tools[1]._parameters is None
