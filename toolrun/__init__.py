"""toolrun: Workers AI-style function calling — traditional and embedded — on open models that run anywhere.

>>> from toolrun import AI, DEFAULT_MODEL
>>> ai = AI()
>>> out = ai.run(DEFAULT_MODEL, {"messages": [...], "tools": [...]})   # {"response", "tool_calls", "usage"}
"""

from __future__ import annotations

from typing import Any

from ._errors import (
    ContextOverflowError,
    EngineError,
    InvalidInputError,
    MCPServerError,
    ModelFetchError,
    ModelNotFoundError,
    ModelUnavailableError,
    OpenAPISpecError,
    OverloadedError,
    ToolChoiceError,
    ToolExecutionError,
    ToolrunError,
    ToolSchemaError,
)
from ._version import __version__ as __version__
from .ai import AI, DEFAULT_MODEL, AsyncAI, Catalog, ModelEntry

# The embedded helpers are re-exported lazily: importing toolrun stays cheap.
_EMBEDDED = {
    "run_with_tools",
    "run_with_tools_sync",
    "tool",
    "Tool",
    "auto_trim_tools",
    "bm25_trim_tools",
    "create_tools_from_openapi_spec",
    "create_tools_from_mcp",
    "create_tools_from_mcp_sync",
}


def __getattr__(name: str) -> Any:
    if name in _EMBEDDED:
        from . import embedded, tools

        return getattr(tools if name in tools.__all__ else embedded, name)
    raise AttributeError(f"module 'toolrun' has no attribute {name!r}")


__all__ = [
    "AI",
    "AsyncAI",
    "DEFAULT_MODEL",
    "Catalog",
    "ModelEntry",
    "ToolrunError",
    "InvalidInputError",
    "ToolSchemaError",
    "ToolChoiceError",
    "ContextOverflowError",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "ModelFetchError",
    "EngineError",
    "OverloadedError",
    "OpenAPISpecError",
    "ToolExecutionError",
    "MCPServerError",
    *sorted(_EMBEDDED),
]
