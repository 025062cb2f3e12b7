"""Real HTTP for the server tests: uvicorn on 127.0.0.1, an OS-chosen port, a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _servers import started_for_the_test
from server_testing import API_KEY, LiveServer, scripted_ai

from toolrun.ai import AsyncAI
from toolrun.server import create_app


@pytest.fixture
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """``start_server(ai, **create_app_options)`` → a running LiveServer, stopped after the test."""

    def start(ai: AsyncAI, **options: Any) -> LiveServer:
        return LiveServer(create_app(ai, **options))

    yield from started_for_the_test(start, LiveServer.stop)


@pytest.fixture
def scripted_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    ai, _ = scripted_ai()
    return start_server(ai, api_keys=[API_KEY])
