"""Speculative decoding on vs off: the seed's call turn on a warm prompt, side by side in one run.

    .venv/bin/python bench/bench_fast_calls.py [--rounds 5] [--model M] [--temperature 0] [--threads N]

One engine, one process: the seed's ``getGithubUser`` request is answered once to warm the prompt, then
``--rounds`` times with speculation off and on in turn (``LlamaCppEngine.speculative`` is read per
request), so both see the same warm slot and the same machine minute. Each request's wall time is
measured; the table gives medians, the ratio off/on (>1: faster with speculation), the llama.cpp decode
steps each took and the drafted/kept token counts. A five-argument call is measured the same way
(``--case five``). Results also go to ``bench/.cache/fast-calls.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from seed_testing import FLIGHTS_MESSAGES, FLIGHTS_TOOL, SEED_MESSAGES, SEED_TOOL  # noqa: E402 - the tests' own copies

RESULTS = HERE / ".cache" / "fast-calls.json"
CASES: dict[str, dict[str, Any]] = {
    "seed": {"messages": SEED_MESSAGES, "tools": [SEED_TOOL]},
    "five": {"messages": FLIGHTS_MESSAGES, "tools": [FLIGHTS_TOOL]},
}


async def _timed(ai: Any, model: str, engine: Any, inputs: dict[str, Any], speculative: bool) -> dict[str, Any]:
    engine.speculative = speculative
    scheduler = engine._scheduler
    steps = scheduler.steps
    before = engine.stats()
    started = time.perf_counter()
    out = await ai.run(model, inputs)
    seconds = time.perf_counter() - started
    after = engine.stats()
    return {
        "seconds": seconds,
        "steps": scheduler.steps - steps,
        "tokens": out["usage"]["completion_tokens"],
        "calls": [(c["name"], c["arguments"]) for c in out.get("tool_calls") or []],
        "response": out.get("response"),
        **{key: after[key] - before[key] for key in after if key.startswith("spec_")},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="@local/qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    from toolrun import AsyncAI

    ai = AsyncAI(**({"n_threads": args.threads} if args.threads else {}))
    engine = await ai.engine(args.model)
    print(engine.describe())
    report: dict[str, Any] = {"model": args.model, "temperature": args.temperature, "cases": {}}
    for case in args.case or ["seed"]:
        inputs = {**CASES[case], "temperature": args.temperature}
        await _timed(ai, args.model, engine, inputs, True)  # warm: the prompt is in a slot from now on
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for speculative in (False, True) if round_ % 2 == 0 else (True, False):
                runs[speculative].append(await _timed(ai, args.model, engine, inputs, speculative))
        off, on = (statistics.median(r["seconds"] for r in runs[s]) for s in (False, True))
        same = all(a["calls"] == b["calls"] and a["response"] == b["response"] for a, b in zip(runs[False], runs[True]))
        row = {
            "off_s": off,
            "on_s": on,
            "ratio": off / on,
            "steps_off": statistics.median(r["steps"] for r in runs[False]),
            "steps_on": statistics.median(r["steps"] for r in runs[True]),
            "identical": same,
            "runs": {"off": runs[False], "on": runs[True]},
        }
        report["cases"][case] = row
        print(
            f"{case:5}  off {off:6.3f} s  on {on:6.3f} s  ratio {off / on:4.2f}x  "
            f"steps {row['steps_off']:.0f} -> {row['steps_on']:.0f}  identical answers: {same}  "
            f"(on: forced {runs[True][0]['spec_forced_accepted_tokens']}/{runs[True][0]['spec_forced_tokens']}, "
            f"lookup {runs[True][0]['spec_accepted_tokens']}/{runs[True][0]['spec_drafted_tokens']} kept)"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1, default=str))
    await ai.aclose()


if __name__ == "__main__":
    asyncio.run(main())
