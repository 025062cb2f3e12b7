"""MCP tools: per-call overhead over stdio and Streamable HTTP against the same function as a tool(), and start-up.

    .venv/bin/python bench/bench_mcp.py [--calls 2000] [--rounds 10] [--tools 200] [--starts 5]

1. Per call: one ``get_weather(city)`` function, called the way run_with_tools
   calls a tool (``await tool.acall(arguments)``) three ways: made a tool with
   ``tool()`` in this process (a sync function runs on a thread of its own; the
   same as an ``async def`` for comparison); served by an MCP server (the SDK's
   ``MCPServer``) started over stdio by ``create_tools_from_mcp``; and by the
   same server over Streamable HTTP on 127.0.0.1. The kinds take turns call by
   call, so load on the machine hits all alike; medians of every call. The "SDK alone"
   rows call the SDK's ``client.call_tool`` on the same connections: the part of
   an MCP call's cost that is the protocol, the SDK and the server, not toolrun.
2. Start-up with a server of ``--tools`` tools: ``create_tools_from_mcp(command=...)``
   entered (spawn the server, handshake, list every tool, build the Tools);
   the same over HTTP to a server already running (connect, handshake, list);
   and listing alone on an open connection (``tools/list`` and the Tools).

The server is this file: ``bench_mcp.py --serve stdio|http --tools N``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolrun.tools import create_tools_from_mcp, tool  # noqa: E402

ARGUMENTS = {"city": "Austin"}


def get_weather(city: str) -> str:
    """Gets weather information of a particular city.

    Args:
        city: The city name.
    """
    return f"The weather in {city} is 31 degrees Celsius and sunny."


async def async_get_weather(city: str) -> str:
    """The same as an ``async def``: run_with_tools awaits it instead of giving it a thread."""
    return get_weather(city)


# ----------------------------------------------------------------- the server


def serve(transport: str, n_tools: int) -> None:
    import anyio
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="WARNING")
    server.add_tool(get_weather)
    for i in range(n_tools - 1):
        server.add_tool(_filler(i), name=f"filler_{i:03d}", description=f"Filler tool number {i}; it echoes x and y.")
    if transport == "stdio":
        server.run()
        return
    import uvicorn

    # IPPROTO_TCP named: only then does asyncio set TCP_NODELAY on accepted sockets (else ~40 ms per response).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    anyio.run(lambda: uvicorn.Server(config).serve(sockets=[sock]))


def _filler(number: int) -> Any:
    def filler(x: int, y: str = "") -> str:
        return f"{number}: {x} {y}"

    return filler


def server_command(transport: str, n_tools: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve", transport, "--tools", str(n_tools)]


class HttpServer:
    def __init__(self, n_tools: int) -> None:
        self.process = subprocess.Popen(server_command("http", n_tools), stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/mcp"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


# ----------------------------------------------------------------- measuring


async def time_calls(kinds: dict[str, Any], n: int, times: dict[str, list[float]], shuffle: random.Random) -> None:
    """``n`` calls of each kind, interleaved call by call in a shuffled order, so that load hits all alike
    (and no kind always follows the same other: a sync tool()'s thread still winding down, say)."""
    order = list(kinds.items())
    for _ in range(n):
        shuffle.shuffle(order)
        for kind, call_tool in order:
            started = time.perf_counter()
            await call_tool.acall(ARGUMENTS)
            times[kind].append(time.perf_counter() - started)


class SdkCall:
    """The SDK's own ``client.call_tool`` on the same connection, without toolrun: its share of the cost."""

    def __init__(self, made: Any) -> None:
        self.client = made._toolset._connections[0]._client

    async def acall(self, arguments: dict[str, Any]) -> str:
        result = await self.client.call_tool("get_weather", arguments)
        return str(result.content[0].text)


async def per_call(calls: int, rounds: int) -> dict[str, list[float]]:
    direct = tool(get_weather)
    direct_async = tool(async_get_weather, name="get_weather")
    http = HttpServer(1)
    stdio_made = create_tools_from_mcp(command=server_command("stdio", 1))
    http_made = create_tools_from_mcp(url=http.url)
    try:
        async with stdio_made as over_stdio, http_made as over_http:
            kinds = {
                "tool() in process": direct,
                "  async def tool()": direct_async,
                "MCP over stdio": over_stdio[0],
                "  SDK alone, stdio": SdkCall(stdio_made),
                "MCP over HTTP": over_http[0],
                "  SDK alone, HTTP": SdkCall(http_made),
            }
            for t in kinds.values():
                assert await t.acall(ARGUMENTS) == get_weather("Austin")
            shuffle = random.Random(0)
            await time_calls(kinds, 50, {k: [] for k in kinds}, shuffle)  # warm up
            times: dict[str, list[float]] = {k: [] for k in kinds}
            per_round = max(1, calls // rounds)
            for round_ in range(rounds):
                await time_calls(kinds, per_round, times, shuffle)
                print(
                    f"round {round_ + 1}/{rounds}: "
                    + ", ".join(f"{k} {statistics.median(v) * 1e6:.0f} µs" for k, v in times.items()),
                    flush=True,
                )
            return times
    finally:
        http.stop()


async def start_up(n_tools: int, starts: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "stdio: spawn + connect + list": [],
        "HTTP: connect + list": [],
        "list only (open connection)": [],
    }
    http = HttpServer(n_tools)
    try:
        for _ in range(starts):
            started = time.perf_counter()
            async with create_tools_from_mcp(command=server_command("stdio", n_tools)) as tools:
                times["stdio: spawn + connect + list"].append(time.perf_counter() - started)
                assert len(tools) == n_tools
            started = time.perf_counter()
            made = create_tools_from_mcp(url=http.url)
            async with made as tools:
                times["HTTP: connect + list"].append(time.perf_counter() - started)
                assert len(tools) == n_tools
                # Listing alone, as a tools/list_changed notice makes it happen: read every page, build the Tools.
                toolset = made._toolset
                connection = toolset._connections[0]
                for _ in range(5):
                    started = time.perf_counter()
                    listing = await connection._list(connection._client)
                    built = toolset._build(connection, listing)
                    times["list only (open connection)"].append(time.perf_counter() - started)
                    assert len(built) == n_tools
    finally:
        http.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each kind")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tools", type=int, default=200, help="tools of the start-up server")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--serve", choices=["stdio", "http"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tools)
        return

    calls = asyncio.run(per_call(args.calls, args.rounds))
    starts = asyncio.run(start_up(args.tools, args.starts))

    import mcp

    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; mcp {getattr(mcp, '__version__', None) or _version('mcp')}"
    )
    print(f"per call: medians of {len(next(iter(calls.values())))} calls each, interleaved call by call\n")
    base = statistics.median(calls["tool() in process"])
    print(f"{'':22} {'median':>10} {'p90':>10} {'vs tool()':>10} {'over tool()':>12}")
    for kind, values in calls.items():
        values = sorted(values)
        med, p90 = statistics.median(values), values[int(len(values) * 0.9)]
        print(f"{kind:22} {med * 1e6:7.0f} µs {p90 * 1e6:7.0f} µs {med / base:9.1f}x {(med - base) * 1e6:9.0f} µs")
    print(f"\nstart-up, a server of {args.tools} tools: medians of {args.starts} starts\n")
    for kind, values in starts.items():
        print(f"{kind:32} {statistics.median(values) * 1e3:8.1f} ms  (min {min(values) * 1e3:.1f} ms)")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
