"""Run every benchmark in this folder, one after another (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    "bench_core.py",
    "bench_seed_example.py",
    "bench_fast_calls.py",
    "bench_bfcl.py",
    "bench_embedded.py",
    "bench_openapi.py",
    "bench_mcp.py",
    "bench_server.py",
    "bench_slots.py",
    "bench_disk_prefix.py",  # a known tool list restored from disk by a new process
    "bench_remote.py",
    "bench_vllm.py",  # a real vLLM on the CPU (scripts/vllm.sh builds it once): BFCL through it, throughput
]

failed = []
for name in ORDER:
    script = HERE / name
    if not script.exists():
        continue
    print(f"\n=== {name} ===", flush=True)
    if subprocess.call([sys.executable, str(script)]) != 0:
        failed.append(name)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
