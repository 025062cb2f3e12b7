"""Remote engines: BFCL accuracy through an upstream, and the throughput toolrun's remote engine keeps.

    .venv/bin/python bench/bench_remote.py [--limit 40] [--rounds 5] [--skip-bfcl] [--skip-throughput]

The upstream is ``python -m llama_cpp.server`` serving the default GGUF on 127.0.0.1 (started here,
stopped at the end).

1. **BFCL v4**, first ``--limit`` cases of simple/multiple/parallel/irrelevance, greedy, scored with
   BFCL's AST checker: through the upstream in ``toolrun`` tool parsing (toolrun's template from the
   GGUF, its parser, the server's ``grammar``) and in ``native`` parsing (the server's chat handler),
   beside the local engine on the same GGUF. Data loading and scoring come from ``bench_bfcl.py``.
2. **Throughput**: 4 concurrent clients send the same requests through toolrun's remote engine
   (``AsyncAI.run`` on a remote entry) and straight to the upstream with httpx (the very body the
   engine sends), side by side in alternating rounds; medians of aggregate tokens/s. Two workloads:
   streamed text, and a required tool call (one constrained completion).

Results: a table on stdout and ``bench/.cache/remote-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "remote"))
sys.path.insert(0, str(ROOT / "tests"))
from _ratios import OneRequest, alternating_rounds  # noqa: E402 - bench/'s own helper (bench/ is no package)
from seed_testing import SEED_TOOL  # noqa: E402 - the tests' own copy of the seed's example

RESULTS = HERE / ".cache" / "remote-results.json"
TOOLRUN, NATIVE = "@bench/remote-toolrun", "@bench/remote-native"


def remote_catalog(url: str, gguf: str, upstream: str = "llama-cpp-python") -> Any:
    from remote_testing import served_entry

    from toolrun.ai import Catalog

    catalog = Catalog()
    # The local engine's judgement on the toolrun side, so that it differs from local only in where the model runs.
    catalog.add(
        served_entry(
            TOOLRUN, url, tool_parsing="toolrun", gguf=gguf, upstream=upstream, judged=True, read_timeout=900.0
        )
    )
    catalog.add(served_entry(NATIVE, url, tool_parsing="native", read_timeout=900.0))
    return catalog


class LlamaServer:
    """llama.cpp's ``llama-server`` on one GGUF, one slot, on 127.0.0.1 (the upstream ``llama.cpp`` dialect)."""

    def __init__(self, gguf: str, *, threads: int | None = None, local_numerics: bool = False) -> None:
        from bench_server import free_port

        self.gguf = gguf
        self.threads = str(threads or 2)
        self.local_numerics = local_numerics
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._context: Any = None

    def start(self) -> LlamaServer:
        from bench_server import server_process
        from llama_server import server_command

        command = server_command(self.gguf, self.port, parallel=1, ctx_size=8192, threads=self.threads)
        if self.local_numerics:
            # The local engine's arithmetic: weights as stored (not repacked), no flash attention, and every
            # prompt evaluated from position 0 in 64-token chunks (as its slots evaluate theirs).
            command += ["--no-repack", "--flash-attn", "off", "--ubatch-size", "64", "--no-cache-prompt"]
        self._context = server_process(command, self.url + "/health", timeout=600)
        self._context.__enter__()
        return self

    def stop(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None


# ── BFCL ─────────────────────────────────────────────────────────────────────────────────────────


async def bfcl(
    url: str,
    gguf: str,
    limit: int,
    categories: list[str],
    sides: list[str],
    verbose: bool,
    upstream: str = "llama-cpp-python",
) -> dict[str, list[dict[str, Any]]]:
    import bench_bfcl  # data, tools and scoring: the one place they are defined

    from toolrun import DEFAULT_MODEL
    from toolrun.ai import AsyncAI

    bench_bfcl.ensure_wheel()
    checker, language = bench_bfcl.load_checker()
    models = {"local": DEFAULT_MODEL, "toolrun": TOOLRUN, "native": NATIVE}
    results: dict[str, list[dict[str, Any]]] = {}
    with zipfile.ZipFile(bench_bfcl.WHEEL) as zf:
        items = {c: bench_bfcl.load_category(zf, c, limit) for c in categories}
    for side in sides:
        ai = AsyncAI() if side == "local" else AsyncAI(catalog=remote_catalog(url, gguf, upstream))
        results[side] = []
        try:
            for category in categories:
                print(f"── BFCL {category} through {side}: {len(items[category])} cases", flush=True)
                summary = await bench_bfcl.run_category(
                    ai, models[side], category, items[category], checker, language, verbose
                )
                results[side].append(summary)
        finally:
            await ai.aclose()
    return results


def print_bfcl(results: dict[str, list[dict[str, Any]]], limit: int) -> None:
    sides = list(results)
    print(f"\nBFCL v4, first {limit} cases per category, greedy, AST checker; accuracy % (invalid calls)")
    print(f"{'category':<15}" + "".join(f"{s:>22}" for s in sides))
    for i, summary in enumerate(results[sides[0]]):
        row = f"{summary['category']:<15}"
        for side in sides:
            s = results[side][i]
            row += f"{s['accuracy']:>15.1f} ({s['invalid_calls']:>2})  "
        print(row)


# ── throughput ──────────────────────────────────────────────────────────────────────────────────


async def throughput(
    url: str, gguf: str, rounds: int, clients: int, per_client: int, max_tokens: int
) -> dict[str, Any]:
    import httpx

    from toolrun.ai import AsyncAI
    from toolrun.ai._inputs import build_request, parse_inputs

    ai = AsyncAI(catalog=remote_catalog(url, gguf))
    engine: Any = await ai.engine(TOOLRUN)
    template = await engine.prompt_template()
    from toolrun.engines._prompt import render_prompt

    workloads = {
        "text": {
            "messages": [{"role": "user", "content": "Write a short poem about the sea."}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        },
        "required call": {
            "messages": [{"role": "user", "content": "Who is Cloudflare on github?"}],
            "tools": [SEED_TOOL],
            "tool_choice": "required",
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        },
    }
    direct_client = httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=5.0))
    out: dict[str, Any] = {}

    async def through_toolrun(inputs: dict[str, Any]) -> int:
        # The upstream's chunks, as the engine counted them (llama_cpp.server reports no usage when
        # streaming; one chunk is one token): the same count the direct side makes.
        tokens = 0
        stream = await ai.run(TOOLRUN, inputs)
        async for event in stream:
            if "usage" in event:
                tokens = event["usage"]["completion_tokens"]
        return tokens

    async def straight(body: dict[str, Any]) -> int:
        pieces = 0
        async with direct_client.stream("POST", url + "/v1/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if any(c.get("text") for c in chunk.get("choices", ())):
                        pieces += 1
        return pieces

    try:
        for name, inputs in workloads.items():
            request = build_request(parse_inputs(inputs), function_calling=True)
            prompt = render_prompt(
                engine.format, template.source, request, control=engine.control, eos_token=template.eos_token
            ).defanged()
            grammar = engine.grammars.call(request).text if request.must_call else None
            body = engine._completion_body(prompt, request, grammar, request.sampling.max_tokens)
            sides: dict[str, OneRequest] = {
                "toolrun": lambda inputs=inputs: through_toolrun(inputs),  # type: ignore[misc]
                "direct": lambda body=body: straight(body),  # type: ignore[misc]
            }
            # Warm up both paths (the first prefill and the engine's first use are not throughput).
            for one in sides.values():
                await one()
            out[name] = await alternating_rounds(
                sides, rounds=rounds, clients=clients, per_client=per_client, label=name
            )
    finally:
        await direct_client.aclose()
        await ai.aclose()
    return out


def print_throughput(results: dict[str, Any], clients: int) -> None:
    print(f"\nThroughput, {clients} concurrent clients, medians over alternating rounds")
    print(f"{'workload':<15}{'toolrun tok/s':>15}{'direct tok/s':>15}{'ratio (median)':>16}")
    for name, r in results.items():
        print(f"{name:<15}{r['toolrun_tok_s']:>15.2f}{r['direct_tok_s']:>15.2f}{r['median_ratio']:>15.3f}×")


# ── main ────────────────────────────────────────────────────────────────────────────────────────


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="BFCL cases per category (default 40)")
    parser.add_argument("--categories", default="simple_python,multiple,parallel,irrelevance")
    parser.add_argument("--sides", default="toolrun,native,local", help="BFCL sides: toolrun,native,local")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per side (default 5)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round (default 2)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--upstream",
        choices=["llama-cpp-python", "llama-server"],
        default="llama-cpp-python",
        help="python -m llama_cpp.server, or llama.cpp's own llama-server (built by bench/llama_server.py; "
        "it returns the first token's probabilities, so call_threshold applies); BFCL only",
    )
    parser.add_argument("--upstream-threads", type=int, default=None, help="the upstream's threads (default 2)")
    parser.add_argument(
        "--local-numerics",
        action="store_true",
        help="llama-server: compute as the local engine does (no repacking, no flash attention, 64-token prompt "
        "chunks from position 0), so that both sides see the same logits and differ only in toolrun's mechanisms",
    )
    parser.add_argument("--skip-bfcl", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args()
    if args.upstream == "llama-server" and not args.skip_throughput:
        parser.error("the throughput comparison runs on llama_cpp.server: add --skip-throughput")
    print("command: .venv/bin/python bench/bench_remote.py " + " ".join(sys.argv[1:]), flush=True)

    from remote_testing import LlamaCppPythonServer

    from toolrun import DEFAULT_MODEL, AsyncAI

    gguf = AsyncAI().weights(DEFAULT_MODEL)
    if args.upstream == "llama-server":
        upstream: Any = LlamaServer(gguf, threads=args.upstream_threads, local_numerics=args.local_numerics).start()
        dialect = "llama.cpp"
    else:
        upstream = LlamaCppPythonServer(gguf, threads=args.upstream_threads).start()
        dialect = "llama-cpp-python"
    print(f"upstream: {args.upstream} at {upstream.url} ({Path(gguf).name})", flush=True)
    report: dict[str, Any] = {"command": sys.argv, "upstream": args.upstream, "gguf": Path(gguf).name}
    try:
        if not args.skip_throughput:
            report["throughput"] = await throughput(
                upstream.url, gguf, args.rounds, args.clients, args.requests, args.max_tokens
            )
        if not args.skip_bfcl:
            categories = [c.strip() for c in args.categories.split(",") if c.strip()]
            sides = [s.strip() for s in args.sides.split(",") if s.strip()]
            report["bfcl"] = await bfcl(upstream.url, gguf, args.limit, categories, sides, not args.quiet, dialect)
    finally:
        upstream.stop()
    if "throughput" in report:
        print_throughput(report["throughput"], args.clients)
    if "bfcl" in report:
        print_bfcl(report["bfcl"], args.limit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {args.output}")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds main(), whose finally stops the upstream it started


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    asyncio.run(main())
