"""Helpers of the MCP tool tests: real servers (stdio children, Streamable HTTP on 127.0.0.1), process checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVERS = Path(__file__).with_name("mcp_test_servers.py")


def server_command(kind: str, *args: str) -> list[str]:
    """The argv of one of mcp_test_servers.py's servers over stdio."""
    return [sys.executable, str(SERVERS), kind, *args]


def children() -> set[int]:
    """Live child processes of this process, from /proc (zombies count: they were never reaped)."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == me:
            found.add(int(entry))
    return found


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited and been reaped (a zombie is not gone)."""
    return not os.path.exists(f"/proc/{pid}")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class HttpServer:
    """A server of mcp_test_servers.py over Streamable HTTP, as its own process."""

    def __init__(self, kind: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*server_command(kind, *args), "--http"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the port, once it listens
        if not line.strip().isdigit():
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the MCP test server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line)}/mcp"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        if self.process.stdout:
            self.process.stdout.close()


class CallLog:
    """The calls an MCP test server received (it appends one JSON line per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {"TOOLRUN_TEST_CALL_LOG": str(path)}

    def calls(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]


def scripted_ai(script: Any) -> tuple[Any, Any]:
    """An AsyncAI whose model ``SCRIPTED`` answers from ``script`` (replies, or a function of the request)."""
    from toolrun.ai import AsyncAI, Catalog, ModelEntry
    from toolrun.engines.scripted import ScriptedEngine

    ai = AsyncAI(catalog=Catalog())  # built-ins only: the user's config file must not leak into tests
    engine = ScriptedEngine(script)
    ai.register(ModelEntry(name=SCRIPTED, description="Scripted replies for tests."), engine)
    return ai, engine


SCRIPTED = "@test/mcp-scripted"
