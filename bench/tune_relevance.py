"""Tune a local model's ``ask_relevance`` thresholds on held-out BFCL cases (never on the cases the README reports).

    .venv/bin/python bench/tune_relevance.py [--model @local/qwen2.5-coder-1.5b-instruct] \\
        [--offset 40] [--limit 200] [--categories simple_python,multiple,parallel,irrelevance]

With ``ask_relevance`` the engine puts the turn's first call to the model as a yes/no question in a
conversation of its own (the worked answers, then the function and the request: ``relevance_messages``)
and keeps the call if the share of "yes" reaches a threshold: ``ask_relevance``, or the higher
``ask_relevance_unsaid`` when the user did not say every value the call gives a required parameter
(``required_values_said``). A call whose tool the user named, with every required value said, is kept
whatever the share (``named_and_said``). This script asks the question without running the engine's judgement:

* for every held-out case of a call category, about the case's right tool (from BFCL's answer), the
  call's values being BFCL's answer's (said if any of its accepted values is);
* for every irrelevance case, about the call the model itself writes there (the engine run greedy with
  the catalog's ``call_threshold`` and nothing else held back): a case where the model writes no call,
  or one that fails the word check (``check_relevance``), is declined whatever the thresholds.

A pair of thresholds then keeps the right tools that reach theirs (or are named and said) and declines
the irrelevance cases that do not. The sweep prints, per category, the share of right tools kept (or of
irrelevance cases declined) and the mean of the four, for each ``ask_relevance`` at the best
``ask_relevance_unsaid`` and the other way round; the best mean picks the pair (the middle of a plateau
of equal means). Then it prints how the catalog's own pair does on these cases, against its
``ask_relevance`` for every call: with other categories and a ``--tag``, a check on cases the catalog
was not tuned on (``--categories live_simple,live_multiple,live_irrelevance --limit 100 --tag=-live``).
Per-case data goes to ``bench/.cache/relevance-<model><tag>.json``.

One question costs about 0.5 s on the 1.5B on 2 cores (the worked answers' KV is reused), and an
irrelevance case's call about 3 s, so the default 720 cases take about 15 minutes. It reads the
engine's internals, so it is a bench tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tune_thresholds import NO_CALL, print_sweep, relevance_yes  # noqa: E402 - the same question, the same table


def answer_said(answer: dict[str, list[Any]], function: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
    """Whether the user said a value BFCL accepts for each of the function's required parameters."""
    from toolrun._grounding import conversation_text, is_grounded, schema_constants

    text = conversation_text(messages)
    allowed = schema_constants(function["parameters"])
    return all(
        any(is_grounded({name: value}, text, allowed=allowed) for value in answer.get(name, []) if value != "")
        for name in function["parameters"].get("required", [])
    )


