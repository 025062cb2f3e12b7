"""The seed's example at default sampling: how often does the model make the right call?

    .venv/bin/python bench/bench_seed_example.py [--runs 100] [--model M ...] [--temperature 0.6] [--threads N]

Workers AI's traditional function-calling example, verbatim: the ``getGithubUser`` tool and "Who is
Cloudflare on github?". Each model answers it ``--runs`` times in one process, at toolrun's default
sampling (temperature 0.6, no seed), one request after another, so each run also finds whatever the
previous one left in the KV cache. A run is right when it returns exactly one call, ``getGithubUser``
with ``username`` "cloudflare" (any case). The misses are sorted: a text answer, a drift left in the
text, another call. Results: a table on stdout and ``bench/.cache/seed-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from seed_testing import SEED_MESSAGES, SEED_TOOL  # noqa: E402 - the tests' own copy of the seed's example

RESULTS = HERE / ".cache" / "seed-results.json"
MODELS = ("@local/qwen2.5-coder-0.5b-instruct", "@local/qwen2.5-coder-1.5b-instruct")
DRIFT_MARKERS = ("<tool_call>", "<name>", "<function", '{"name"', "getGithubUser")


def verdict(out: dict[str, Any]) -> str:
    calls = out.get("tool_calls") or []
    if (
        len(calls) == 1
        and calls[0]["name"] == "getGithubUser"
        and str(calls[0]["arguments"].get("username", "")).lower() == "cloudflare"
    ):
        return "right call"
    if calls:
        return "other call(s)"
    if any(m in (out.get("response") or "") for m in DRIFT_MARKERS):
        return "drift left in text"
    return "text answer"


async def measure(model: str, runs: int, temperature: float, threads: int | None) -> dict[str, Any]:
    from toolrun import AsyncAI

    ai = AsyncAI(n_threads=threads)
    try:
        await ai.run(model, {"prompt": "Hi", "max_tokens": 1})  # load the model outside the timings
        kinds: Counter[str] = Counter()
        misses: list[dict[str, Any]] = []
        seconds: list[float] = []
        for i in range(runs):
            started = time.perf_counter()
            out: Any = await ai.run(
                model, {"messages": SEED_MESSAGES, "tools": [SEED_TOOL], "temperature": temperature}
            )
            seconds.append(time.perf_counter() - started)
            kind = verdict(out)
            kinds[kind] += 1
            if kind != "right call":
                misses.append(
                    {
                        "run": i,
                        "kind": kind,
                        "response": out.get("response"),
                        "tool_calls": [
                            {"name": c["name"], "arguments": c["arguments"]} for c in out.get("tool_calls") or []
                        ],
                    }
                )
            print(f"\r{model}: {i + 1}/{runs} runs, {kinds['right call']} right", end="", flush=True)
        print(flush=True)
    finally:
        await ai.aclose()
    return {
        "model": model,
        "runs": runs,
        "temperature": temperature,
        "right": kinds["right call"],
        "kinds": dict(kinds),
        "median_seconds": round(sorted(seconds)[len(seconds) // 2], 2),
        "misses": misses,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--model", action="append", help=f"catalog name (repeatable; default: {', '.join(MODELS)})")
    parser.add_argument("--temperature", type=float, default=0.6, help="default 0.6, toolrun's own default")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (fewer help on a busy machine)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    results = [await measure(m, args.runs, args.temperature, args.threads) for m in args.model or MODELS]
    print(f"\nThe seed's example, {args.runs} runs per model in one process, temperature {args.temperature:g}, no seed")
    print(f"{'model':<38} {'right':>9} {'text':>6} {'drift':>6} {'other':>6} {'s/run':>6}")
    for r in results:
        k = r["kinds"]
        print(
            f"{r['model']:<38} {r['right']:>4}/{r['runs']:<4} {k.get('text answer', 0):>6} "
            f"{k.get('drift left in text', 0):>6} {k.get('other call(s)', 0):>6} {r['median_seconds']:>6.2f}"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "temperature": args.temperature,
                "threads": args.threads,
                "load_average_at_end": list(os.getloadavg()),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"results: {output}")


if __name__ == "__main__":
    asyncio.run(main())
