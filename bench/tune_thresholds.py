"""Tune a local model's ``call_threshold`` on held-out BFCL cases (never on the cases the README reports).

    .venv/bin/python bench/tune_thresholds.py --model @local/qwen2.5-coder-0.5b-instruct \\
        [--offset 40] [--limit 40] [--categories simple_python,multiple,parallel,irrelevance,live_irrelevance] \\
        [--another-call-threshold X] [--threads 1]

With ``tool_choice: "auto"`` the local engine calls a tool when the model's probability of opening a
call at its first token reaches the threshold, and answers in text otherwise. For every held-out case
this script reads that probability (from the same prompt the engine renders, on the same context) and
the verdict of the call the model writes when it does call (the engine run with the threshold at
~0; in the no-call categories any call is wrong, so only the probability is read). A threshold
``t`` then gives, per case, that verdict where the probability is ≥ ``t``, and "no
call" below it — right for the irrelevance categories, wrong elsewhere. (A model that answers in
text may still open a call later in its answer; that rare case is not simulated, which is why the
chosen value is then confirmed by ``toolrun eval bfcl`` on the held-out cases.) The sweep is printed
per category, with the macro average that picks the threshold; the raw per-case data goes to
``bench/.cache/tune-<model>.json``.

It reads the engine's internals (``engines/llamacpp``), so it is a bench tool, not part of toolrun.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

HELD_OUT = "irrelevance,parallel,simple_python,multiple,live_irrelevance"
NO_CALL = {"irrelevance", "live_irrelevance"}


def opening_probability(engine: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> float:
    """The engine's own decision input: the probability mass on call openers at the first generated token.

    Read between requests (the engine's worker is idle then): the prompt's prefix is still in the KV
    cache from the run just before, so this costs one token's evaluation.
    """
    import llama_cpp
    import numpy as np

    from toolrun.ai._inputs import build_request, parse_inputs
    from toolrun.engines.turn._decide import probability_mass

    request = build_request(
        parse_inputs({"messages": messages, "tools": tools, "temperature": 0}), function_calling=True
    )
    llm = engine.load()
    if hasattr(engine, "next_token_logits"):  # the slots engine reads them on its own worker
        logits = engine.next_token_logits(request)
    else:
        tokens = engine.prompt_tokens(request)
        engine._prefill(llm, tokens)
        # The logits as the engine's sampler reads them (llm.scores is not filled for the last token here).
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
    return probability_mass(logits, engine._decisions(llm).openers)


def relevance_yes(
    engine: Any, call: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> float:
    """The model's "yes" share when asked afresh whether the first call's tool was made for the request
    (``ask_relevance``); 1.0 when there is nothing to ask."""
    from toolrun.ai._inputs import build_request, parse_inputs
    from toolrun.engines.turn._decide import yes_share
    from toolrun.engines.turn._judgment import relevance_messages

    request = build_request(parse_inputs({"messages": messages, "tools": tools}), function_calling=True)
    conversation = relevance_messages(call, request)
    if conversation is None:
        return 1.0
    asked = build_request(parse_inputs({"messages": conversation, "temperature": 0}), function_calling=False)
    return yes_share(engine.next_token_logits(asked), engine._decisions(engine.load()))


async def collect(
    model: str,
    category: str,
    offset: int,
    limit: int,
    another: float | None,
    try_another: bool | None,
    threads: int | None,
) -> list[dict[str, Any]]:
    from toolrun import AsyncAI
    from toolrun.eval import BfclData, run_bfcl, to_tool

    ai = AsyncAI(n_threads=threads)
    entry = ai.catalog.get(model)
    # Always take the call path and keep its call: its verdict (and whether its values are grounded) is what we need.
    changes: dict[str, Any] = {"call_threshold": 1e-9, "check_relevance": False}
    if another is not None:
        changes["another_call_threshold"] = another
    if try_another is not None:
        changes["try_another_call"] = try_another
    ai.catalog.add(replace(entry, **changes))
    engine = await ai.engine(entry.name)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(case: Any, result: dict[str, Any]) -> None:
        nonlocal started
        tools = [to_tool(f) for f in case.functions]
        p = opening_probability(engine, case.messages, tools)
        first = result["tool_calls"][0] if result["tool_calls"] else None
        p_yes = relevance_yes(engine, first, case.messages, tools) if first is not None else 1.0
        rows.append(
            {
                "category": category,
                "id": case.id,
                "p_open": round(p, 4),
                # In the no-call categories the call path is wrong whatever the call says.
                "call_correct": result["correct"] and category not in NO_CALL,
                "fits": first is not None and first_call_fits(first, case.messages, tools),
                "p_yes": round(p_yes, 4),
                "calls": len(result["tool_calls"]),
                "tool_calls": result["tool_calls"],
                "invalid": result["invalid"],
                "why": result["why"],
            }
        )
        print(
            f"  {case.id:<24} p={p:5.3f} yes={p_yes:5.3f} {'ok  ' if result['correct'] else 'FAIL'} "
            f"{time.perf_counter() - started:5.1f}s {result['why'][:80]}",
            flush=True,
        )
        started = time.perf_counter()

    try:
        data = BfclData.default()
        await run_bfcl(ai, entry.name, categories=[category], offset=offset, limit=limit, data=data, on_case=record)
    finally:
        await ai.aclose()
    return rows


def first_call_fits(call: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> bool:
    """The engines' relevance check on the turn's first call (``check_relevance``)."""
    from toolrun.ai._inputs import build_request, parse_inputs
    from toolrun.engines.turn._judgment import first_call_fits as fits

    request = build_request(parse_inputs({"messages": messages, "tools": tools}), function_calling=True)
    return fits(call, request)


def sweep(rows: list[dict[str, Any]], thresholds: list[float], check_relevance: bool = False) -> list[dict[str, Any]]:
    """Accuracy per category at each threshold; ``macro`` averages the categories with the no-call ones pooled
    (so declining weighs as one category of four, as in the reported set). ``check_relevance``: a first call
    is kept only if it fits the request (else the model answers in text)."""
    categories = list(dict.fromkeys(r["category"] for r in rows))
    table = []
    for t in thresholds:

        def calls(r: dict[str, Any], t: float = t) -> bool:
            return r["p_open"] >= t and (not check_relevance or r["fits"])

        right = {r["id"]: (r["call_correct"] if calls(r) else r["category"] in NO_CALL) for r in rows}
        accuracy = {}
        for category in categories:
            items = [r for r in rows if r["category"] == category]
            accuracy[category] = 100.0 * sum(right[r["id"]] for r in items) / len(items)
        groups = [[r for r in rows if r["category"] == c] for c in categories if c not in NO_CALL]
        groups.append([r for r in rows if r["category"] in NO_CALL])
        groups = [g for g in groups if g]
        macro = sum(100.0 * sum(right[r["id"]] for r in g) / len(g) for g in groups) / len(groups)
        table.append({"threshold": t, "accuracy": accuracy, "macro": macro})
    return table


def print_sweep(table: list[dict[str, Any]], best: dict[str, Any], headers: dict[str, str], score: str) -> None:
    """A sweep as a table: one row per threshold, one column per category (``headers``: category → column
    title), then ``score`` (the row's key for the mean), the best row marked."""
    width = max(map(len, headers.values()))
    print(f"{'threshold':>9} " + " ".join(f"{h:>{width}}" for h in headers.values()) + f" {score:>7}")
    for row in table:
        mark = "  <- best" if row is best else ""
        print(
            f"{row['threshold']:>9.2f} "
            + " ".join(f"{row['accuracy'][c]:>{width}.1f}" for c in headers)
            + f" {row[score]:>7.2f}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--categories", default=HELD_OUT)
    parser.add_argument("--offset", type=int, default=40, help="held out: the README reports cases 0-39")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--another-call-threshold", type=float, default=None, help="default: the catalog's")
    parser.add_argument("--try-another-call", choices=("on", "off"), default=None, help="default: the catalog's")
    parser.add_argument("--tag", default="", help="a suffix for the per-case data file")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reuse", action="store_true", help="sweep the saved per-case data again, run nothing")
    args = parser.parse_args()
    if args.offset < 40 and not args.categories.startswith("live_"):
        sys.exit("refusing to tune on cases 0-39: those are the ones reported")

    out = HERE / ".cache" / f"tune-{args.model.split('/')[-1]}{args.tag}.json"
    if args.reuse:
        rows = json.loads(out.read_text())["rows"]
    else:
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        # live_* categories are never reported: all their cases are held out, from the start.
        rows = []
        for category in categories:
            start = 0 if category.startswith("live_") else args.offset
            try_another = None if args.try_another_call is None else args.try_another_call == "on"
            rows += asyncio.run(
                collect(args.model, category, start, args.limit, args.another_call_threshold, try_another, args.threads)
            )
    if args.reuse:  # the relevance check as the code now has it, on the saved calls
        from toolrun.eval import BfclData, to_tool

        data = BfclData.default()
        cases = {
            case.id: case
            for category in dict.fromkeys(r["category"] for r in rows)
            for case in data.cases(
                category, offset=0 if category.startswith("live_") else args.offset, limit=args.limit
            )
        }
        for r in rows:
            case = cases[r["id"]]
            tools = [to_tool(f) for f in case.functions]
            r["fits"] = bool(r["tool_calls"]) and first_call_fits(r["tool_calls"][0], case.messages, tools)
    thresholds = [round(0.05 * i, 2) for i in range(20)]
    tables = {check: sweep(rows, thresholds, check) for check in (False, True)}
    best_check, best = max(
        ((check, row) for check, table in tables.items() for row in table),
        key=lambda cr: (round(cr[1]["macro"], 6), -cr[1]["threshold"]),
    )
    categories = list(best["accuracy"])
    print(
        f"\n{args.model}: held-out cases, accuracy % by call_threshold "
        "(macro: mean over categories, no-call ones pooled)"
    )
    for check, table in tables.items():
        print(f"\ncheck_relevance {'on' if check else 'off'}:")
        print_sweep(table, best, {c: f"{c[:16]:>16}" for c in categories}, "macro")
    table = tables[best_check]
    best = {**best, "check_relevance": best_check}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": args.model,
                "offset": args.offset,
                "limit": args.limit,
                "another_call_threshold": args.another_call_threshold,
                "try_another_call": args.try_another_call,
                "rows": rows,
                "sweep": table,
                "best": best,
            },
            indent=2,
        )
    )
    print(f"per-case data: {out}")


if __name__ == "__main__":
    main()
