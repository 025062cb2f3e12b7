"""Many clients on one model: warm prefixes per client (TTFT), the prefix cache's memory, and batched decoding.

1. ttft — clients with different tool sets (six tools each, ~1,000 prompt tokens) take turns; the
   time to the first event of a request that follows another client's request, against one that
   follows a request with the same tool set (greedy, streaming, in-process engine).
2. memory — 16 distinct tool sets in turn under a small prefix-cache budget: evictions, the
   cache's bytes after every request (never over the budget) and the process's RSS (no growth).
3. throughput — ``toolrun serve`` and llama.cpp's own ``llama-server -np 4`` on the same GGUF,
   both built from the same llama.cpp (see bench/llama_server.py), side by side, each measurement
   taken on both back to back (which goes first rotating round by round): aggregate tokens/s at 1 and 4
   concurrent clients, greedy, 128 tokens; each round's own ratio and their median.
4. steps — one round of 4 concurrent requests (the throughput benchmark's prompts, greedy, 128
   tokens) in the in-process engine and in ``llama-server -np 4``, alternating: the median decode step
   and the prompt work of each, from toolrun's own timing of ``llama_decode`` and llama-server's
   ``timings``, to tell where a gap in the throughput benchmark comes from.
5. inprocess — where the engine's time goes with 1 and 4 concurrent requests (the throughput
   benchmark's prompts, greedy, 128 tokens), in-process: the share of the wall time spent inside
   ``llama_decode``, and the work of the requests' own programs (sampling, parsing) per step.
6. decode — llama.cpp's decode step alone, in the library toolrun calls (llama-cpp-python's shared
   libraries, through toolrun's ``SequenceContext``) and in the ``llama-server`` binary (its own
   ``timings``), 1 or 4 sequences, alternating rounds: whether the same llama.cpp computes slower
   as a library than as the binary.
7. prefill — a tool list's prompt (one of the ttft benchmark's tool sets as JSON) evaluated
   in pieces of 512 on weights as stored and on llama.cpp's repacked weights, both local models,
   alternating rounds: what ``batch_invariant=False`` buys or costs for prompts.

    .venv/bin/python bench/bench_slots.py ttft
    .venv/bin/python bench/bench_slots.py memory
    .venv/bin/python bench/bench_slots.py throughput
    .venv/bin/python bench/bench_slots.py decode [--sequences 4] [--repacked]
    .venv/bin/python bench/bench_slots.py inprocess
    .venv/bin/python bench/bench_slots.py prefill
    .venv/bin/python bench/bench_slots.py steps --rounds 6
    .venv/bin/python bench/bench_slots.py all --json bench/slots-results.json

The machine is shared: every figure is a median over rounds, and the load is printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (
    KEY,
    PROMPTS,
    OthersMeter,
    _compare_run,
    _summarise,
    free_port,
    load_average,
    server_process,
    toolrun_serve_command,
    wait_for_quiet,
)
from llama_server import llama_server_binary, server_command

ROOT = Path(__file__).resolve().parent.parent

DOMAINS = [
    ("weather", ["city", "country", "unit", "days"]),
    ("calendar", ["title", "date", "time", "attendees"]),
    ("email", ["to", "subject", "body", "cc"]),
    ("files", ["path", "pattern", "recursive", "limit"]),
    ("git", ["repository", "branch", "message", "author"]),
    ("shop", ["product", "quantity", "size", "color"]),
    ("travel", ["origin", "destination", "date", "passengers"]),
    ("music", ["artist", "album", "track", "volume"]),
    ("bank", ["account", "amount", "currency", "reference"]),
    ("notes", ["title", "content", "tags", "folder"]),
    ("maps", ["address", "radius", "category", "open_now"]),
    ("news", ["topic", "source", "language", "since"]),
    ("recipes", ["dish", "diet", "servings", "max_minutes"]),
    ("fitness", ["activity", "duration", "distance", "date"]),
    ("tickets", ["event", "city", "date", "seats"]),
    ("home", ["room", "device", "state", "level"]),
]
VERBS = ["get", "search", "create", "update", "delete", "summarize"]
QUESTIONS = [
    "Please help me with my {d} task: I need the details for tomorrow.",
    "Can you look up something in {d} for me? Use the right tool.",
    "I want to change a setting in {d}; what do you need from me?",
    "Quick question about {d}: what can you do right now?",
]


def tool_set(k: int) -> list[dict[str, Any]]:
    """Six tools of one domain: ~1,000 prompt tokens with the chat template's tool preamble."""
    domain, fields = DOMAINS[k % len(DOMAINS)]
    tools = []
    for verb in VERBS:
        properties: dict[str, Any] = {
            f: {
                "type": "string",
                "description": f"The {f.replace('_', ' ')} to use when you {verb} {domain} items; "
                f"leave it out if the user did not say.",
            }
            for f in fields
        }
        properties["dry_run"] = {"type": "boolean", "description": "Only describe what would happen."}
        tools.append(
            {
                "name": f"{verb}_{domain}_item",
                "description": f"{verb.capitalize()} an item in the user's {domain} service. Returns the "
                f"affected items as JSON, with their ids, so that later calls can refer to them.",
                "parameters": {"type": "object", "properties": properties, "required": [fields[0]]},
            }
        )
    return tools


