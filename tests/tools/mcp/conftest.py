"""Fixtures of the MCP tool tests.

Every test is checked for child processes left behind: a stdio server that
outlives its ``async with`` is a failure, whatever the test itself asserted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _servers import started_for_the_test
from mcp_testing import CallLog, HttpServer, children, wait_until


@pytest.fixture(autouse=True)
def no_child_left_behind() -> Iterator[None]:
    before = children()
    yield
    # A stopped server is reaped before `async with` returns; the short wait only covers
    # /proc catching up with a reap that already happened.
    assert wait_until(lambda: not (children() - before), 5.0), f"child processes left: {children() - before}"


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpServer]]:
    """``http_server(kind, *args, env=...)`` -> a running HttpServer, killed after the test."""
    yield from started_for_the_test(HttpServer, HttpServer.kill)


@pytest.fixture
def call_log(tmp_path: Path) -> CallLog:
    return CallLog(tmp_path / "calls.jsonl")
