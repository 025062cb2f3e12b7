"""Shared fixtures: one real local model for the whole session (loading it once keeps the suite fast)."""

from __future__ import annotations

import pytest

from toolrun import AI, DEFAULT_MODEL, AsyncAI


@pytest.fixture(scope="session")
def async_ai():
    """A shared ``AsyncAI`` on the real embedded default model (fetched on first use)."""
    ai = AsyncAI()
    ai.weights(DEFAULT_MODEL)  # fetch (or find) the weights before any test times itself
    yield ai


@pytest.fixture(scope="session")
def ai(async_ai):
    """The sync face, sharing the already-loaded engines of ``async_ai``."""
    sync = AI(catalog=async_ai.catalog)
    sync.aio._engines = async_ai._engines
    yield sync


class GithubStandIn:
    """A loopback HTTP server that answers like api.github.com's ``GET /users/{username}``."""

    USERS = {
        "cloudflare": {
            "login": "cloudflare",
            "id": 314135,
            "type": "Organization",
            "name": "Cloudflare",
            "location": "San Francisco",
            "public_repos": 513,
            "followers": 9400,
            "blog": "https://www.cloudflare.com",
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

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        standin = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                standin.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                user = standin.USERS.get(parts[1].lower()) if len(parts) == 2 and parts[0] == "users" else None
                body = json.dumps(user or {"message": "Not Found"}).encode()
                self.send_response(200 if user else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def get_user(self, username: str) -> dict:
        import httpx

        return httpx.get(f"{self.url}/users/{username}", headers={"User-Agent": "toolrun-tests"}).json()

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="session")
def github_standin():
    server = GithubStandIn()
    yield server
    server.close()
