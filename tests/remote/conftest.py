"""Fixtures of the remote-engine tests: loopback stubs started per test and stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from remote_testing import ThreadServer


@pytest.fixture
def serve() -> Iterator[Callable[..., ThreadServer]]:
    """``serve(app, port=0)`` → a running ThreadServer on 127.0.0.1, stopped after the test."""
    servers: list[ThreadServer] = []

    def start(app: Any, port: int = 0, **kwargs: Any) -> ThreadServer:
        server = ThreadServer(app, port, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
