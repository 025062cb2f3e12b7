"""Helpers of the remote-engine tests: real upstreams on 127.0.0.1 — llama-cpp-python's server as a subprocess
(llama.cpp's ``llama-server`` is in ``_servers``, for tests/vllm too), toolrun's own server and small starlette
stubs on uvicorn threads."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from _servers import ServerProcess, UvicornThread

SECRET = "sk-remote-test-5c1b9e0f7d2a4e6b"


class LlamaCppPythonServer(ServerProcess):
    """``python -m llama_cpp.server`` serving one GGUF on 127.0.0.1, as a subprocess of the tests."""

    name = "llama_cpp.server"
    health_path = "/v1/models"

    def __init__(
        self, model_path: str, port: int | None = None, *, n_ctx: int = 4096, threads: int | None = None
    ) -> None:
        super().__init__(port)
        self.model_path = model_path
        self.threads = threads or min(2, os.cpu_count() or 1)
        self.n_ctx = n_ctx

    def command(self) -> Sequence[str]:
        threads = str(self.threads)
        return [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", threads,
                "--n_threads_batch", threads,
                # Its default cuts a running stream short whenever another request arrives: queue them.
                "--interrupt_requests", "False"]  # fmt: skip


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
