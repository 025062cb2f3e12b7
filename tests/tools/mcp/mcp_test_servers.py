"""Small real MCP servers for the tests, written with the ``mcp`` SDK's server side.

    python mcp_test_servers.py weather [--http | --legacy]   # MCPServer: weather and misbehaving tools
    python mcp_test_servers.py paged [--http]                # low-level Server: 250 tools, 100 a page
    python mcp_test_servers.py hostile URL                   # low-level Server: refused schemas, $ref to URL

stdio by default; with ``--http`` it serves Streamable HTTP on 127.0.0.1, on a
port the OS picks, and prints that port as its first line. ``--legacy`` (stdio)
serves only the 2025 handshake era, as most servers in the wild do: the client's
2026 ``server/discover`` probe finds no such method and it falls back to
``initialize``. Calls are appended, one JSON line each, to the file named by
``--call-log PATH`` or ``TOOLRUN_TEST_CALL_LOG``, when either is given.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server

PAGE_SIZE = 100
PAGED_TOOLS = 250


CALL_LOG = os.environ.get("TOOLRUN_TEST_CALL_LOG")


def log_call(name: str, arguments: dict[str, Any]) -> None:
    path = CALL_LOG
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "arguments": arguments, "pid": os.getpid()}) + "\n")


# ------------------------------------------------------------------ weather


def weather_server() -> MCPServer:
    mcp = MCPServer("weather", log_level="WARNING")

    @mcp.tool()
    def get_weather(city: str) -> str:
        """Gets weather information of a particular city.

        Args:
            city: The city name.
        """
        log_call("get_weather", {"city": city})
        return f"The weather in {city} is 31 degrees Celsius and sunny."

    @mcp.tool()
    def forecast(city: str, days: int) -> dict[str, Any]:
        """A multi-day forecast, as structured content."""
        log_call("forecast", {"city": city, "days": days})
        return {"city": city, "days": [{"day": d + 1, "high_c": 30 + d} for d in range(days)]}

    @mcp.tool()
    def fail(reason: str) -> str:
        """Always fails, saying why."""
        raise ToolError(reason)

    @mcp.tool()
    def crash() -> str:
        """Fails with an exception the server did not expect."""
        raise RuntimeError("secret internal detail")

    @mcp.tool()
    async def sleep(seconds: float) -> str:
        """Sleeps, then answers."""
        log_call("sleep", {"seconds": seconds})
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    @mcp.tool()
    def pid() -> str:
        """The server's process id."""
        return str(os.getpid())

    @mcp.tool()
    def exit_now() -> str:
        """Ends the server process at once."""
        log_call("exit_now", {})
        os._exit(3)

    @mcp.tool()
    def media() -> types.CallToolResult:
        """Text, an image, audio, a resource link, an embedded text and a blob resource."""
        png = base64.b64encode(b"\x89PNG" + bytes(2996)).decode()
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text="Here is the chart."),
                types.ImageContent(type="image", data=png, mime_type="image/png"),
                types.AudioContent(type="audio", data=base64.b64encode(bytes(1000)).decode(), mime_type="audio/wav"),
                types.ResourceLink(
                    type="resource_link",
                    uri="file:///data/report.pdf",
                    name="report.pdf",
                    mime_type="application/pdf",
                    size=123456,
                ),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="file:///data/notes.txt", mime_type="text/plain", text="note one"
                    ),
                ),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.BlobResourceContents(
                        uri="file:///data/blob.bin",
                        mime_type="application/octet-stream",
                        blob=base64.b64encode(bytes(5000)).decode(),
                    ),
                ),
            ]
        )

    @mcp.tool()
    def structured_only() -> types.CallToolResult:
        """Structured content and no text."""
        return types.CallToolResult(content=[], structured_content={"temperature_c": 31, "sky": "clear"})

    @mcp.tool()
    def nothing() -> types.CallToolResult:
        """Succeeds with no content at all."""
        return types.CallToolResult(content=[])

    @mcp.tool()
    def big(size: int) -> str:
        """``size`` characters of text (a two-byte character every tenth)."""
        return ("abcdefghi\u00e9" * (size // 10 + 1))[:size]

    @mcp.tool()
    async def add_tool(name: str, ctx: Context) -> str:
        """Adds a tool named ``name`` and tells the client its tools changed."""

        def added() -> str:
            return f"I am {name}"

        mcp.add_tool(added, name=name, description=f"The tool {name}.")
        await ctx.notify_tools_changed()  # 2026 era: to subscriptions/listen streams
        await ctx.request_context.session.send_tool_list_changed()  # 2025 era: unasked
        return "added"

    return mcp


# ------------------------------------------------------------------ paged


def paged_server() -> Server[Any]:
    tools = [
        types.Tool(
            name=f"tool_{i:03d}",
            description=f"Tool number {i}.",
            input_schema={"type": "object", "properties": {"x": {"type": "integer"}}},
        )
        for i in range(PAGED_TOOLS)
    ]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + PAGE_SIZE
        return types.ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text=f"{params.name} got {json.dumps(params.arguments, sort_keys=True)}")
            ]
        )

    return Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)


