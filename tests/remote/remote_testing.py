"""Helpers of the remote-engine tests: real upstreams on 127.0.0.1 — llama-cpp-python's server as a
subprocess, toolrun's own server and small starlette stubs on uvicorn threads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from _servers import UvicornThread

SECRET = "sk-remote-test-5c1b9e0f7d2a4e6b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaCppPythonServer:
    """``python -m llama_cpp.server`` serving one GGUF on 127.0.0.1, as a subprocess of the tests."""

    def __init__(
        self, model_path: str, port: int | None = None, *, n_ctx: int = 4096, threads: int | None = None
    ) -> None:
        self.model_path = model_path
        self.threads = threads or min(2, os.cpu_count() or 1)
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llama-cpp-server-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, timeout: float = 180.0) -> LlamaCppPythonServer:
        threads = str(self.threads)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                self.model_path,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                str(self.n_ctx),
                "--n_threads",
                threads,
                "--n_threads_batch",
                threads,
                # Its default cuts a running stream short whenever another request arrives: queue them.
                "--interrupt_requests",
                "False",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no graceful shutdown, connections cut."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            return f.read()[-chars:]


class ThreadServer(UvicornThread):
    """An ASGI app under uvicorn on 127.0.0.1; stopping cuts open connections (an upstream going away)."""

    force_exit = True


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def served_entry(
    name: str,
    url: str,
    *,
    tool_parsing: str,
    gguf: str | None = None,
    upstream: str = "llama-cpp-python",
    judged: bool = False,
    read_timeout: float | None = None,
) -> Any:
    """A catalog entry for the default GGUF served at ``url`` (``gguf``: the chat template, in toolrun mode);
    ``judged``: with the local default model's judgement settings, so that the two differ only in where
    the model runs."""
    from toolrun import DEFAULT_MODEL
    from toolrun.ai import Catalog, ModelEntry, RemoteEndpoint
    from toolrun.engines.turn import CallPolicy

    policy = Catalog().get(DEFAULT_MODEL).policy if judged else CallPolicy()
    endpoint = RemoteEndpoint(
        (url + "/v1",),
        "default",
        upstream=upstream,
        tool_parsing=tool_parsing,
        chat_template=gguf,
        read_timeout=read_timeout,
    )
    return ModelEntry(name=name, description=f"{tool_parsing} mode through {upstream}", remote=endpoint, policy=policy)
