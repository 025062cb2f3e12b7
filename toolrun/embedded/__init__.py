"""Embedded function calling: the model calls Python functions, toolrun runs them and feeds back the results.

The Python form of ``@cloudflare/ai-utils``' ``runWithTools`` and
``autoTrimTools``, for any client with a ``run(model, inputs)`` method. The
tools themselves come from :mod:`toolrun.tools`.
"""

from ._client import ModelClient
from ._loop import run_with_tools
from ._options import DEFAULT_MAX_RECURSIVE_TOOL_RUNS, DEFAULT_TOOL_TIMEOUT, RunOptions, TrimFunction
from ._stream import ToolRunStream
from ._sync import ToolRunSyncStream, run_with_tools_sync
from ._trim import auto_trim_tools, bm25_trim_tools

__all__ = [
    "DEFAULT_MAX_RECURSIVE_TOOL_RUNS",
    "DEFAULT_TOOL_TIMEOUT",
    "ModelClient",
    "RunOptions",
    "ToolRunStream",
    "ToolRunSyncStream",
    "TrimFunction",
    "auto_trim_tools",
    "bm25_trim_tools",
    "run_with_tools",
    "run_with_tools_sync",
]
