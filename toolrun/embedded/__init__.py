"""Embedded function calling: the model calls Python functions, toolrun runs them and feeds back the results.

The Python form of ``@cloudflare/ai-utils``' ``runWithTools``, ``tool`` and
``autoTrimTools``, for any client with a ``run(model, inputs)`` method.
"""

from ._run_with_tools import (
    DEFAULT_MAX_RECURSIVE_TOOL_RUNS,
    DEFAULT_TOOL_TIMEOUT,
    ToolRunStream,
    run_with_tools,
)
from ._sync import ToolRunSyncStream, run_with_tools_sync
from ._trim import auto_trim_tools, bm25_trim_tools
from ..tools import Tool, as_tool, create_tools_from_openapi_spec, tool

__all__ = [
    "DEFAULT_MAX_RECURSIVE_TOOL_RUNS",
    "DEFAULT_TOOL_TIMEOUT",
    "Tool",
    "ToolRunStream",
    "ToolRunSyncStream",
    "as_tool",
    "auto_trim_tools",
    "bm25_trim_tools",
    "create_tools_from_openapi_spec",
    "run_with_tools",
    "run_with_tools_sync",
    "tool",
]
