"""Benchmarks of embedded function calling (run_with_tools and the trimmers).

    .venv/bin/python bench/bench_embedded.py            # everything (the trim part loads the real model)
    .venv/bin/python bench/bench_embedded.py --no-model # skip auto_trim_tools on the real model

1. Framework overhead per run with an instant stand-in model, toolrun vs
   @cloudflare/ai-utils 1.0.1 in node on the same loop: one round with one
   tool call, then the final answer. Node and Python repetitions alternate, so
   load on the machine hits both alike. (bench/node-loop is installed with npm
   on first use.)
2. Eight calls in one turn whose functions each wait 200 ms (async, then sync
   functions): wall time of the whole run.
3. Trimming on BFCL v4 ``multiple`` (bfcl-eval 2026.3.23, fetched with pip
   into bench/.cache): how often the ground-truth function survives the trim,
   how many tools are kept, and the time per trim; as shipped (2-4 functions a
   case), and with distractors from other cases added up to 10 tools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolrun.embedded import auto_trim_tools, bm25_trim_tools, run_with_tools  # noqa: E402

NODE_DIR = ROOT / "bench" / "node-loop"
CACHE = ROOT / "bench" / ".cache"
BFCL_VERSION = "2026.3.23"
MODEL_ANSWER = "It is sunny in Mumbai."


# ----------------------------------------------------------------- overhead

CALL = {"name": "get_weather", "arguments": {"city": "Mumbai"}}
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class InstantAI:
    """Answers at once, like loop.mjs's stand-in: a call while tools are offered, then the answer."""

    async def run(self, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("tools"):
            return {"response": "", "tool_calls": [CALL], "usage": ZERO_USAGE}
        return {"response": MODEL_ANSWER, "tool_calls": [], "usage": ZERO_USAGE}


async def _weather(city: str) -> str:
    return f"Sunny in {city}"


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Gets weather information of a particular city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name."}},
        "required": ["city"],
    },
    "function": _weather,
}


async def _python_per_run_us(runs: int, strict: bool) -> float:
    ai = InstantAI()

    async def once() -> None:
        out = await run_with_tools(
            ai,
            "@local/qwen2.5-coder-0.5b-instruct",
            {
                "messages": [{"role": "user", "content": "What's the weather in Mumbai, India?"}],
                "tools": [WEATHER_TOOL],
            },
            max_recursive_tool_runs=0,
            strict_validation=strict,
        )
        if out["response"] != MODEL_ANSWER:
            raise AssertionError(out)

    for _ in range(min(runs, 2000)):  # warm-up, as loop.mjs does for the JIT
        await once()
    started = time.perf_counter()
    for _ in range(runs):
        await once()
    return (time.perf_counter() - started) / runs * 1e6


async def _bare_port_per_run_us(runs: int) -> float:
    """ai-utils' algorithm ported line for line to Python, nothing added: what the language itself costs."""
    ai = InstantAI()

    async def once() -> dict[str, Any]:
        tools_in = [WEATHER_TOOL]
        tools = [{"type": "function", "function": {k: v for k, v in t.items() if k != "function"}} for t in tools_in]
        messages = [{"role": "user", "content": "What's the weather in Mumbai, India?"}]
        response = await ai.run("m", {"messages": messages, "stream": False, "tools": tools})
        for call in response.get("tool_calls") or []:
            messages.append({"role": "assistant", "content": json.dumps(call)})
            selected = next(t for t in tools_in if t["name"] == call["name"])
            result = await selected["function"](**call["arguments"])
            messages.append({"role": "tool", "content": json.dumps(result), "name": selected["name"]})
        return await ai.run("m", {"messages": messages, "stream": False})

    for _ in range(min(runs, 2000)):
        await once()
    started = time.perf_counter()
    for _ in range(runs):
        await once()
    return (time.perf_counter() - started) / runs * 1e6


