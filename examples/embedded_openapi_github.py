"""The seed's embedded example: tools made from GitHub's OpenAPI description, with the seed's override
matcher verbatim, run by ``run_with_tools`` — plus ``auto_trim_tools`` for the five tools.

The seed loads a partial GitHub description from a gist; here it is ``data/partial_api.github.com.json``
(five operations cut from GitHub's own description), and api.github.com is a loopback stand-in.

    .venv/bin/python examples/embedded_openapi_github.py
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from _offline import github_client

from toolrun import DEFAULT_MODEL, AsyncAI, auto_trim_tools, create_tools_from_openapi_spec, run_with_tools

SPEC = Path(__file__).parent / "data" / "partial_api.github.com.json"


async def main(ai: AsyncAI, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    response = await run_with_tools(
        ai,
        model,
        {
            "messages": [{"role": "user", "content": "Who is Cloudflare on github?"}],
            "tools": [
                # You can pass the OpenAPI spec link or contents directly
                *await create_tools_from_openapi_spec(
                    SPEC,
                    overrides=[
                        {
                            # for all requests on *.github.com, we'll need to add a User-Agent and Authorization.
                            "matcher": lambda url, method: url.hostname == "api.github.com",
                            "values": {
                                "headers": {
                                    "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
                                    "AppleWebKit/537.36 (KHTML, like Gecko) "
                                    "Chrome/112.0.0.0 Safari/537.36"
                                },
                            },
                        }
                    ],
                    client=github_client(),
                ),
            ],
        },
        trim_function=auto_trim_tools,
    )
    return response  # type: ignore[return-value]


if __name__ == "__main__":

    async def _run() -> None:
        async with AsyncAI() as ai:
            out = await main(ai)
        print(json.dumps({k: out[k] for k in ("response", "total_usage")}, indent=2))

    asyncio.run(_run())
