"""BFCL v4 accuracy of toolrun's default model: ``toolrun eval bfcl`` with the benchmark's settings.

    .venv/bin/python bench/bench_bfcl.py [--limit 40] [--categories simple_python,multiple,...] [--model M]

The first ``--limit`` cases of ``simple_python``, ``multiple``, ``parallel`` and ``irrelevance``, greedy,
scored with BFCL's own AST checker (data and checker from the ``bfcl-eval`` wheel in toolrun's user
cache; see ``toolrun/eval``). The table goes to stdout, the results to ``bench/.cache/bfcl-results.json``
(``toolrun eval chart`` draws several such files side by side). Any other ``toolrun eval bfcl`` option
can follow, e.g. ``--offset 40`` for the held-out cases or ``--threads 1`` on a busy machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from toolrun.eval import BFCL_VERSION, DEFAULT_CATEGORIES, BfclData, bfcl_cache_dir, fetch_bfcl_wheel  # noqa: E402

RESULTS = HERE / ".cache" / "bfcl-results.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="first N cases of each category (default 40)")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES), help="comma-separated categories")
    parser.add_argument("--model", default=None, help="catalog name (default: toolrun's default model)")
    parser.add_argument("--output", default=str(RESULTS), help=f"results JSON (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-case lines")
    args, rest = parser.parse_known_args()

    from toolrun.cli import app

    argv = ["eval", "bfcl", "--limit", str(args.limit), "--output", args.output]
    argv += [a for c in args.categories.split(",") if c.strip() for a in ("--category", c.strip())]
    argv += ["--model", args.model] if args.model else []
    argv += [] if args.quiet else ["--verbose"]
    app(argv + rest)


# ── For bench_remote.py (it scores remote engines per category with these); new code: toolrun.eval.run_bfcl ──

WHEEL = bfcl_cache_dir() / f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"


def ensure_wheel() -> Path:
    return fetch_bfcl_wheel()


def load_checker() -> tuple[Any, Any]:
    data = BfclData(ensure_wheel())
    return data.checker(), data.python_language()


def load_category(_zf: Any, category: str, limit: int) -> list[Any]:
    return BfclData(ensure_wheel()).cases(category, limit=limit)


async def run_category(
    ai: Any, model: str, category: str, items: list[Any], _checker: Any, _language: Any, verbose: bool
) -> dict[str, Any]:
    from toolrun.eval import run_bfcl

    def show(case: Any, record: dict[str, Any]) -> None:
        if verbose:
            print(
                f"  {'ok  ' if record['correct'] else 'FAIL'} {case.id:<22} {record['seconds']:6.1f}s "
                f"{record['tool_calls']}"[:200]
                + ("" if record["correct"] else f"  [{record['why'][:120]}]"),
                flush=True,
            )

    results = await run_bfcl(ai, model, categories=[category], limit=len(items), on_case=show)
    return {**results["summary"][0], "records": results["cases"][category]}


if __name__ == "__main__":
    main()
