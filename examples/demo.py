"""toolrun demo: Workers AI's function calling, both ways, on the embedded default model — offline.

1. Traditional: the model asks for a tool, we run it, we send the result back (the seed example,
   line for line, against a loopback stand-in for api.github.com since this machine has no internet).
2. Embedded: ``run_with_tools`` runs a Python function tool for us and returns the final answer.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time

import httpx

from toolrun import AI, DEFAULT_MODEL, AsyncAI

GITHUB_USERS = {
    "cloudflare": {"login": "cloudflare", "type": "Organization", "name": "Cloudflare", "location": "San Francisco",
                   "public_repos": 513, "followers": 9400, "blog": "https://www.cloudflare.com"},
}


def start_github_standin() -> str:
    """A loopback server answering like api.github.com's GET /users/{username}."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            user = GITHUB_USERS.get(self.path.rstrip("/").split("/")[-1].lower())
            body = json.dumps(user or {"message": "Not Found"}).encode()
            self.send_response(200 if user else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def traditional(ai: AI, github: str) -> None:
    print("── Traditional function calling ─────────────────────────────")
    messages = [{"role": "user", "content": "Who is Cloudflare on github?"}]
    github_tool = {
        "name": "getGithubUser",
        "description": "Provides publicly available information about someone with a GitHub account.",
        "parameters": {
            "type": "object",
            "properties": {"username": {"type": "string", "description": "The username of the Github user"}},
            "required": ["username"],
        },
    }
    started = time.perf_counter()
    response = ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [github_tool], "temperature": 0})
    print(f"user:      {messages[0]['content']}")
    if not response["tool_calls"]:
        print(f"assistant: {response['response']}")
        return
    selected_tool = response["tool_calls"][0]
    print(f"tool call: {selected_tool['name']}({json.dumps(selected_tool['arguments'])})")

    username = selected_tool["arguments"]["username"]
    github_data = httpx.get(f"{github}/users/{username}", headers={"User-Agent": "toolrun-demo"}).json()
    print(f"result:    {json.dumps(github_data)[:100]}…")
    messages += [
        {"role": "assistant", "content": "", "tool_call": selected_tool["name"]},
        {"role": "tool", "name": selected_tool["name"], "content": json.dumps(github_data)},
    ]
    final = ai.run(DEFAULT_MODEL, {"messages": messages, "tools": [github_tool], "temperature": 0})
    print(f"assistant: {final['response']}")
    print(f"           ({final['usage']['total_tokens']} tokens, {time.perf_counter() - started:.1f}s)\n")


async def embedded() -> None:
    try:
        from toolrun import run_with_tools, tool
    except (ImportError, AttributeError):
        print("(embedded function calling is not available in this build)")
        return
    print("── Embedded function calling (run_with_tools) ───────────────")

    @tool
    async def get_weather(city: str) -> dict:
        """Gets weather information of a particular city.

        Args:
            city: The city name.
        """
        print(f"tool ran:  get_weather(city={city!r})")
        return {"city": city, "temperature_c": 31, "conditions": "humid, light rain"}

    started = time.perf_counter()
    out = await run_with_tools(
        AsyncAI(), DEFAULT_MODEL,
        {"messages": [{"role": "user", "content": "What's the weather in Mumbai, India?"}], "tools": [get_weather],
         "temperature": 0},
        max_recursive_tool_runs=1,
    )
    print("user:      What's the weather in Mumbai, India?")
    print(f"assistant: {out['response']}")
    print(f"           ({time.perf_counter() - started:.1f}s)")


def main() -> None:
    github = start_github_standin()
    with AI() as ai:
        traditional(ai, github)
    asyncio.run(embedded())


if __name__ == "__main__":
    main()