def request_inputs(k: int, n: int) -> dict[str, Any]:
    domain = DOMAINS[k % len(DOMAINS)][0]
    question = QUESTIONS[n % len(QUESTIONS)].format(d=domain)
    return {
        "messages": [{"role": "user", "content": question}],
        "tools": tool_set(k),
        "temperature": 0,
        "max_tokens": 8,
        "stream": True,
    }


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def first_event_s(ai: Any, model: str, inputs: dict[str, Any]) -> float:
    started = time.perf_counter()
    first = None
    async for _ in await ai.run(model, inputs):
        if first is None:
            first = time.perf_counter() - started
    return first if first is not None else float("nan")


# --------------------------------------------------------------------- ttft


async def bench_ttft(args: argparse.Namespace) -> dict[str, Any]:
    from toolrun import DEFAULT_MODEL, AsyncAI

    ai = AsyncAI()
    engine = await ai.engine(DEFAULT_MODEL)
    tokens = len(engine.prompt_tokens(_generation_request(request_inputs(0, 0))))
    print(f"  prompt: {tokens} tokens; engine: {engine.describe()}", flush=True)
    results: dict[str, Any] = {"prompt_tokens": tokens, "engine": engine.describe(), "clients": {}}
    for clients in args.clients:
        engine.clear_cache()
        for k in range(clients):  # each client's tool set warm once, as a running deployment has it
            await first_event_s(ai, DEFAULT_MODEL, request_inputs(k, 0))
        same, other = [], []
        n = 1
        for round_no in range(args.rounds):
            wait_for_quiet(args.wait_quiet)
            # Alternating: each request follows another client's request.
            for k in range(clients):
                other.append(await first_event_s(ai, DEFAULT_MODEL, request_inputs(k, n)))
                n += 1
            # Same tool set twice in a row: the second follows a same-tool-set request.
            for k in range(clients):
                await first_event_s(ai, DEFAULT_MODEL, request_inputs(k, n))
                same.append(await first_event_s(ai, DEFAULT_MODEL, request_inputs(k, n + 1)))
                n += 2
            print(
                f"    {clients} clients, round {round_no + 1}: after another client "
                f"{statistics.median(other[-clients:]) * 1e3:6.0f} ms, after the same tool set "
                f"{statistics.median(same[-clients:]) * 1e3:6.0f} ms  (load {load_average()})",
                flush=True,
            )
        ratio = statistics.median(other) / statistics.median(same)
        results["clients"][clients] = {
            "after_other_ms": [x * 1e3 for x in other],
            "after_same_ms": [x * 1e3 for x in same],
            "median_after_other_ms": statistics.median(other) * 1e3,
            "median_after_same_ms": statistics.median(same) * 1e3,
            "ratio": ratio,
            "stats": engine.stats(),
        }
        print(
            f"  {clients} clients: median TTFT after another client's request "
            f"{statistics.median(other) * 1e3:.0f} ms, after a same-tool-set request "
            f"{statistics.median(same) * 1e3:.0f} ms: ratio {ratio:.2f} (goal <= 1.5)",
            flush=True,
        )
    await ai.aclose()
    return results


