"""The first request of a new process: its TTFT with the tool list's prefix on disk vs cold (disk off).

    .venv/bin/python bench/bench_disk_prefix.py [--rounds 3]

(``one`` is the single measured process the comparison starts.)

Every measured request runs in a fresh process (what a `toolrun run` call or a restarted server is), greedy,
on the default model: first one process with the disk store on writes the prefix (system + tools), then
``--rounds`` pairs run in alternation, one with the store off (cold) and one with it on (restored from
disk). Two tool lists: the seed's one tool (~174 shared tokens) and fifteen tools (~1,550). The
table gives the median TTFT of each, their ratio (issue #29 asks for at most 0.3) and whether both
made the same calls. Results also go to ``bench/.cache/disk-prefix.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
RESULTS = HERE / ".cache" / "disk-prefix.json"


def tools_for(kind: str) -> tuple[list[dict[str, Any]], str]:
    from seed_testing import SEED_PROMPT, SEED_TOOL

    if kind == "seed":
        return [SEED_TOOL], SEED_PROMPT
    tools: list[dict[str, Any]] = []
    for area in ["weather", "calendar", "mail", "files", "github"]:
        for verb, what in [("search", "Search"), ("get", "Get one"), ("create", "Create")]:
            tools.append(
                {
                    "name": f"{verb}_{area}",
                    "description": f"{what} {area} item(s) in the user's {area} account; returns JSON.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "string", "description": f"What to look for in {area}."},
                            "limit": {"type": "integer", "description": "How many results at most."},
                        },
                        "required": ["query"],
                    },
                }
            )
    return tools, "Who is Cloudflare on github?"


async def one(args: argparse.Namespace) -> None:
    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun._types import normalize_messages, normalize_tools
    from toolrun.engines import GenerationRequest, SamplingParams
    from toolrun.engines.llamacpp import LlamaCppEngine
    from toolrun.formats import get_format

    tools, question = tools_for(args.tools)
    weights = AsyncAI().weights(DEFAULT_MODEL)
    started = time.perf_counter()
    engine = LlamaCppEngine(
        weights, get_format("hermes"), n_threads=2, prefix_disk_mb=args.disk_mb, prefix_disk_dir=args.dir
    )
    engine.load()
    loaded = time.perf_counter() - started
    request = GenerationRequest(
        normalize_messages([{"role": "user", "content": question}]),
        normalize_tools(tools),
        sampling=SamplingParams(max_tokens=64, temperature=0),
    )
    started = time.perf_counter()
    first = None
    events = []
    async for event in engine.generate(request):
        if first is None:
            first = time.perf_counter() - started
        events.append(event)
    total = time.perf_counter() - started
    scheduler = engine._scheduler
    stats = vars(scheduler.stats).copy()
    prefilled = scheduler.prefilled_tokens
    await engine.aclose()
    usage = [e for e in events if "usage" in e][-1]["usage"]
    calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
    print(
        json.dumps(
            {
                "tools": args.tools,
                "disk_mb": args.disk_mb,
                "load_s": loaded,
                "ttft_s": first,
                "turn_s": total,
                "prompt_tokens": usage["prompt_tokens"],
                "prefilled": prefilled,
                "disk_hits": stats["disk_hits"],
                "disk_restored_tokens": stats["disk_restored_tokens"],
                "disk_writes": stats["disk_writes"],
                "calls": [(c["name"], c["arguments"]) for c in calls],
            }
        )
    )


def run(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {}
    for kind in ["seed", "large"]:
        directory = Path(tempfile.mkdtemp(prefix=f"toolrun-bench-prefixes-{kind}-"))

        def once(disk_mb: int, directory: Path = directory, kind: str = kind) -> dict[str, Any]:
            out = subprocess.run(
                [sys.executable, __file__, "one", "--tools", kind, "--disk-mb", str(disk_mb), "--dir", str(directory)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return row

        populate = once(512)  # the first process ever: evaluates and writes the prefix
        rows = []
        for _ in range(args.rounds):
            rows.append((once(0), once(512)))  # cold (disk off), then restarted with the prefix on disk
        cold = statistics.median(r[0]["ttft_s"] for r in rows)
        warm = statistics.median(r[1]["ttft_s"] for r in rows)
        results[kind] = {"populate": populate, "rounds": rows, "cold_ttft_s": cold, "disk_ttft_s": warm}
        print(
            f"{kind}: prompt {rows[0][0]['prompt_tokens']} tokens, restored {rows[0][1]['disk_restored_tokens']};"
            f" first-request TTFT cold {cold * 1000:.0f} ms, from disk {warm * 1000:.0f} ms, ratio {warm / cold:.3f};"
            f" each round: {[round(r[1]['ttft_s'] / r[0]['ttft_s'], 3) for r in rows]};"
            f" same calls: {all(r[0]['calls'] == r[1]['calls'] for r in rows)}",
            flush=True,
        )
        shutil.rmtree(directory, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="run", choices=["one", "run"])
    parser.add_argument("--tools", default="seed")
    parser.add_argument("--disk-mb", type=int, default=512)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parsed = parser.parse_args()
    if parsed.mode == "one":
        asyncio.run(one(parsed))
    else:
        run(parsed)
