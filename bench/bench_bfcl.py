"""BFCL v4 accuracy benchmark for toolrun's default model.

Scores toolrun's function calling on the first N cases of BFCL v4's ``simple_python``,
``multiple``, ``parallel`` and ``irrelevance`` categories with BFCL's own AST checker.

    .venv/bin/python bench/bench_bfcl.py [--limit 40] [--categories simple_python,multiple,...]

Data and checker come from the ``bfcl-eval`` wheel (downloaded with ``pip download`` into
``bench/.cache`` when missing, then extracted to ``bench/.cache/bfcl`` and put on ``sys.path``;
the package is never installed). The checker's ``model_config`` import pulls in every vendor
SDK, so a tiny stand-in module is registered for it (only ``underscore_to_dot`` is consulted,
and we report function names exactly as BFCL spells them, so it is ``False``).

Independently of the checker, every returned call is validated against its tool's JSON Schema
with ``jsonschema``; calls to unknown tools or with non-dict / invalid arguments are counted as
"invalid" (toolrun validates calls itself, so this should stay 0).

Results go to stdout (a table) and ``bench/.cache/bfcl-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
VERSION = "2026.3.23"
WHEEL = CACHE / f"bfcl_eval-{VERSION}-py3-none-any.whl"
EXTRACTED = CACHE / "bfcl"
RESULTS = CACHE / "bfcl-results.json"
CATEGORIES = ["simple_python", "multiple", "parallel", "irrelevance"]

REFERENCE = (
    "raw template + lenient parser: simple 87.5 / multiple 70 / parallel 0 / irrelevance 22.5 %; "
    "llama-cpp-python chatml-function-calling: 45 / 27.5 / 0 / 65 %; "
    "llama-server --jinja: 0 / 0 / 0 / 100 %; "
    "goal ≥ 92.5 / 85 / 60 / 80 %"
)

sys.path.insert(0, str(ROOT))


# ── data ────────────────────────────────────────────────────────────────────────────────────

def ensure_wheel() -> Path:
    if not WHEEL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"downloading bfcl-eval=={VERSION} into {CACHE} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"bfcl-eval=={VERSION}", "--no-deps", "-d", str(CACHE)],
            check=True,
        )
    if not WHEEL.exists():
        raise SystemExit(f"pip download did not produce {WHEEL}")
    marker = EXTRACTED / ".extracted"
    if not marker.exists() or marker.read_text() != WHEEL.name:
        with zipfile.ZipFile(WHEEL) as zf:
            zf.extractall(EXTRACTED)
        marker.write_text(WHEEL.name)
    return WHEEL


def read_jsonl(zf: zipfile.ZipFile, name: str) -> list[dict]:
    with zf.open(name) as f:
        return [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line.strip()]


def load_category(zf: zipfile.ZipFile, category: str, limit: int) -> list[tuple[dict, dict | None]]:
    names = set(zf.namelist())
    data_name = f"bfcl_eval/data/BFCL_v4_{category}.json"
    if data_name not in names:
        raise SystemExit(f"{data_name} is not in {WHEEL.name}")
    cases = read_jsonl(zf, data_name)[:limit]
    answer_name = f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json"
    answers: dict[str, dict] = {}
    if answer_name in names:
        answers = {a["id"]: a for a in read_jsonl(zf, answer_name)}
    elif category != "irrelevance":
        raise SystemExit(f"{answer_name} is not in {WHEEL.name}")
    return [(case, answers.get(case["id"])) for case in cases]


# ── checker ─────────────────────────────────────────────────────────────────────────────────

def load_checker():
    sys.path.insert(0, str(EXTRACTED))
    # bfcl_eval.constants.model_config imports every vendor SDK (anthropic, openai, ...); the
    # AST checker only reads MODEL_CONFIG_MAPPING[name].underscore_to_dot, so stand it in.
    stub = types.ModuleType("bfcl_eval.constants.model_config")

    class _Cfg:
        underscore_to_dot = False

    class _Mapping(dict):
        def __missing__(self, key):
            return _Cfg()

    stub.MODEL_CONFIG_MAPPING = _Mapping()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON


# ── BFCL function docs → JSON Schema tools ──────────────────────────────────────────────────

TYPE_MAP = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "bool": "boolean",
    "str": "string",
    "String": "string",
}


def to_json_schema(node):
    """BFCL's parameter schema (types dict/float/tuple/any ...) → JSON Schema, recursively."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    t = node.get("type")
    if t is not None:
        if t == "any":
            pass  # {} — anything
        elif isinstance(t, list):
            out["type"] = [TYPE_MAP.get(x, x) for x in t if x != "any"] or None
            if out["type"] is None:
                del out["type"]
        else:
            out["type"] = TYPE_MAP.get(t, t)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        pass  # free-form object
    return out


def to_tool(func: dict) -> dict:
    params = to_json_schema(func.get("parameters") or {"type": "dict", "properties": {}})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return {"name": func["name"], "description": func.get("description", ""), "parameters": params}