def _generation_request(inputs: dict[str, Any]) -> Any:
    from toolrun._types import normalize_messages, normalize_tools
    from toolrun.engines import GenerationRequest

    return GenerationRequest(normalize_messages(inputs["messages"]), normalize_tools(inputs["tools"]))


# ------------------------------------------------------------------- memory


async def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun.ai import Catalog
    from toolrun.engines.llamacpp import LlamaCppEngine
    from toolrun.formats import get_format

    ai = AsyncAI(catalog=Catalog())
    entry = ai.catalog.get(DEFAULT_MODEL)
    engine = LlamaCppEngine(
        ai.weights(DEFAULT_MODEL),
        get_format(entry.tool_format),
        context_window=entry.context_window,
        prefix_cache_mb=args.budget_mb,
    )
    engine.load()
    ai.register(entry, engine)
    budget = args.budget_mb * 2**20
    rows = []
    peak = 0
    for cycle in range(args.cycles):
        for k in range(16):
            await first_event_s(ai, DEFAULT_MODEL, request_inputs(k, cycle))
            gc.collect()
            stats = engine.stats()
            peak = max(peak, stats["cache_bytes"])
            rows.append({"cycle": cycle, "tool_set": k, "rss_mb": rss_mb(), **stats})
        s = rows[-1]
        print(
            f"  cycle {cycle + 1}: cache {s['cache_bytes'] / 2**20:6.1f} MB in {s['cache_entries']} prefixes "
            f"(budget {args.budget_mb} MB), evictions {s['cache_evictions']}, hits {s['cache_hits']}, "
            f"RSS {s['rss_mb']:.0f} MB",
            flush=True,
        )
    growth = rows[-1]["rss_mb"] - rows[15]["rss_mb"]
    print(
        f"  peak cache {peak / 2**20:.1f} MB <= budget {args.budget_mb} MB: {peak <= budget}; "
        f"RSS change after the first cycle {growth:+.0f} MB",
        flush=True,
    )
    await ai.aclose()
    return {
        "budget_mb": args.budget_mb,
        "peak_cache_bytes": peak,
        "within_budget": peak <= budget,
        "rss_growth_after_first_cycle_mb": growth,
        "rows": rows,
    }


# --------------------------------------------------------------- throughput

TOOLRUN = "toolrun serve"
REPACKED = "toolrun serve (repacked weights)"
LLAMA_SERVER = "llama-server -np 4"


