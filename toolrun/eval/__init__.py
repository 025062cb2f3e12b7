"""Benchmarks users run on any catalog model: BFCL v4's single-turn categories, scored by BFCL's own checker.

>>> from toolrun import AsyncAI
>>> from toolrun.eval import run_bfcl, chart_results
>>> results = await run_bfcl(AsyncAI(), "default", categories=["simple_python", "irrelevance"], limit=40)
>>> results["summary"][0]["accuracy"]
>>> chart_results([results, other], "chart.png")

The command line is ``toolrun eval bfcl`` and ``toolrun eval chart``. BFCL's data and checker come
from the ``bfcl-eval`` wheel, fetched without its dependencies into toolrun's user cache.
"""

from ._bfcl import endpoint_model, run_bfcl, summarize
from ._chart import chart_results, load_results, series_label
from ._data import (
    BFCL_VERSION,
    CATEGORIES,
    DEFAULT_CATEGORIES,
    BfclData,
    Case,
    EvalDataError,
    bfcl_cache_dir,
    fetch_bfcl_wheel,
)
from ._tools import to_json_schema, to_tool

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "BfclData",
    "Case",
    "EvalDataError",
    "bfcl_cache_dir",
    "chart_results",
    "endpoint_model",
    "fetch_bfcl_wheel",
    "load_results",
    "run_bfcl",
    "series_label",
    "summarize",
    "to_json_schema",
    "to_tool",
]