# ── run ─────────────────────────────────────────────────────────────────────────────────────

def validate_calls(calls: list[dict], tools: dict[str, dict]) -> list[str]:
    import jsonschema

    problems = []
    for call in calls:
        name = call.get("name")
        args = call.get("arguments")
        if name not in tools:
            problems.append(f"unknown tool {name!r}")
            continue
        if not isinstance(args, dict):
            problems.append(f"{name}: arguments are {type(args).__name__}, not an object")
            continue
        schema = tools[name]["parameters"]
        try:
            jsonschema.validate(args, schema, cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as exc:
            problems.append(f"{name}: {exc.message}")
        except jsonschema.SchemaError as exc:  # our conversion produced a bad schema
            problems.append(f"{name}: bad converted schema: {exc.message}")
    return problems


def score(category, case, answer, calls, checker, language, model_name) -> tuple[bool, str]:
    if category == "irrelevance":
        return (len(calls) == 0, "" if not calls else f"made {len(calls)} call(s)")
    if not calls:
        return False, "no call"
    model_output = [{c["name"]: c["arguments"] if isinstance(c["arguments"], dict) else {}} for c in calls]
    try:
        result = checker(case["function"], model_output, answer["ground_truth"], language, category, model_name)
    except Exception as exc:  # the checker can trip over odd outputs; count as wrong
        return False, f"checker error: {exc!r}"
    if result.get("valid"):
        return True, ""
    err = result.get("error")
    return False, f"{result.get('error_type', '')}: {err[0] if isinstance(err, list) and err else err}"


async def run_category(ai, model, category, items, checker, language, verbose) -> dict:
    records = []
    for case, answer in items:
        tools_list = [to_tool(f) for f in case["function"]]
        tools = {t["name"]: t for t in tools_list}
        messages = case["question"][0]
        started = time.perf_counter()
        error = None
        try:
            out = await ai.run(model, {"messages": messages, "tools": tools_list, "temperature": 0})
        except Exception as exc:
            out = {"response": "", "tool_calls": []}
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        calls = out.get("tool_calls") or []
        invalid = validate_calls(calls, tools)
        ok, why = score(category, case, answer, calls, checker, language, model.replace("/", "_"))
        if error:
            ok, why = False, error
        rec = {
            "id": case["id"],
            "correct": ok,
            "why": why,
            "seconds": round(seconds, 3),
            "invalid": invalid,
            "tool_calls": [{"name": c.get("name"), "arguments": c.get("arguments")} for c in calls],
            "response": out.get("response"),
        }
        records.append(rec)
        if verbose:
            mark = "ok  " if ok else "FAIL"
            print(f"  {mark} {case['id']:<18} {seconds:5.1f}s {json.dumps(rec['tool_calls'])[:160]}"
                  + (f"  [{why[:120]}]" if not ok else ""), flush=True)
    n = len(records)
    return {
        "category": category,
        "cases": n,
        "correct": sum(r["correct"] for r in records),
        "accuracy": round(100.0 * sum(r["correct"] for r in records) / n, 1) if n else 0.0,
        "invalid_calls": sum(len(r["invalid"]) for r in records),
        "mean_seconds": round(statistics.fmean(r["seconds"] for r in records), 2) if n else 0.0,
        "records": records,
    }


def print_table(summaries: list[dict], model: str, limit: int) -> None:
    print()
    print(f"BFCL v4 ({VERSION}) — {model} — first {limit} cases per category, temperature 0, AST checker")
    header = f"{'category':<15} {'cases':>5} {'accuracy %':>10} {'invalid calls':>13} {'mean s/case':>11}"
    print(header)
    print("-" * len(header))
    for s in summaries:
        print(f"{s['category']:<15} {s['cases']:>5} {s['accuracy']:>10.1f} {s['invalid_calls']:>13} {s['mean_seconds']:>11.2f}")
    print()
    print("reference (issue): " + REFERENCE)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="first N cases of each category (default 40)")
    parser.add_argument("--categories", default=",".join(CATEGORIES),
                        help=f"comma-separated subset of {','.join(CATEGORIES)}")
    parser.add_argument("--model", default=None, help="model id (default: toolrun.DEFAULT_MODEL)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-case lines")
    args = parser.parse_args()
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]

    ensure_wheel()
    checker, language = load_checker()
    from toolrun import DEFAULT_MODEL, AsyncAI

    model = args.model or DEFAULT_MODEL
    ai = AsyncAI()
    summaries = []
    with zipfile.ZipFile(WHEEL) as zf:
        for category in categories:
            items = load_category(zf, category, args.limit)
            print(f"── {category}: {len(items)} cases", flush=True)
            summaries.append(await run_category(ai, model, category, items, checker, language, not args.quiet))

    print_table(summaries, model, args.limit)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bfcl_eval": VERSION, "model": model, "limit": args.limit, "reference": REFERENCE,
        "summary": [{k: v for k, v in s.items() if k != "records"} for s in summaries],
        "categories": summaries,
    }, indent=2, default=str))
    print(f"results: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