def bench_throughput(args: argparse.Namespace) -> dict[str, Any]:
    from toolrun import DEFAULT_MODEL, AsyncAI

    gguf = AsyncAI().weights(DEFAULT_MODEL)
    binary = llama_server_binary()
    threads = str(args.threads)
    toolrun_port, llama_port = free_port(), free_port()
    toolrun_cmd = toolrun_serve_command(toolrun_port, DEFAULT_MODEL, threads)
    # The same context per slot as toolrun's (8192), the same batch, flash attention as toolrun runs it.
    llama_cmd = server_command(gguf, llama_port, parallel=4, ctx_size=4 * 8192, threads=threads,
                               extra=["--batch-size", "512", "--ubatch-size", "512",
                                      "--flash-attn", args.llama_flash_attn, "--api-key", KEY])  # fmt: skip
    # (label, base URL, model name, command line, extra environment)
    sides: list[tuple[str, str, str, list[str], dict[str, str]]] = [
        (TOOLRUN, f"http://127.0.0.1:{toolrun_port}", DEFAULT_MODEL, toolrun_cmd, {}),
        (LLAMA_SERVER, f"http://127.0.0.1:{llama_port}", "qwen", llama_cmd, {}),
    ]
    if args.repacked:
        repacked_port = free_port()
        sides.append(
            (
                REPACKED,
                f"http://127.0.0.1:{repacked_port}",
                DEFAULT_MODEL,
                toolrun_serve_command(repacked_port, DEFAULT_MODEL, threads),
                {"TOOLRUN_BATCH_INVARIANT": "0"},
            )
        )
    runs: dict[str, dict[str, list[Any]]] = {side[0]: {"one_client": [], "four_clients": []} for side in sides}
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(server_process(cmd, base + "/health", timeout=600, env=env))
            for _, base, _, cmd, env in sides
        ]
        for _, base, model, _, _ in sides:  # warm-up: first-use allocations, the chat template's prefix
            asyncio.run(_compare_run(base, model, 4, 1, 16))
        # Each measurement runs on every side back to back (the sides' order rotating round by round),
        # so a pair of measurements is seconds apart: the machine's speed drifts by up to 20 % within a
        # minute, and a pair taken further apart measures the drift.
        kinds = [(key, clients, per_client) for key, clients, per_client in
                 (("one_client", 1, args.one_client_requests), ("four_clients", 4, args.four_client_rounds))
                 if per_client > 0]  # fmt: skip
        for round_no in range(args.rounds):
            order = list(zip(sides, procs))
            shift = round_no % len(order)
            order = order[shift:] + order[:shift]
            for key, clients, per_client in kinds:
                for (label, base, model, _, _), proc in order:
                    wait_for_quiet(args.wait_quiet)
                    with OthersMeter(proc.pid) as meter:
                        run = asyncio.run(
                            _compare_run(base, model, clients, per_client, args.max_tokens, first_prompt=round_no)
                        )
                    note = (
                        f"round {round_no + 1} {label:33s} {clients} client(s) "
                        f"{sum(r[1] for r in run['rows']) / run['wall_s']:5.1f} tok/s  "
                        f"(other processes used {meter.others_cores:.2f} cores; load {load_average()})"
                    )
                    print(f"  {note}", flush=True)
                    notes.append(note)
                    runs[label][key].append(run)
    results: dict[str, Any] = {
        "gguf": gguf,
        "llama_server": str(binary),
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "conditions": notes,
        "servers": {},
    }
    medians: dict[str, dict[str, float]] = {}
    for label, *_ in sides:
        summary: dict[str, Any] = {}
        medians[label] = {}
        for key, clients, _ in kinds:
            per_round = [sum(r[1] for r in run["rows"]) / run["wall_s"] for run in runs[label][key]]
            summary[key] = {
                **_summarise(runs[label][key], clients),
                "per_round_tokens_per_s": per_round,
                "median_tokens_per_s": statistics.median(per_round),
            }
            medians[label][key] = statistics.median(per_round)
        summary["raw"] = runs[label]
        results["servers"][label] = summary
    theirs = medians[LLAMA_SERVER]
    results["ratios"] = {}
    for label in (TOOLRUN, REPACKED):
        if label not in medians:
            continue
        ours = medians[label]
        names = {"one_client": "1 client", "four_clients": "4 clients"}
        for key in ours:
            print(
                f"  {names[key]}: {label} {ours[key]:5.1f} tok/s, llama-server {theirs[key]:5.1f} tok/s, "
                f"ratio {ours[key] / theirs[key]:.3f}" + ("  (goal >= 0.95)" if key == "four_clients" else ""),
                flush=True,
            )
        ratios = {key: ours[key] / theirs[key] for key in ours}
        # The machine's speed drifts between rounds: each round's own ratio (the sides measured back to
        # back) is the steadier figure.
        per_round = {
            key: [
                mine / other
                for mine, other in zip(
                    results["servers"][label][key]["per_round_tokens_per_s"],
                    results["servers"][LLAMA_SERVER][key]["per_round_tokens_per_s"],
                    strict=True,
                )
            ]
            for key in ours
        }
        for key in ours:
            print(
                f"  {names[key]}: {label} per-round ratios {', '.join(f'{r:.3f}' for r in per_round[key])}; "
                f"median {statistics.median(per_round[key]):.3f}",
                flush=True,
            )
        ratios.update({f"{key}_per_round_median": statistics.median(per_round[key]) for key in ours})
        if label == TOOLRUN:
            results["ratios"] = ratios
            results["per_round_ratios"] = per_round
        else:
            results["ratios_repacked"] = ratios
            results["per_round_ratios_repacked"] = per_round
    return results


# ------------------------------------------------------------------ decode

DECODE_PROMPT = "Write a long story about a dragon who learns to code in Python."


