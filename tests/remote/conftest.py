"""Fixtures of the remote-engine tests: loopback stubs started per test and stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from _servers import started_for_the_test
from remote_testing import ThreadServer


@pytest.fixture
def serve() -> Iterator[Callable[..., ThreadServer]]:
    """``serve(app, port=0)`` → a running ThreadServer on 127.0.0.1, stopped after the test."""
    yield from started_for_the_test(ThreadServer, ThreadServer.stop)
