"""Tool sources: where the tools a model may call come from.

- :func:`tool` — a Python function, described by its type hints and docstring;
- :func:`create_tools_from_openapi_spec` — every operation of an OpenAPI document;
- :func:`create_tools_from_mcp` (and :func:`create_tools_from_mcp_sync`) — every tool of MCP servers;
- :class:`Tool` — the object all of them produce: what the model is told
  (``name``, ``description``, ``parameters``) plus the code that runs (``function``).

The loop that runs them is :mod:`toolrun.embedded`.
"""

from ._convert import as_tool
from ._function import tool
from ._tool import Tool, tool_name_and_description
from .mcp import create_tools_from_mcp, create_tools_from_mcp_sync
from .openapi import create_tools_from_openapi_spec

__all__ = [
    "Tool",
    "as_tool",
    "create_tools_from_mcp",
    "create_tools_from_mcp_sync",
    "create_tools_from_openapi_spec",
    "tool",
    "tool_name_and_description",
]