def bench_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Milliseconds per decode step: toolrun's context (the library) against llama-server (the binary)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import numpy as np

    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun.engines.llamacpp._context import SequenceContext
    from toolrun.engines.llamacpp._model import LlamaModel

    gguf = AsyncAI().weights(DEFAULT_MODEL)
    n_seq, steps, threads = args.sequences, args.max_tokens, str(args.threads)
    port = free_port()
    # The same arithmetic on both sides: weights as stored, no flash attention, 4 KV streams.
    command = server_command(gguf, port, parallel=4, ctx_size=4 * 8192, threads=threads,
                             extra=["--flash-attn", "off", "--no-repack", "--api-key", KEY])  # fmt: skip
    model = LlamaModel(gguf, batch_invariant=True)
    context = SequenceContext(model.model, n_seq=4, n_ctx_seq=8192, n_threads=args.threads, n_batch=512)
    prompt = model.tokenize(DECODE_PROMPT.encode(), add_bos=True, special=True)
    repacked_context: SequenceContext | None = None
    if args.repacked:  # the library again, on llama.cpp's repacked weights
        repacked_model = LlamaModel(gguf, batch_invariant=False)
        repacked_context = SequenceContext(
            repacked_model.model, n_seq=4, n_ctx_seq=8192, n_threads=args.threads, n_batch=512
        )

    def library(context: SequenceContext = context) -> float:
        for seq in range(n_seq):
            context.remove(seq)
            for i, token in enumerate(prompt):
                context.batch.add(token, i, seq, i == len(prompt) - 1)
            context.decode()
        tokens = [int(np.argmax(context.logits(len(prompt) - 1)))] * n_seq
        times = []
        for pos in range(len(prompt), len(prompt) + steps):
            for seq in range(n_seq):
                context.batch.add(tokens[seq], pos, seq, True)
            started = time.perf_counter()
            context.decode()
            times.append(time.perf_counter() - started)
            tokens = [int(np.argmax(context.logits(seq))) for seq in range(n_seq)]
        return statistics.median(times) * 1000

    rounds: list[tuple[float, float]] = []
    repacked_ms: list[float] = []
    with server_process(command, f"http://127.0.0.1:{port}/health", timeout=600), ThreadPoolExecutor(n_seq) as pool:
        client = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
        body = {"prompt": DECODE_PROMPT, "n_predict": steps, "temperature": 0, "ignore_eos": True}

        def one(_: int) -> float:
            response = client.post(f"http://127.0.0.1:{port}/completion", json={**body, "cache_prompt": False})
            response.raise_for_status()
            return float(response.json()["timings"]["predicted_per_token_ms"])

        def binary() -> float:
            return statistics.median(pool.map(one, range(n_seq)))

        binary(), library()  # warm-up
        for round_no in range(args.rounds):
            wait_for_quiet(args.wait_quiet)
            if round_no % 2 == 0:  # alternate which side goes first
                ours, theirs = library(), binary()
            else:
                theirs, ours = binary(), library()
            rounds.append((ours, theirs))
            line = f"  round {round_no + 1}: library {ours:6.2f} ms/step, llama-server {theirs:6.2f} ms/step"
            if repacked_context is not None:
                repacked_ms.append(library(repacked_context))
                line += f", library on repacked weights {repacked_ms[-1]:6.2f} ms/step"
            print(f"{line} (load {load_average()})", flush=True)
    ours, theirs = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    print(
        f"  {n_seq} sequence(s): library {ours:.2f}, llama-server {theirs:.2f} ms/step; speed ratio {theirs / ours:.3f}"
    )
    results = {"sequences": n_seq, "steps": steps, "rounds_ms": rounds, "speed_ratio": theirs / ours}
    if repacked_ms:
        # Each round's own ratio: the two libraries are timed back to back.
        per_round = [r / u for r, (u, _) in zip(repacked_ms, rounds, strict=True)]
        print(f"  repacked / unrepacked step time, per round: {', '.join(f'{r:.3f}' for r in per_round)}; "
              f"median {statistics.median(per_round):.3f}")  # fmt: skip
        results["repacked_rounds_ms"] = repacked_ms
        results["repacked_over_unrepacked"] = statistics.median(per_round)
    return results


# ---------------------------------------------------------------- inprocess