def _ensure_node_deps() -> None:
    if (NODE_DIR / "node_modules" / "@cloudflare" / "ai-utils").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed for the ai-utils comparison (bench/node-loop)")
    print("installing bench/node-loop (npm install) ...", flush=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


def _node_per_run_us(runs: int, strict: bool) -> float:
    out = subprocess.run(
        ["node", "loop.mjs", str(runs), "1", "1" if strict else "0"],
        cwd=NODE_DIR,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["per_run_us"][0]


def bench_overhead(runs: int, repetitions: int) -> dict[str, Any]:
    _ensure_node_deps()
    results: dict[str, Any] = {}
    for strict in (False, True):
        node, python = [], []
        for _ in range(repetitions):  # alternate, so a busy machine slows both alike
            node.append(_node_per_run_us(runs, strict))
            python.append(asyncio.run(_python_per_run_us(runs, strict)))
        key = "strict" if strict else "default"
        results[key] = {
            "node_us": statistics.median(node),
            "python_us": statistics.median(python),
            "ratio": statistics.median(python) / statistics.median(node),
            "node_all": node,
            "python_all": python,
        }
    results["bare_python_port_us"] = statistics.median(
        asyncio.run(_bare_port_per_run_us(runs)) for _ in range(repetitions)
    )
    return results


# -------------------------------------------------------------- concurrency


async def _eight_waiters(kind: str) -> float:
    async def wait_async(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    def wait_sync(i: int) -> int:
        time.sleep(0.2)
        return i

    function = wait_async if kind == "async" else wait_sync
    spec = {
        "name": "wait",
        "description": "Waits 200 ms.",
        "parameters": {"type": "object", "properties": {"i": {"type": "integer"}}},
        "function": function,
    }

    class EightCalls:
        async def run(self, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
            if inputs.get("tools"):
                return {"response": "", "tool_calls": [{"name": "wait", "arguments": {"i": i}} for i in range(8)]}
            return {"response": "done", "tool_calls": []}

    started = time.perf_counter()
    out = await run_with_tools(
        EightCalls(),
        "m",
        {"messages": [{"role": "user", "content": "wait"}], "tools": [spec]},
        max_recursive_tool_runs=0,
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert [m["content"] for m in out["messages"] if m["role"] == "tool"] == [str(i) for i in range(8)]
    return elapsed


def bench_concurrency(repetitions: int) -> dict[str, Any]:
    results = {}
    for kind in ("async", "sync"):
        times = [asyncio.run(_eight_waiters(kind)) for _ in range(repetitions)]
        results[kind] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return results


# --------------------------------------------------------------------- trim


def _bfcl_wheel() -> Path:
    wheels = sorted(CACHE.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"fetching bfcl-eval=={BFCL_VERSION} into bench/.cache ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"bfcl-eval=={BFCL_VERSION}",
                "--no-deps",
                "-d",
                str(CACHE),
                "-q",
            ],
            check=True,
        )
        wheels = sorted(CACHE.glob(f"bfcl_eval-{BFCL_VERSION}-*.whl"))
    return wheels[0]


def load_bfcl_multiple() -> list[dict[str, Any]]:
    with zipfile.ZipFile(_bfcl_wheel()) as wheel:
        questions = [
            json.loads(line)
            for line in wheel.read("bfcl_eval/data/BFCL_v4_multiple.json").decode().splitlines()
            if line.strip()
        ]
        answers = {
            a["id"]: a
            for a in (
                json.loads(line)
                for line in wheel.read("bfcl_eval/data/possible_answer/BFCL_v4_multiple.json").decode().splitlines()
                if line.strip()
            )
        }
    cases = []
    for q in questions:
        expected = [name for call in answers[q["id"]]["ground_truth"] for name in call]
        cases.append({"id": q["id"], "messages": q["question"][0], "tools": q["function"], "expected": expected})
    return cases


def with_distractors(cases: list[dict[str, Any]], size: int, seed: int = 0) -> list[dict[str, Any]]:
    """Each case's own functions plus functions of other cases, shuffled, up to ``size`` tools."""
    rng = random.Random(seed)
    pool = [(c["id"], t) for c in cases for t in c["tools"]]
    out = []
    for case in cases:
        names = {t["name"] for t in case["tools"]}
        extra = []
        while len(case["tools"]) + len(extra) < size:
            source, candidate = rng.choice(pool)
            if source != case["id"] and candidate["name"] not in names:
                names.add(candidate["name"])
                extra.append(candidate)
        tools = case["tools"] + extra
        rng.shuffle(tools)
        out.append(dict(case, tools=tools))
    return out


def _score(cases, kept_names, seconds) -> dict[str, Any]:
    survived = sum(all(e in kept for e in c["expected"]) for c, kept in zip(cases, kept_names))
    return {
        "cases": len(cases),
        "survival": survived / len(cases),
        "mean_kept": statistics.mean(len(k) for k in kept_names),
        "mean_tools": statistics.mean(len(c["tools"]) for c in cases),
        "ms_per_trim": statistics.mean(seconds) * 1000,
    }


def trim_with_bm25(cases: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    kept_names, seconds = [], []
    for case in cases:
        started = time.perf_counter()
        kept = bm25_trim_tools(case["tools"], None, "", case["messages"], top_k=top_k)
        seconds.append(time.perf_counter() - started)
        kept_names.append({t["name"] for t in kept})
    return _score(cases, kept_names, seconds)


async def trim_with_model(cases: list[dict[str, Any]], ai: Any, model: str) -> dict[str, Any]:
    kept_names, seconds, model_calls = [], [], 0

    class Counting:
        async def run(self, model_name: str, inputs: dict[str, Any]) -> Any:
            nonlocal model_calls
            model_calls += 1
            return await ai.run(model_name, {**inputs, "temperature": 0})

    counting = Counting()
    for case in cases:
        started = time.perf_counter()
        kept = await auto_trim_tools(case["tools"], counting, model, case["messages"])
        seconds.append(time.perf_counter() - started)
        kept_names.append({t["name"] for t in kept})
    return {**_score(cases, kept_names, seconds), "model_calls": model_calls}


def bench_trim(model_cases: int, use_model: bool) -> dict[str, Any]:
    shipped = load_bfcl_multiple()
    padded = with_distractors(shipped, 10)
    results: dict[str, Any] = {
        "tools_per_case": {str(n): sum(len(c["tools"]) == n for c in shipped) for n in (2, 3, 4)}
    }
    for label, cases in (("shipped", shipped), ("padded_to_10", padded)):
        for k in (1, 2, 3, 5):
            results[f"{label}/bm25_top{k}"] = trim_with_bm25(cases, k)
            results[f"{label}/bm25_top{k}@first{model_cases}"] = trim_with_bm25(cases[:model_cases], k)
    if use_model:
        from toolrun import DEFAULT_MODEL, AsyncAI

        ai = AsyncAI()
        asyncio.run(ai.run(DEFAULT_MODEL, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))  # load
        for label, cases in (("shipped", shipped), ("padded_to_10", padded)):
            results[f"{label}/auto_trim@first{model_cases}"] = asyncio.run(
                trim_with_model(cases[:model_cases], ai, DEFAULT_MODEL)
            )
    return results


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20000, help="loop runs per repetition (overhead)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--model-cases", type=int, default=40, help="BFCL cases for auto_trim_tools on the model")
    parser.add_argument("--no-model", action="store_true", help="skip auto_trim_tools on the real model")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()

    report: dict[str, Any] = {}
    print(
        f"== overhead per run: 1 round with 1 call + final answer, instant model "
        f"({args.runs} runs x {args.repetitions}, median) =="
    )
    overhead = report["overhead"] = bench_overhead(args.runs, args.repetitions)
    for key in ("default", "strict"):
        o = overhead[key]
        print(
            f"  {key:8} ai-utils (node) {o['node_us']:6.1f} us   toolrun {o['python_us']:6.1f} us   "
            f"ratio {o['ratio']:.2f}x"
        )
    print(
        f"  the same loop ported bare to Python (no timeouts, ids, validation, logging): "
        f"{overhead['bare_python_port_us']:.1f} us"
    )

    print(f"== 8 calls of 200 ms in one turn ({args.repetitions} runs) ==")
    concurrency = report["concurrency"] = bench_concurrency(args.repetitions)
    for kind, c in concurrency.items():
        print(f"  {kind:5} functions: median {c['median_ms']:.1f} ms, max {c['max_ms']:.1f} ms")

    print("== trimming on BFCL v4 multiple ==")
    trim = report["trim"] = bench_trim(args.model_cases, not args.no_model)
    print(f"  functions per case as shipped: {trim.pop('tools_per_case')}")
    for key, t in trim.items():
        extra = f", {t['model_calls']} model calls" if "model_calls" in t else ""
        print(
            f"  {key:34} survival {t['survival']:6.1%}  kept {t['mean_kept']:.2f} of {t['mean_tools']:.2f}  "
            f"{t['ms_per_trim']:9.3f} ms/trim  ({t['cases']} cases{extra})"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
