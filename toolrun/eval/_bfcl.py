"""Running BFCL's single-turn categories on a catalog model and scoring them with BFCL's own checker.

Each case goes through ``AsyncAI.run`` exactly as a user's request would (the
local engine, a remote OpenAI-compatible one, or a toolrun server reached
through its ``/v1`` endpoint), with the case's functions as tools and
``tool_choice: "auto"``. Greedy decoding is the default so that two runs, or two
models, can be compared case by case.

Besides BFCL's verdict, every case records the calls that were not usable:
dropped by toolrun's call guard (unknown tool, arguments against the schema),
returned but failing the case's schema, or left in the text unparsed.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from .._schema import validator
from ..ai import AsyncAI
from ._data import BFCL_VERSION, CATEGORIES, DEFAULT_CATEGORIES, BfclData, Case, Checker
from ._tools import to_tool

#: Text that means the model tried to write a call that never parsed.
_CALL_MARKERS = ("<tool_call>", "<function", "<name>", '{"name"')

#: ``on_case(case, record)`` after each case; ``on_start(total)`` once the cases are known.
CaseCallback = Callable[[Case, dict[str, Any]], None]


class _DroppedCalls(logging.Handler):
    """Counts the calls toolrun's guard drops (it logs each one) while a case runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("dropping an invalid tool call"):
            self.messages.append(message.split(": ", 1)[-1])


def endpoint_model(ai: AsyncAI, base_url: str, model: str, api_key_env: str | None = None) -> str:
    """Add an OpenAI-compatible endpoint (a toolrun server's ``/v1``, vLLM, …) to ``ai``'s catalog; its name."""
    name = f"{base_url.rstrip('/')}#{model}"
    fields: dict[str, Any] = {
        "base_url": base_url.rstrip("/"),
        "remote_model": model,
        "description": f"{model} at {base_url}",
    }
    if api_key_env:
        fields["api_key_env"] = api_key_env
    # The same path as a [models] table in the config file, so the endpoint gets every default a user's would.
    ai.catalog.update_from_config({"models": {name: fields}}, "toolrun eval --base-url")
    return name