async def bench_inprocess(args: argparse.Namespace) -> dict[str, Any]:
    """The engine's wall time split into llama_decode and the rest, timed around the scheduler's calls."""
    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun._types import normalize_messages
    from toolrun.engines import GenerationRequest, SamplingParams
    from toolrun.engines.llamacpp import _context, _scheduler

    spent = {"decode": 0.0, "decodes": 0, "programs": 0.0}
    decode, advance = _context.SequenceContext.decode, _scheduler.Scheduler._advance

    def timed_decode(self: Any) -> None:
        started = time.perf_counter()
        decode(self)
        spent["decode"] += time.perf_counter() - started
        spent["decodes"] += 1

    def timed_advance(self: Any, job: Any) -> None:
        started = time.perf_counter()
        advance(self, job)
        spent["programs"] += time.perf_counter() - started

    _context.SequenceContext.decode = timed_decode  # type: ignore[method-assign]
    _scheduler.Scheduler._advance = timed_advance  # type: ignore[method-assign]
    engine = await AsyncAI(n_threads=args.threads).engine(DEFAULT_MODEL)

    async def one(prompt: str) -> int:
        request = GenerationRequest(
            normalize_messages([{"role": "user", "content": prompt}]),
            sampling=SamplingParams(max_tokens=args.max_tokens, temperature=0),
        )
        tokens = 0
        async for event in engine.generate(request):
            if "usage" in event:
                tokens = event["usage"]["completion_tokens"]
        return tokens

    async def client(offset: int, clients: int) -> int:
        return sum([await one(PROMPTS[(offset + i * clients) % len(PROMPTS)]) for i in range(args.four_client_rounds)])

    await one(PROMPTS[-1])  # warm-up: the chat template's prefix
    results: dict[str, Any] = {}
    for clients in (1, 4):
        wait_for_quiet(args.wait_quiet)
        spent.update(decode=0.0, decodes=0, programs=0.0)
        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*(client(c, clients) for c in range(clients))))
        wall = time.perf_counter() - started
        row = {
            "tokens": tokens,
            "wall_s": wall,
            "tokens_per_s": tokens / wall,
            "decode_share": spent["decode"] / wall,
            "decodes": spent["decodes"],
            "programs_ms_per_decode": spent["programs"] / max(spent["decodes"], 1) * 1000,
        }
        print(
            f"  {clients} client(s): {tokens} tokens in {wall:.2f} s ({row['tokens_per_s']:.1f} tok/s); "
            f"inside llama_decode {row['decode_share']:.1%} over {row['decodes']} decodes; "
            f"the programs {row['programs_ms_per_decode']:.2f} ms per decode (load {load_average()})",
            flush=True,
        )
        results[f"{clients}_clients"] = row
    await engine.aclose()
    return results


# ------------------------------------------------------------------ steps


