"""GitHub's REST description -> tools: toolrun against ai-utils' createToolsFromOpenAPISpec, in one run.

    .venv/bin/python bench/bench_openapi.py [--rounds 3] [--reps 10]

The document is GitHub's full description (13 MB, 1,223 operations,
tests/tools/openapi/fixtures/api.github.com.json.gz). Rounds alternate node and
Python so that a busy machine slows both alike; each side warms up first and
the medians of all repetitions are compared.

- text in: both get the document as a string (a fresh one each time).
- bytes in: both get the UTF-8 bytes as read from a file or socket; ai-utils
  only takes a string, so its time includes ``buffer.toString("utf8")``.
  This is what toolrun does with a URL or a file path: it never makes a str.
- text in, ASCII: the same document with every non-ASCII character written as
  a ``\\u`` escape. GitHub's text has a few emoji, so CPython stores it at 4
  bytes a character and must re-encode 13 M characters to UTF-8 (about 10 ms)
  before any parser can read it; an ASCII str is read in place.

ai-utils resolves one level of ``$ref`` (a parameter's own reference, never
a schema's) and keeps only each parameter's ``type``; toolrun keeps every
parameter's schema with all references resolved, built lazily: the figure
"+ every schema" is the time to build all 1,223 tools' schemas afterwards.
Peak memory is tracemalloc's peak for one conversion (the input excluded).

- YAML in: the same document written as YAML (examples and webhooks left out,
  about 7 MB), converted by toolrun against only loading it with PyYAML's
  ``CSafeLoader`` (libyaml), turn about; toolrun's figure includes the
  conversion, so the ratio flatters PyYAML. ``--yaml-reps 0`` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolrun.tools.openapi import _document, create_tools_from_openapi_spec  # noqa: E402

NODE_DIR = ROOT / "bench" / "node"
SPEC = ROOT / "tests" / "tools" / "openapi" / "fixtures" / "api.github.com.json.gz"


def ensure_node() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    if not (NODE_DIR / "node_modules" / "@cloudflare" / "ai-utils").exists():
        print("installing @cloudflare/ai-utils@1.0.1 in bench/node ...", flush=True)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, stdout=subprocess.DEVNULL)
    return node


def run_node(node: str, spec_path: Path, warmup: int, reps: int) -> dict:
    out = subprocess.run(
        [node, "bench_openapi.mjs", "time", str(spec_path), str(warmup), str(reps)],
        cwd=NODE_DIR,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def python_times(raw: bytes, reps: int) -> tuple[list[float], list[float], int]:
    str_ms, bytes_ms = [], []
    tools = []
    for _ in range(reps):
        text = raw.decode()  # a fresh str each time: no UTF-8 copy cached in it
        started = time.perf_counter()
        tools = await create_tools_from_openapi_spec(text)
        str_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        tools = await create_tools_from_openapi_spec(raw)
        bytes_ms.append((time.perf_counter() - started) * 1e3)
    return str_ms, bytes_ms, len(tools)


async def every_schema(raw: bytes, reps: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(reps):
        tools = await create_tools_from_openapi_spec(raw)
        started = time.perf_counter()
        schemas = [t.parameters for t in tools]
        times.append((time.perf_counter() - started) * 1e3)
        text = json.dumps(schemas)
        assert '"$ref"' not in text
        size = len(text)
    return times, size


async def peak_memory(raw: bytes, materialize: bool) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    tools = await create_tools_from_openapi_spec(raw)
    if materialize:
        for t in tools:
            _ = t.parameters
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def github_yaml(raw: bytes) -> str:
    doc = json.loads(raw)
    del doc["x-webhooks"], doc["components"]["examples"]  # they make no tools
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False)


async def yaml_times(text: str, reps: int) -> tuple[list[float], list[float]]:
    """``(toolrun ms, PyYAML CSafeLoader ms)`` for the same YAML text, alternating."""
    toolrun_ms, pyyaml_ms = [], []
    for _ in range(reps):
        started = time.perf_counter()
        await create_tools_from_openapi_spec(text)
        toolrun_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        yaml.load(text, Loader=yaml.CSafeLoader)
        pyyaml_ms.append((time.perf_counter() - started) * 1e3)
    return toolrun_ms, pyyaml_ms


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions per side per round")
    parser.add_argument("--no-node", action="store_true", help="time toolrun only")
    parser.add_argument("--yaml-reps", type=int, default=3, help="YAML runs per side (0: skip YAML)")
    args = parser.parse_args()

    raw = gzip.decompress(SPEC.read_bytes())
    node = None if args.no_node else ensure_node()
    if not args.no_node and node is None:
        sys.exit("node and npm are needed for the side-by-side run (or pass --no-node)")

    py_str: list[float] = []
    py_bytes: list[float] = []
    py_ascii: list[float] = []
    js_str: list[float] = []
    js_bytes: list[float] = []
    js_ascii: list[float] = []
    node_info: dict = {}
    ascii_raw = json.dumps(json.loads(raw), indent=2).encode()  # ensure_ascii: \u escapes
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "api.github.com.json"
        spec_path.write_bytes(raw)
        ascii_path = Path(tmp) / "api.github.com.ascii.json"
        ascii_path.write_bytes(ascii_raw)
        asyncio.run(python_times(raw, 3))  # warm up: imports, caches
        for round_ in range(args.rounds):
            if node:
                node_info = run_node(node, spec_path, warmup=3, reps=args.reps)
                js_str += node_info["str_ms"]
                js_bytes += node_info["bytes_ms"]
                js_ascii += run_node(node, ascii_path, warmup=2, reps=max(3, args.reps // 2))["str_ms"]
            s, b, n_tools = asyncio.run(python_times(raw, args.reps))
            py_str += s
            py_bytes += b
            py_ascii += asyncio.run(python_times(ascii_raw, max(3, args.reps // 2)))[0]
            print(
                f"round {round_ + 1}/{args.rounds}: toolrun {med(s):.1f} / {med(b):.1f} ms"
                + (f", ai-utils {med(node_info['str_ms']):.1f} / {med(node_info['bytes_ms']):.1f} ms" if node else "")
                + "  (text / bytes in)",
                flush=True,
            )

    schema_ms, schema_chars = asyncio.run(every_schema(raw, 3))
    # The plain-JSON path, for a machine without msgspec.
    saved = _document.msgspec
    _document.msgspec = None
    try:
        plain_str, plain_bytes, _ = asyncio.run(python_times(raw, max(3, args.reps // 2)))
    finally:
        _document.msgspec = saved
    yaml_text = github_yaml(raw) if args.yaml_reps else ""
    yaml_toolrun, yaml_pyyaml = asyncio.run(yaml_times(yaml_text, args.yaml_reps)) if yaml_text else ([], [])
    peak = asyncio.run(peak_memory(raw, materialize=False))
    peak_all = asyncio.run(peak_memory(raw, materialize=True))

    print()
    print(f"GitHub REST description: {len(raw) / 1e6:.1f} MB, {n_tools} operations -> {n_tools} tools")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}" + (f", node {node_info.get('node')}" if node else "")
    )
    print(f"medians of {len(py_str)} runs each, rounds interleaved\n")
    rows = [
        ("text in", med(py_str), med(js_str) if node else None),
        ("bytes in", med(py_bytes), med(js_bytes) if node else None),
        ("text in, ASCII-escaped copy", med(py_ascii), med(js_ascii) if node else None),
    ]
    print(f"{'':28} {'toolrun':>10} {'ai-utils':>10} {'ratio':>7}")
    for label, py, js in rows:
        ratio = f"{py / js:.2f}x" if js else "-"
        js_text = f"{js:.1f} ms" if js else "-"
        print(f"{label:28} {py:7.1f} ms {js_text:>10} {ratio:>7}")
    print(f"{'+ every schema (all $refs)':28} {med(schema_ms):7.1f} ms   ({schema_chars / 1e6:.1f} MB of JSON Schema)")
    plain_js = med(js_str) if node else None
    print(
        f"{'text in, without msgspec':28} {med(plain_str):7.1f} ms"
        + (f" {plain_js:7.1f} ms {med(plain_str) / plain_js:6.2f}x" if plain_js else "")
    )
    print(
        f"{'bytes in, without msgspec':28} {med(plain_bytes):7.1f} ms"
        + (f" {med(js_bytes):7.1f} ms {med(plain_bytes) / med(js_bytes):6.2f}x" if node else "")
    )
    if yaml_toolrun:
        print(
            f"\nYAML in ({len(yaml_text) / 1e6:.1f} MB): toolrun {med(yaml_toolrun):.0f} ms, "
            f"PyYAML CSafeLoader load only {med(yaml_pyyaml):.0f} ms: "
            f"{med(yaml_toolrun) / med(yaml_pyyaml):.2f}x (medians of {len(yaml_toolrun)} each, turn about)"
        )
    print()
    print(
        f"peak memory (tracemalloc), one conversion: {peak / 2**20:.1f} MiB; "
        f"with every schema built: {peak_all / 2**20:.1f} MiB"
    )
    if node:
        print(f"node process max RSS (whole process, all its runs): {node_info['max_rss_bytes'] / 2**20:.0f} MiB")
    print(f"JSON path: {'msgspec ' + saved.__version__ if saved else 'json (msgspec not installed)'}")


if __name__ == "__main__":
    main()
