"""MCP servers as tools: every tool of a Model Context Protocol server, for ``run_with_tools``.

>>> async with create_tools_from_mcp(command=["python", "weather_server.py"]) as tools:
...     out = await run_with_tools(ai, model, {"messages": [...], "tools": tools})

>>> async with create_tools_from_mcp(servers=[
...     {"command": "npx -y @modelcontextprotocol/server-filesystem /tmp", "prefix": "fs_"},
...     {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ..."}, "prefix": "web_"},
... ]) as tools:
...     ...

>>> with create_tools_from_mcp_sync(command="python weather_server.py") as tools:   # no event loop
...     out = run_with_tools_sync(ai, model, {"messages": [...], "tools": tools})

Built on the official ``mcp`` SDK (stdio and Streamable HTTP, either protocol era);
each tool is a :class:`~toolrun.tools.Tool` whose ``parameters`` is the server's
``inputSchema`` and whose function makes the ``tools/call``. The SDK is imported
when a server starts, not with this module.
"""

from ..._errors import MCPServerError
from ._api import MCPTools, MCPToolsSync, create_tools_from_mcp, create_tools_from_mcp_sync
from ._content import EMPTY_RESULT
from ._spec import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "EMPTY_RESULT",
    "MAX_RESPONSE_BYTES",
    "MCPServerError",
    "MCPTools",
    "MCPToolsSync",
    "create_tools_from_mcp",
    "create_tools_from_mcp_sync",
]