async def bench_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Decode-step and prompt milliseconds at 4 concurrent requests: the engine against llama-server."""
    import httpx

    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun._types import normalize_messages
    from toolrun.engines import GenerationRequest, SamplingParams
    from toolrun.engines.llamacpp import _context

    decodes: list[tuple[int, float]] = []  # (tokens in the batch, seconds)
    decode = _context.SequenceContext.decode

    def timed_decode(self: Any) -> None:
        tokens, started = self.batch.n, time.perf_counter()
        decode(self)
        decodes.append((tokens, time.perf_counter() - started))

    _context.SequenceContext.decode = timed_decode  # type: ignore[method-assign]
    engine = await AsyncAI(n_threads=args.threads).engine(DEFAULT_MODEL)
    gguf = AsyncAI().weights(DEFAULT_MODEL)
    port = free_port()
    command = server_command(gguf, port, parallel=4, ctx_size=4 * 8192, threads=str(args.threads),
                             extra=["--batch-size", "512", "--ubatch-size", "512",
                                    "--flash-attn", args.llama_flash_attn, "--api-key", KEY])  # fmt: skip

    async def ours(prompt: str) -> None:
        request = GenerationRequest(
            normalize_messages([{"role": "user", "content": prompt}]),
            sampling=SamplingParams(max_tokens=args.max_tokens, temperature=0),
        )
        async for _ in engine.generate(request):
            pass

    async def theirs(client: httpx.AsyncClient, prompt: str) -> dict[str, Any]:
        body = {"model": "qwen", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": args.max_tokens, "temperature": 0}  # fmt: skip
        response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
        response.raise_for_status()
        timings: dict[str, Any] = response.json()["timings"]
        return timings

    rows: list[dict[str, Any]] = []
    with server_process(command, f"http://127.0.0.1:{port}/health", timeout=600):
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as client:
            await ours(PROMPTS[0])  # warm-up: the chat template's prefix
            await theirs(client, PROMPTS[0])
            for round_no in range(args.rounds):
                prompts = [PROMPTS[(round_no + c) % len(PROMPTS)] for c in range(4)]
                row: dict[str, Any] = {"round": round_no + 1}
                for side in ("toolrun", "llama-server") if round_no % 2 == 0 else ("llama-server", "toolrun"):
                    wait_for_quiet(args.wait_quiet)
                    started = time.perf_counter()
                    if side == "toolrun":
                        decodes.clear()
                        await asyncio.gather(*(ours(p) for p in prompts))
                        steps = [s for n, s in decodes if n == 4]
                        row["toolrun"] = {
                            "wall_s": time.perf_counter() - started,
                            "step_ms": statistics.median(steps) * 1000,
                            "steps": len(steps),
                            "prompt_ms": sum(s for n, s in decodes if n > 4) * 1000,
                            "prompt_tokens": sum(n for n, _ in decodes if n > 4),
                        }
                    else:
                        timings = await asyncio.gather(*(theirs(client, p) for p in prompts))
                        row["llama-server"] = {
                            "wall_s": time.perf_counter() - started,
                            "step_ms": statistics.median(t["predicted_per_token_ms"] for t in timings),
                            # The four prompts go in one batch: its time is each request's prompt_ms.
                            "prompt_ms": max(t["prompt_ms"] for t in timings),
                            "prompt_tokens": sum(t["prompt_n"] for t in timings),
                        }
                a, b = row["toolrun"], row["llama-server"]
                print(
                    f"  round {round_no + 1}: step toolrun {a['step_ms']:5.1f} ms, "
                    f"llama-server {b['step_ms']:5.1f} ms; prompts {a['prompt_ms']:4.0f} ms for {a['prompt_tokens']} "
                    f"tokens against {b['prompt_ms']:4.0f} ms for {b['prompt_tokens']}; "
                    f"wall {a['wall_s']:.2f} against {b['wall_s']:.2f} s (load {load_average()})",
                    flush=True,
                )
                rows.append(row)
    await engine.aclose()
    step_ratio = statistics.median(r["toolrun"]["step_ms"] / r["llama-server"]["step_ms"] for r in rows)
    wall_ratio = statistics.median(r["toolrun"]["wall_s"] / r["llama-server"]["wall_s"] for r in rows)
    prompt_ms = {side: statistics.median(r[side]["prompt_ms"] for r in rows) for side in ("toolrun", "llama-server")}
    print(
        f"  toolrun/llama-server per round, median: step time {step_ratio:.3f}, wall time {wall_ratio:.3f}; "
        f"prompt work {prompt_ms['toolrun']:.0f} against {prompt_ms['llama-server']:.0f} ms a round",
        flush=True,
    )
    return {"rounds": rows, "step_ratio": step_ratio, "wall_ratio": wall_ratio, "prompt_ms": prompt_ms}


# ---------------------------------------------------------------- prefill

SECOND_MODEL = "@local/qwen2.5-coder-1.5b-instruct"


def bench_prefill(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds to evaluate one tool list's prompt, weights unrepacked against repacked, per model."""
    from toolrun import DEFAULT_MODEL, AsyncAI
    from toolrun.engines.llamacpp._context import SequenceContext
    from toolrun.engines.llamacpp._model import LlamaModel
    from toolrun.engines.llamacpp._slots import prompt_pieces

    text = "<|im_start|>system\n" + json.dumps(tool_set(0)) + "<|im_end|>\n"
    results: dict[str, Any] = {}
    for name in (DEFAULT_MODEL, SECOND_MODEL):
        weights = AsyncAI().weights(name)
        sides = {}
        for label, invariant in (("unrepacked", True), ("repacked", False)):
            model = LlamaModel(weights, batch_invariant=invariant)
            context = SequenceContext(model.model, n_seq=1, n_ctx_seq=4096, n_threads=args.threads, n_batch=512)
            sides[label] = (model, context)
        prompt = sides["unrepacked"][0].tokenize(text.encode(), add_bos=True, special=True)

        def evaluate(context: SequenceContext, prompt: list[int] = prompt) -> float:
            context.clear()
            started = time.perf_counter()
            for start, stop in prompt_pieces(0, len(prompt), 512):
                for pos in range(start, stop):
                    context.batch.add(prompt[pos], pos, 0, pos == len(prompt) - 1)
                context.decode()
            return time.perf_counter() - started

        for _, context in sides.values():
            evaluate(context)  # warm-up
        times: dict[str, list[float]] = {"unrepacked": [], "repacked": []}
        for round_no in range(args.rounds):
            wait_for_quiet(args.wait_quiet)
            order = ["unrepacked", "repacked"] if round_no % 2 == 0 else ["repacked", "unrepacked"]
            for label in order:
                times[label].append(evaluate(sides[label][1]))
        ratio = statistics.median(r / u for r, u in zip(times["repacked"], times["unrepacked"], strict=True))
        print(
            f"  {name}: {len(prompt)} tokens; unrepacked {statistics.median(times['unrepacked']):.2f} s, "
            f"repacked {statistics.median(times['repacked']):.2f} s; repacked/unrepacked per round, median "
            f"{ratio:.3f} (load {load_average()})",
            flush=True,
        )
        results[name] = {"tokens": len(prompt), "seconds": times, "repacked_over_unrepacked": ratio}
        for model, context in sides.values():
            context.close()
            model.close()
    return results


