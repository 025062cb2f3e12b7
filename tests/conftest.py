"""Shared fixtures: one real local model for the whole session (loading it once keeps the suite fast)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import platformdirs
import pytest
from _servers import GITHUB_USERS, HttpStandIn, send

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

    USERS = GITHUB_USERS

    def __init__(self) -> None:
        self._server = HttpStandIn(self._answer)
        self.requests = self._server.paths
        self.url = self._server.url

    def _answer(self, handler) -> None:
        parts = handler.path.strip("/").split("/")
        user = self.USERS.get(parts[1].lower()) if len(parts) == 2 and parts[0] == "users" else None
        send(handler, 200 if user else 404, json.dumps(user or {"message": "Not Found"}).encode())

    def get_user(self, username: str) -> dict:
        import httpx

        return httpx.get(f"{self.url}/users/{username}", headers={"User-Agent": "toolrun-tests"}).json()

    def close(self) -> None:
        self._server.close()


@pytest.fixture(scope="session")
def github_standin():
    server = GithubStandIn()
    yield server
    server.close()


# Each test's time, kept after the run (CI keeps its log only when it fails): the suite's budget is 30
# minutes on 2 cores, and this file says where the time goes. Timings are read, never asserted.
_TIMES: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _TIMES[report.nodeid] = _TIMES.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    option = session.config.option
    if len(_TIMES) < 100 or option.markexpr or option.keyword:  # a part run by hand: keep the whole run's
        return
    path = Path(platformdirs.user_cache_dir("toolrun")) / "test-times.json"
    slowest = dict(sorted(_TIMES.items(), key=lambda item: -item[1]))
    record = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_s": round(sum(_TIMES.values()), 1)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**record, "tests": {k: round(v, 2) for k, v in slowest.items()}}, indent=1))
    except OSError:
        pass
