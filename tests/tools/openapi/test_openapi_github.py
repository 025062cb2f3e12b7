"""GitHub's full REST description (1,223 operations): lazy, and every reference resolved.

How fast it converts (JSON and YAML) is measured side by side in bench/bench_openapi.py, not here.
"""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from toolrun.tools.openapi import create_tools_from_openapi_spec

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
META = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)


async def test_github_description_converts_lazily(github_spec: bytes) -> None:
    tools = await create_tools_from_openapi_spec(github_spec)
    assert len(tools) == 1223
    assert all(t._parameters is None for t in tools)  # no schema built until one is asked for
    names = [t.name for t in tools]
    assert len(set(names)) == len(names) and all(NAME.match(n) for n in names)
    assert names[0] == "meta_root"  # ai-utils would send "meta/root", which OpenAI-style engines reject


async def test_github_tools_have_real_schemas(github_spec: bytes) -> None:
    tools = {t.name: t for t in await create_tools_from_openapi_spec(github_spec)}
    user = tools["users_get-by-username"]
    assert user.function.op.server.base == "https://api.github.com"
    assert user.function.op.match_url == "https://api.github.com/users/{username}"
    assert user.parameters == {
        "type": "object",
        "properties": {
            "path": {
                "type": "object",
                "required": ["username"],
                "properties": {
                    "username": {"type": "string", "description": "The handle for the GitHub user account."}
                },
            }
        },
    }
    issues = tools["issues_list-for-repo"].parameters["properties"]
    state = issues["query"]["properties"]["state"]
    assert state["enum"] == ["open", "closed", "all"] and state["default"] == "open"
    assert issues["query"]["properties"]["per_page"]["type"] == "integer"
    assert set(issues["path"]["required"]) == {"owner", "repo"}
    create = tools["repos_create-for-authenticated-user"].parameters
    assert create["properties"]["body"]["required"] == ["name"]


async def test_every_github_schema_resolves(github_spec: bytes) -> None:
    tools = await create_tools_from_openapi_spec(github_spec)
    texts = [json.dumps(t.parameters) for t in tools]
    assert not [t.name for t, text in zip(tools, texts, strict=True) if '"$ref"' in text]
    # The meta-schema check is slow in pure Python: every 7th tool, plus the biggest ones.
    by_size = sorted(range(len(tools)), key=lambda i: len(texts[i]))
    for i in set(range(0, len(tools), 7)) | set(by_size[-10:]):
        errors = [e.message for e in META.iter_errors(tools[i].parameters)]
        assert not errors, (tools[i].name, errors[:3])


async def test_github_description_in_yaml(github_spec: bytes) -> None:
    doc = json.loads(github_spec)
    # Examples and webhooks make no tools; leaving them out halves the time PyYAML takes to write this.
    del doc["x-webhooks"], doc["components"]["examples"]
    text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False)  # 7 MB
    # bench/bench_openapi.py times this against PyYAML's CSafeLoader on the same text.
    from_yaml = await create_tools_from_openapi_spec(text)
    from_json = await create_tools_from_openapi_spec(github_spec)
    assert [(t.name, t.description) for t in from_yaml] == [(t.name, t.description) for t in from_json]
    for i in range(0, len(from_json), 50):
        assert from_yaml[i].parameters == from_json[i].parameters, from_json[i].name