async def collect(model: str, categories: list[str], offset: int, limit: int) -> list[dict[str, Any]]:
    from toolrun import AsyncAI
    from toolrun._grounding import conversation_text
    from toolrun.ai._inputs import build_request, parse_inputs
    from toolrun.engines.turn._judgment import first_call_fits, required_values_said
    from toolrun.eval import BfclData, to_tool

    data = BfclData.default()
    rows: list[dict[str, Any]] = []
    async with AsyncAI() as ai:
        # The model's own call, held back by nothing but the decision to call: the question is asked here.
        entry = ai.catalog.get(model)
        ai.catalog.add(replace(entry, policy=replace(entry.policy, check_relevance=False, ask_relevance=0.0)))
        engine = await ai.engine(model)
        for category in categories:
            started = time.perf_counter()
            cases = data.cases(category, offset=offset, limit=limit)
            for case in cases:
                tools = [to_tool(f) for f in case.functions]
                if category in NO_CALL:
                    out = await ai.run(model, {"messages": case.messages, "tools": tools, "temperature": 0})
                    request = build_request(
                        parse_inputs({"messages": case.messages, "tools": tools}), function_calling=True
                    )
                    call = out["tool_calls"][0] if out["tool_calls"] else None
                    if call is None or not first_call_fits(call, request):
                        rows.append({"category": category, "id": case.id, "tools": [], "yes": None, "said": None})
                        continue
                    said = required_values_said(call, request, conversation_text(request.messages))
                else:
                    answer = case.ground_truth[0]
                    call = {"name": next(iter(answer)), "arguments": {}}
                    function = next(f for f in case.functions if f["name"] == call["name"])
                    said = answer_said(answer[call["name"]], function, case.messages)
                yes = await asyncio.to_thread(relevance_yes, engine, call, case.messages, tools)
                rows.append(
                    {"category": category, "id": case.id, "tools": [call["name"]], "yes": round(yes, 4), "said": said}
                )
            print(f"{category}: {len(cases)} cases in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def with_named(rows: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
    """Marks each asked call whose tool the user named, every required value said (``named_and_said``: kept
    unasked), in fresh per-case data and in data saved before the rule alike (no model needed)."""
    from toolrun._grounding import names_tool
    from toolrun.eval import BfclData

    missing = [r for r in rows if r["yes"] is not None and "named" not in r]
    data = BfclData.default()
    for category in dict.fromkeys(r["category"] for r in missing):
        cases = {c.id: c for c in data.cases(category, offset=offset, limit=10_000)}
        for r in missing:
            if r["category"] == category:
                r["named"] = bool(r["said"]) and names_tool(r["tools"][0], cases[r["id"]].messages)
    return rows


def accuracy(rows: list[dict[str, Any]], threshold: float, unsaid: float) -> dict[str, Any]:
    """Per category, the % of right tools kept (no-call categories: of cases declined), and their mean."""

    def kept(r: dict[str, Any]) -> bool:
        if r["yes"] is None:
            return False
        return bool(r.get("named")) or r["yes"] >= (threshold if r["said"] else max(threshold, unsaid))

    by_category = {}
    for category in dict.fromkeys(r["category"] for r in rows):
        items = [r for r in rows if r["category"] == category]
        right = sum(not kept(r) if category in NO_CALL else kept(r) for r in items)
        by_category[category] = 100.0 * right / len(items)
    return {"accuracy": by_category, "mean": sum(by_category.values()) / len(by_category)}


def best_pair(rows: list[dict[str, Any]], grid: list[float]) -> tuple[float, float]:
    """The (ask_relevance, ask_relevance_unsaid) pair of the best mean, from the middle of its plateau."""
    means = {(t, u): round(accuracy(rows, t, u)["mean"], 6) for t in grid for u in grid if u >= t}
    top = max(means.values())
    tied = [pair for pair, mean in means.items() if mean == top]
    t = statistics.median_high(sorted({p[0] for p in tied}))
    u = statistics.median_high(sorted({p[1] for p in tied if p[0] == t}))
    return t, u


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="@local/qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--categories", default="simple_python,multiple,parallel,irrelevance")
    parser.add_argument("--offset", type=int, default=40, help="held out: the README reports cases 0-39")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="sweep the saved per-case data again, ask nothing")
    parser.add_argument("--tag", default="", help="a suffix for the per-case data file (to check, not tune)")
    args = parser.parse_args()
    if args.offset < 40:
        sys.exit("refusing to tune on cases 0-39: those are the ones reported")

    out = HERE / ".cache" / f"relevance-{args.model.split('/')[-1]}{args.tag}.json"
    if args.reuse:
        rows = with_named(json.loads(out.read_text())["rows"], args.offset)
    else:
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        rows = with_named(asyncio.run(collect(args.model, categories, args.offset, args.limit)), args.offset)
    grid = [round(0.40 + 0.01 * i, 2) for i in range(41)]
    threshold, unsaid = best_pair(rows, grid)
    categories = list(dict.fromkeys(r["category"] for r in rows))
    counts = {c: sum(r["category"] == c for r in rows) for c in categories}
    unsaid_counts = {c: sum(r["category"] == c and r["said"] is False for r in rows) for c in categories}
    headers = {c: f"{c[:11]:>11} ({counts[c]:>3})" for c in categories}
    print(f"\n{args.model}: held-out cases {args.offset}-, % of right tools kept / irrelevance declined")
    print("calls whose required values were not all said: " + ", ".join(f"{c} {unsaid_counts[c]}" for c in categories))
    named_counts = {c: sum(r["category"] == c and bool(r.get("named")) for r in rows) for c in categories}
    print("named, every required value said (kept unasked): " + ", ".join(f"{c} {named_counts[c]}" for c in categories))
    single = [{"threshold": t, **accuracy(rows, t, 0.0)} for t in grid]
    tables = (  # (title, rows, the threshold to mark)
        (
            f"ask_relevance, at ask_relevance_unsaid {unsaid:.2f}",
            [{"threshold": t, **accuracy(rows, t, unsaid)} for t in grid],
            threshold,
        ),
        (
            f"ask_relevance_unsaid, at ask_relevance {threshold:.2f}",
            [{"threshold": u, **accuracy(rows, threshold, u)} for u in grid if u >= threshold],
            unsaid,
        ),
        (
            "one threshold for every call",
            single,
            max(single, key=lambda r: (round(r["mean"], 6), -r["threshold"]))["threshold"],
        ),
    )
    for title, table, marked in tables:
        print(f"\n{title}:")
        print_sweep(table, next(row for row in table if row["threshold"] == marked), headers, "mean")
    from toolrun import Catalog

    entry = Catalog().get(args.model)
    shipped = accuracy(rows, entry.policy.ask_relevance, entry.policy.ask_relevance_unsaid)
    alone = accuracy(rows, entry.policy.ask_relevance, 0.0)
    for label, result in (
        (f"the catalog's {entry.policy.ask_relevance:.2f} / {entry.policy.ask_relevance_unsaid:.2f}", shipped),
        (f"{entry.policy.ask_relevance:.2f} for every call", alone),
    ):
        cells = ", ".join(f"{c} {v:.1f}" for c, v in result["accuracy"].items())
        print(f"{label}: {cells}; mean {result['mean']:.2f}")
    chosen = {"ask_relevance": threshold, "ask_relevance_unsaid": unsaid, **accuracy(rows, threshold, unsaid)}
    print(f"\nbest: {json.dumps(chosen)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "offset": args.offset, "rows": rows, "best": chosen}, indent=1))
    print(f"per-case data: {out}")


if __name__ == "__main__":
    main()