# ------------------------------------------------------------------ hostile


def hostile_server(ref_url: str) -> Server[Any]:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(60):  # 120 levels of JSON: over toolrun's 100, under pydantic's serialisation limit
        deep = {"type": "object", "properties": {"x": deep}}
    tools = [
        types.Tool(
            name="remote_ref",
            description="Its schema points at a URL.",
            input_schema={"type": "object", "properties": {"city": {"$ref": ref_url}}},
        ),
        types.Tool(
            name="file_ref",
            description="Its schema points at a file.",
            input_schema={"type": "object", "properties": {"city": {"$ref": "file:///etc/passwd"}}},
        ),
        types.Tool(name="too_deep", description="Its schema nests 120 levels.", input_schema=deep),
        types.Tool(
            name="bad_schema",
            description="Its schema breaks the meta-schema.",
            input_schema={"type": "object", "properties": {"city": {"type": 42}}},
        ),
        types.Tool(
            name="get/weather now",
            description="A name with characters tool names cannot have.",
            input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        ),
        types.Tool(
            name="fine",
            description="x" * 10_000,
            input_schema={
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/a"}},
                "$defs": {"a": {"type": "string"}},
            },
        ),
    ]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"called {params.name}")])

    return Server("hostile", on_list_tools=list_tools, on_call_tool=call_tool)


# ------------------------------------------------------------------ running


def serve_http(app: Any) -> None:
    import uvicorn

    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says it is TCP, and without it every small response waits ~40 ms (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    print(sock.getsockname()[1], flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    anyio.run(lambda: server.serve(sockets=[sock]))


async def serve_lowlevel_stdio(server: Server[Any], legacy: bool = False) -> None:
    async with stdio_server() as (read_stream, write_stream):
        if not legacy:
            await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        # The handshake-only loop: what a 2025-era server speaks. It answers the client's
        # server/discover probe with "method not found", and the client falls back to initialize.
        async with server.lifespan(server) as state:
            await serve_loop(
                server,
                read_stream,
                write_stream,
                lifespan_state=state,
                init_options=server.create_initialization_options(),
            )


def main(argv: list[str]) -> None:
    global CALL_LOG
    kind, http, legacy = argv[0], "--http" in argv, "--legacy" in argv
    if "--call-log" in argv:
        CALL_LOG = argv[argv.index("--call-log") + 1]
    if kind == "weather":
        mcp = weather_server()
        if http:
            serve_http(mcp.streamable_http_app())
        else:
            anyio.run(serve_lowlevel_stdio, mcp._lowlevel_server, legacy)
        return
    low = paged_server() if kind == "paged" else hostile_server(argv[1])
    if http:
        serve_http(low.streamable_http_app())
    else:
        anyio.run(serve_lowlevel_stdio, low)


if __name__ == "__main__":
    main(sys.argv[1:])


# ------------------------------------------------------------------ flood (appended for issue #27, 9d)

FLOOD_ITEMS = 200_000


def flood_server() -> Server[Any]:
    """One tool, ``flood``, whose result is FLOOD_ITEMS one-character text items (about 6 MB of JSON).

    Run it with ``python -c "import mcp_test_servers as s; s.run_flood()"`` from this folder.
    """
    tools = [types.Tool(name="flood", description="Many tiny items.", input_schema={"type": "object"})]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="x") for _ in range(FLOOD_ITEMS)])

    return Server("flood", on_list_tools=list_tools, on_call_tool=call_tool)


def run_flood() -> None:
    anyio.run(serve_lowlevel_stdio, flood_server())
