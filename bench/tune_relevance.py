"""Tune a local model's ``ask_relevance`` threshold on held-out BFCL cases (never on the cases the README reports).

    .venv/bin/python bench/tune_relevance.py [--model @local/qwen2.5-coder-1.5b-instruct] \\
        [--offset 40] [--limit 200] [--categories simple_python,multiple,parallel,irrelevance]

With ``ask_relevance`` the engine puts the turn's first call to the model as a yes/no question in a
conversation of its own (the worked answers, then the function and the request: ``relevance_messages``)
and keeps the call if the share of "yes" reaches the threshold. This script asks that question without
running the model's call: for every held-out case of a call category about the case's right tool (from
BFCL's answer), and for an irrelevance case about each of its tools, keeping the highest share (the
tool the model would reach for). A threshold ``t`` then keeps the right tools at ``t`` or more and
declines irrelevance cases whose every tool is under it. The sweep prints, per category, the share of
right tools kept (or of irrelevance cases declined) and the mean of the four, which picks the
threshold; per-case data goes to ``bench/.cache/relevance-<model>.json``.

One question costs about 0.5 s on the 1.5B on 2 cores (the worked answers' KV is reused), so the
default 720 cases take about 7 minutes. It reads the engine's internals, so it is a bench tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tune_thresholds import NO_CALL, print_sweep, relevance_yes  # noqa: E402 - the same question, the same table


async def collect(model: str, categories: list[str], offset: int, limit: int) -> list[dict[str, Any]]:
    from toolrun import AsyncAI
    from toolrun.eval import BfclData, to_tool

    data = BfclData.default()
    rows: list[dict[str, Any]] = []
    async with AsyncAI() as ai:
        engine = await ai.engine(model)
        for category in categories:
            started = time.perf_counter()
            cases = data.cases(category, offset=offset, limit=limit)
            for case in cases:
                tools = [to_tool(f) for f in case.functions]
                if category in NO_CALL:
                    names = [t["name"] for t in tools]
                else:
                    names = [next(iter(answer)) for answer in case.ground_truth or []][:1]
                shares = [
                    await asyncio.to_thread(relevance_yes, engine, {"name": n, "arguments": {}}, case.messages, tools)
                    for n in names
                ]
                if shares:
                    rows.append({"category": category, "id": case.id, "tools": names, "yes": round(max(shares), 4)})
            print(f"{category}: {len(cases)} cases in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def sweep(rows: list[dict[str, Any]], thresholds: list[float]) -> list[dict[str, Any]]:
    """Per category, the % of right tools kept (no-call categories: of cases declined), and their mean."""
    categories = list(dict.fromkeys(r["category"] for r in rows))
    table = []
    for t in thresholds:
        accuracy = {}
        for category in categories:
            shares = [r["yes"] for r in rows if r["category"] == category]
            right = sum((y < t) if category in NO_CALL else (y >= t) for y in shares)
            accuracy[category] = 100.0 * right / len(shares)
        table.append({"threshold": t, "accuracy": accuracy, "mean": sum(accuracy.values()) / len(accuracy)})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="@local/qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--categories", default="simple_python,multiple,parallel,irrelevance")
    parser.add_argument("--offset", type=int, default=40, help="held out: the README reports cases 0-39")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="sweep the saved per-case data again, ask nothing")
    args = parser.parse_args()
    if args.offset < 40:
        sys.exit("refusing to tune on cases 0-39: those are the ones reported")

    out = HERE / ".cache" / f"relevance-{args.model.split('/')[-1]}.json"
    if args.reuse:
        rows = json.loads(out.read_text())["rows"]
    else:
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        rows = asyncio.run(collect(args.model, categories, args.offset, args.limit))
    table = sweep(rows, [round(0.40 + 0.01 * i, 2) for i in range(36)])
    best = max(table, key=lambda row: (round(row["mean"], 6), -row["threshold"]))
    categories = list(best["accuracy"])
    counts = {c: sum(r["category"] == c for r in rows) for c in categories}
    print(f"\n{args.model}: held-out cases {args.offset}-, % of right tools kept / irrelevance declined")
    print_sweep(table, best, {c: f"{c[:11]:>11} ({counts[c]:>3})" for c in categories}, "mean")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "offset": args.offset, "rows": rows, "best": best}, indent=1))
    print(f"per-case data: {out}")


if __name__ == "__main__":
    main()
