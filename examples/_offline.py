"""Offline stand-ins for the examples: a loopback "api.github.com" and the tool functions' data.

The seed's examples call api.github.com. This machine (and CI) has no internet, so the
examples talk to a small server on 127.0.0.1 that answers the same paths with the same
shapes — and, like GitHub, refuses requests without a User-Agent. ``github_client()``
is an httpx client that sends requests for api.github.com there, so URLs (and the seed's
``url.hostname === "api.github.com"`` matcher) stay as they are.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import httpx

USERS: dict[str, dict[str, Any]] = {
    "cloudflare": {
        "login": "cloudflare",
        "id": 314135,
        "type": "Organization",
        "name": "Cloudflare",
        "company": None,
        "blog": "https://www.cloudflare.com",
        "location": "San Francisco, CA",
        "public_repos": 513,
        "followers": 9400,
        "created_at": "2010-06-02T15:22:19Z",
    },
    "torvalds": {
        "login": "torvalds",
        "id": 1024025,
        "type": "User",
        "name": "Linus Torvalds",
        "location": "Portland, OR",
        "public_repos": 8,
        "followers": 250000,
    },
}
REPOS = {"cloudflare": [{"name": "workerd", "stargazers_count": 6800}, {"name": "quiche", "stargazers_count": 9800}]}

_server: http.server.ThreadingHTTPServer | None = None
requests_seen: list[tuple[str, str | None]] = []  # (path, User-Agent)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        agent = self.headers.get("User-Agent")
        requests_seen.append((self.path, agent))
        parts = self.path.split("?")[0].strip("/").split("/")
        status, body = 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        if not agent:
            status, body = (
                403,
                {
                    "message": "Request forbidden by administrative rules. "
                    "Please make sure your request has a User-Agent header"
                },
            )
        elif len(parts) == 2 and parts[0] in ("users", "orgs") and parts[1].lower() in USERS:
            status, body = 200, USERS[parts[1].lower()]
        elif len(parts) == 3 and parts[0] == "users" and parts[2] == "repos":
            status, body = 200, REPOS.get(parts[1].lower(), [])
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def github_standin() -> str:
    """Start the loopback GitHub (once) and return its base URL."""
    global _server
    if _server is None:
        _server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=_server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{_server.server_address[1]}"


class _ToStandin(httpx.AsyncBaseTransport):
    """Sends https://api.github.com/... to the loopback stand-in, leaving the request's URL as it was."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._base = httpx.URL(github_standin())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.github.com":
            request.url = request.url.copy_with(scheme="http", host=self._base.host, port=self._base.port)
        return await self._inner.handle_async_request(request)


def github_client() -> httpx.AsyncClient:
    """An httpx client whose api.github.com is the loopback stand-in (sync and async examples alike)."""
    return httpx.AsyncClient(transport=_ToStandin())


def fetch_json(url: str, headers: dict[str, str]) -> Any:
    """``fetch(url, {headers}).then(res => res.json())`` against the stand-in."""
    standin = httpx.URL(github_standin())
    target = httpx.URL(url)
    if target.host == "api.github.com":
        target = target.copy_with(scheme="http", host=standin.host, port=standin.port)
    return httpx.get(target, headers=headers).json()
