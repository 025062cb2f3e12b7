"""End to end on the real local model: the seed's embedded example, with its tool made from an OpenAPI document.

The tool is ``GET /users/{username}`` of a small GitHub-like description; its
server is a loopback stand-in for api.github.com (``base_url=``), so the test
checks what the API really received and what the model made of the answer.
"""

from __future__ import annotations

import pytest

from toolrun import DEFAULT_MODEL, AsyncAI, run_with_tools
from toolrun.tools.openapi import create_tools_from_openapi_spec

pytestmark = pytest.mark.model

GITHUB_LIKE = """
openapi: 3.0.3
info: {title: GitHub users, version: "1.0"}
servers:
  - url: https://api.github.com
paths:
  /users/{username}:
    get:
      operationId: getGithubUser
      summary: Provides publicly available information about someone with a GitHub account.
      parameters:
        - name: username
          in: path
          required: true
          description: The username of the Github user
          schema: {type: string}
      responses:
        "200":
          description: The user
          content:
            application/json:
              schema: {$ref: "#/components/schemas/user"}
components:
  schemas:
    user:
      type: object
      properties:
        login: {type: string}
        name: {type: string}
        location: {type: string}
"""


async def test_seed_embedded_example_from_an_openapi_document(async_ai: AsyncAI, api) -> None:
    # ``async_ai`` is the session's AsyncAI() on DEFAULT_MODEL (tests/conftest.py): one model load for all.
    tools = await create_tools_from_openapi_spec(
        GITHUB_LIKE,
        base_url=api.url,
        overrides=[
            {
                "matcher": lambda url, method: url.host == "127.0.0.1",
                "values": {"headers": {"User-Agent": "toolrun-tests"}},
            }
        ],
    )
    assert [t.name for t in tools] == ["getGithubUser"]

    out = await run_with_tools(
        async_ai,
        DEFAULT_MODEL,
        {
            "messages": [{"role": "user", "content": "Who is Cloudflare on github?"}],
            "tools": tools,
            "temperature": 0,
        },
    )

    calls = [r for r in api.requests if r["raw_path"].startswith("/users/")]
    assert calls, out
    assert calls[0]["method"] == "GET"
    assert calls[0]["raw_path"].lower() == "/users/cloudflare"
    assert calls[0]["headers"]["user-agent"] == "toolrun-tests"
    # The answer uses what the stand-in said, not only the question's words.
    facts = ("organization", "san francisco", "513", "9400", "9,400", "cloudflare.com")
    assert any(f in out["response"].lower() for f in facts), out["response"]
