"""The error of an MCP server that cannot be used at all (it would not start, answer, or list its tools)."""

from __future__ import annotations

from ..._errors import ToolrunError


class MCPServerError(ToolrunError):
    """An MCP server could not be started, reached, or listed.

    Raised when entering :func:`create_tools_from_mcp`; a server that fails
    later (exits, goes away) is not an exception: its tools answer
    ``{"error": ...}`` and the run goes on.
    """

    status_code = 502
    code = "mcp_server_error"