def _invalid_calls(calls: Sequence[dict[str, Any]], tools: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for call in calls:
        tool = tools.get(call.get("name", ""))
        if tool is None:
            problems.append(f"unknown tool {call.get('name')!r}")
            continue
        error = next(iter(validator(tool["parameters"]).iter_errors(call.get("arguments"))), None)
        if error is not None:
            problems.append(f"{call['name']}: {error.message}")
    return problems


def _verdict(case: Case, calls: list[dict[str, Any]], checker: Checker, language: Any, model: str) -> tuple[bool, str]:
    kind = CATEGORIES[case.category]
    if kind == "no_call":
        return not calls, f"made {len(calls)} call(s)" if calls else ""
    if kind == "some_call":
        return bool(calls), "" if calls else "no call"
    if not calls:
        return False, "no call"
    output = [{c["name"]: c["arguments"]} for c in calls]
    try:
        result = checker(case.functions, output, case.ground_truth, language, case.category, model)
    except Exception as exc:  # noqa: BLE001 - the checker trips over odd outputs; that case is wrong
        return False, f"checker error: {exc!r}"
    if result.get("valid"):
        return True, ""
    errors = result.get("error")
    first = errors[0] if isinstance(errors, list) and errors else errors
    return False, f"{result.get('error_type', '')}: {first}"


async def _run_case(
    ai: AsyncAI, model: str, case: Case, inputs: dict[str, Any], checker: Checker, language: Any
) -> dict[str, Any]:
    tools_list = [to_tool(f) for f in case.functions]
    tools = {t["name"]: t for t in tools_list}
    dropped = _DroppedCalls()
    guard_log = logging.getLogger("toolrun.ai")
    guard_log.addHandler(dropped)  # also keeps the guard's warnings off the terminal while the bar runs
    error = None
    started = time.perf_counter()
    try:
        out: Any = await ai.run(model, {"messages": case.messages, "tools": tools_list, **inputs})
    except Exception as exc:  # noqa: BLE001 - one failing case is a result, not the end of the run
        out = {"response": "", "tool_calls": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
        error = f"{type(exc).__name__}: {exc}"
    finally:
        guard_log.removeHandler(dropped)
    seconds = time.perf_counter() - started
    calls = [{"name": c["name"], "arguments": c["arguments"]} for c in out.get("tool_calls") or []]
    response = out.get("response") or ""
    invalid = [f"dropped by the guard: {m}" for m in dropped.messages] + _invalid_calls(calls, tools)
    if any(marker in response for marker in _CALL_MARKERS):
        invalid.append("a call left unparsed in the text")
    correct, why = _verdict(case, calls, checker, language, model.replace("/", "_"))
    if error:
        correct, why = False, error
    usage = out.get("usage") or {}
    return {
        "id": case.id,
        "correct": correct,
        "why": why,
        "error": error,
        "invalid": invalid,
        "seconds": round(seconds, 3),
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "tool_calls": calls,
        "response": response,
    }


def summarize(category: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One category's figures from its case records."""
    n = len(records)
    correct = sum(bool(r["correct"]) for r in records)
    seconds = sum(r["seconds"] for r in records)
    return {
        "category": category,
        "cases": n,
        "correct": correct,
        "accuracy": round(100.0 * correct / n, 1) if n else 0.0,
        "invalid_calls": sum(len(r["invalid"]) for r in records),
        "errors": sum(1 for r in records if r["error"]),
        "prompt_tokens": sum(r["prompt_tokens"] for r in records),
        "completion_tokens": sum(r["completion_tokens"] for r in records),
        "seconds": round(seconds, 2),
        "median_seconds": round(statistics.median(r["seconds"] for r in records), 2) if n else 0.0,
    }


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


async def run_bfcl(
    ai: AsyncAI,
    model: str,
    *,
    categories: Iterable[str] = DEFAULT_CATEGORIES,
    offset: int = 0,
    limit: int | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    data: BfclData | None = None,
    label: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_case: CaseCallback | None = None,
) -> dict[str, Any]:
    """Run cases ``offset`` … ``offset + limit`` of each category on ``model``; the results document.

    The document is what ``toolrun eval bfcl --output`` writes and ``toolrun eval chart`` reads:
    ``summary`` (one row per category: accuracy, invalid calls, errors, tokens, seconds) and ``cases``
    (per category, every case's calls, answer text, verdict and timing), with the settings that
    produced them.
    """
    from .._version import __version__

    data = data or BfclData.default()
    categories = list(dict.fromkeys(categories))
    cases = {category: data.cases(category, offset=offset, limit=limit) for category in categories}
    checker = data.checker()
    language = data.python_language()
    entry = ai.catalog.get(model)
    inputs: dict[str, Any] = {"temperature": temperature}
    if max_tokens is not None:
        inputs["max_tokens"] = max_tokens
    if on_start:
        on_start(sum(len(c) for c in cases.values()))
    started_at = datetime.now(UTC)
    machine = _machine()
    records: dict[str, list[dict[str, Any]]] = {}
    for category, items in cases.items():
        records[category] = []
        for case in items:
            record = await _run_case(ai, entry.name, case, inputs, checker, language)
            records[category].append(record)
            if on_case:
                on_case(case, record)
    return {
        "benchmark": "BFCL v4",
        "bfcl_eval": BFCL_VERSION,
        "model": entry.name,
        "label": label or entry.name,
        "source": entry.source,
        "settings": {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "offset": offset,
            "limit": limit,
            "tool_choice": "auto",
        },
        "toolrun": __version__,
        "started": started_at.isoformat(timespec="seconds"),
        "machine": machine,
        "summary": [summarize(category, items) for category, items in records.items()],
        "cases": records,
    }
