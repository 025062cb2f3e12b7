"""The seed's traditional example, line for line: the model asks for getGithubUser, we call GitHub, we send
the result back as a ``role: "tool"`` message, and the model answers.

Cloudflare's original runs ``@hf/nousresearch/hermes-2-pro-mistral-7b`` on Workers AI; here the model is
toolrun's embedded default (pass another with ``--model``, or ``AI(provider="workers-ai")`` for the real
Workers AI), and api.github.com is a loopback stand-in, so it runs offline.

    .venv/bin/python examples/traditional_github.py
"""

from __future__ import annotations

import json
import sys
from typing import Any

from _offline import fetch_json

from toolrun import AI, DEFAULT_MODEL

TOOLS = [
    {
        "name": "getGithubUser",
        "description": "Provides publicly available information about someone with a GitHub account.",
        "parameters": {
            "type": "object",
            "properties": {
                "username": {
                    "type": "string",
                    "description": "The handle for the GitHub user account.",
                },
            },
            "required": ["username"],
        },
    },
]


def main(ai: AI, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    response = ai.run(
        model,
        {
            "messages": [{"role": "user", "content": "Who is Cloudflare on github?"}],
            "tools": TOOLS,
        },
    )

    selected_tool = response["tool_calls"][0]
    res = None

    if selected_tool["name"] == "getGithubUser":
        try:
            username = selected_tool["arguments"]["username"]
            url = f"https://api.github.com/users/{username}"
            res = fetch_json(
                url,
                headers={  # Github API requires a User-Agent header
                    "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                    "(KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36",
                },
            )
        except Exception as error:  # noqa: BLE001 - the seed returns the error itself
            return {"error": str(error)}

    final_response = ai.run(
        model,
        {
            "messages": [
                {"role": "user", "content": "Who is Cloudflare on github?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_call": selected_tool["name"],
                },
                {
                    "role": "tool",
                    "name": selected_tool["name"],
                    "content": json.dumps(res),
                },
            ],
            "tools": TOOLS,
        },
    )
    return {"tool_call": selected_tool, "github": res, "final": final_response}


if __name__ == "__main__":
    with AI() as binding:
        out = main(binding, sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else DEFAULT_MODEL)
    print(json.dumps(out["final"], indent=2))