# --------------------------------------------------------------------- main


#: What ``all`` runs: the issue's goals.
ALL_SECTIONS = ("ttft", "memory", "throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["ttft", "memory", "throughput", "decode", "inprocess", "prefill", "steps", "all"],
        help=f"the section to run; all: {', '.join(ALL_SECTIONS)}",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 4], help="ttft: client counts")
    parser.add_argument("--budget-mb", type=int, default=64, help="memory: the prefix-cache budget")
    parser.add_argument("--cycles", type=int, default=3, help="memory: passes over the 16 tool sets")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--sequences", type=int, default=1, choices=[1, 2, 3, 4], help="decode: sequences per step")
    parser.add_argument(
        "--one-client-requests", type=int, default=2, help="throughput: requests per round at 1 client (0: skip)"
    )
    parser.add_argument(
        "--four-client-rounds", type=int, default=2, help="throughput: requests per client per round at 4 (0: skip)"
    )
    parser.add_argument(
        "--repacked",
        action="store_true",
        help="throughput: also run toolrun serve on llama.cpp's repacked weights ($TOOLRUN_BATCH_INVARIANT=0); "
        "decode: also time the library on them",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--llama-flash-attn",
        default="off",
        choices=["on", "off", "auto"],
        help="llama-server's flash attention (toolrun runs without it)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for the CPUs to go idle",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "load_average_at_start": load_average()}
    print(f"{results['machine']}; load average {results['load_average_at_start']}", flush=True)
    sections: dict[str, tuple[str, Callable[[argparse.Namespace], Any]]] = {
        "ttft": ("TTFT, clients with different tool sets taking turns:", lambda a: asyncio.run(bench_ttft(a))),
        "memory": (f"Prefix cache under 16 tool sets, budget {args.budget_mb} MB:",
                   lambda a: asyncio.run(bench_memory(a))),
        "throughput": (f"Throughput vs llama-server, greedy, max_tokens {args.max_tokens}, {args.threads} threads:",
                       bench_throughput),
        "decode": (f"Decode step, library vs binary, {args.sequences} sequence(s), {args.threads} threads:",
                   bench_decode),
        "inprocess": (f"Where the engine's time goes, max_tokens {args.max_tokens}, {args.threads} threads:",
                      lambda a: asyncio.run(bench_inprocess(a))),
        "prefill": (f"Prompt evaluation, weights as stored vs repacked, {args.threads} threads:", bench_prefill),
        "steps": (f"Decode steps and prompt work at 4 clients, max_tokens {args.max_tokens}:",
                  lambda a: asyncio.run(bench_steps(a))),
    }  # fmt: skip
    for name in ALL_SECTIONS if args.what == "all" else (args.what,):
        title, run = sections[name]
        print(title, flush=True)
        results[name] = run(args)
    results["load_average_at_end"] = load_average()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
