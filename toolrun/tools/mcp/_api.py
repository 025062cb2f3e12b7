"""``create_tools_from_mcp`` and its sync face."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from ..._signatures import arguments_of
from .._tool import Tool
from ._spec import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, server_specs
from ._spec import connect_timeout as _connect_timeout
from ._toolset import Toolset

_STOP_WAIT = 60.0  # seconds the sync face waits for servers to stop: stdio shutdown is bounded well below


class MCPTools:
    """``async with`` it to start the servers; the list it gives is their tools, kept up to date.

    Made by :func:`create_tools_from_mcp`. Entering starts every server (in
    parallel) and lists its tools; leaving stops them, also when the block
    ends by an exception or a cancellation. When a server says its tools
    changed, the list is updated in place: the next ``run_with_tools`` sees
    the new set.
    """

    def __init__(self, toolset: Toolset) -> None:
        self._toolset = toolset
        self._entered = False

    @property
    def tools(self) -> list[Tool]:
        """The servers' tools (empty before entering)."""
        return self._toolset.tools

    async def __aenter__(self) -> list[Tool]:
        if self._entered:
            raise RuntimeError("this create_tools_from_mcp(...) was already entered; make a new one")
        self._entered = True
        return await self._toolset.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every server now (leaving the ``async with`` does this)."""
        await self._toolset.stop()

    def __repr__(self) -> str:
        return f"MCPTools({', '.join(s.label for s in self._toolset.specs)})"


def create_tools_from_mcp(
    *,
    command: str | Sequence[str] | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    prefix: str = "",
    match_patterns: Iterable[str | re.Pattern[str]] | None = None,
    servers: Iterable[Mapping[str, Any]] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    verbose: bool = False,
) -> MCPTools:
    """The tools of MCP servers, for ``run_with_tools`` beside function and OpenAPI tools.

    >>> async with create_tools_from_mcp(command=["python", "weather_server.py"]) as tools:
    ...     out = await run_with_tools(ai, model, {"messages": [...], "tools": [*tools, my_function]})

    One server:

    ``command``
        Start it as a subprocess and talk over its stdin/stdout (stdio): a list of
        arguments, or one command line (split like a shell would, never run by one).
        ``env`` adds variables to the few the ``mcp`` SDK passes on (``HOME``, ``PATH``,
        ``USER``...; the rest of this process's environment is not inherited); ``cwd``
        is its working directory. It is stopped on exit: stdin closed, then SIGTERM and
        SIGKILL to its process group, and reaped.
    ``url``, ``headers``
        Reach it over Streamable HTTP at its MCP endpoint (``http://127.0.0.1:8000/mcp``),
        sending ``headers`` (``{"Authorization": "Bearer ..."}``) with every request.
        Redirects are followed only within the endpoint's origin.

    Several servers: ``servers=[{"command": [...], "prefix": "weather_"}, {"url": ..., "headers": {...}}]``,
    each entry with the keys above plus ``prefix``, ``match_patterns``, ``timeout`` and
    ``max_response_bytes``; started in parallel, stopped together. Two tools with one name
    raise :class:`~toolrun.InvalidInputError`: give the servers prefixes.

    ``prefix``
        Put before every tool name (``"weather_"``: ``get_forecast`` -> ``weather_get_forecast``).
        Characters tool names cannot have (``/``, spaces) become ``_``; names stop at 128.
    ``match_patterns``
        Regular expressions; a tool is kept only if one matches (``re.search``) its name on
        the server (before the prefix).
    ``timeout``, ``max_response_bytes``
        Each call's limit in seconds (``None``: none) and the size of the text the model reads
        (longer results are cut and say so), as for the OpenAPI tools. A tool's ``timeout`` is
        set a second above, so it wins over ``run_with_tools``' ``tool_timeout``.
    ``connect_timeout``
        Seconds for a server to start (or answer) and list its tools.
    ``verbose``
        Log each call at INFO on the ``toolrun.mcp`` logger.

    A tool whose ``inputSchema`` fails toolrun's schema check (a ``$ref`` outside the
    schema, too deep or too large) is skipped with a warning on that logger naming it;
    the server's other tools load. Nothing a schema refers to is ever fetched.

    Calling a tool returns the text the model reads: text content joined, structured
    content as JSON, images, audio and binary resources summarised (type, MIME, size,
    URI). A result the server flags ``isError``, a protocol error, a timeout or a server
    that has exited all come back as ``{"error": "..."}``; nothing raises into the run.
    Entering raises :class:`~toolrun.tools.mcp.MCPServerError` if a server cannot be
    started, reached or listed (the others are then stopped too).
    """
    specs = server_specs(
        command=command,
        url=url,
        headers=headers,
        env=env,
        cwd=cwd,
        prefix=prefix,
        match_patterns=match_patterns,
        servers=servers,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
    )
    return MCPTools(Toolset(specs, connect_timeout=_connect_timeout(connect_timeout), verbose=verbose))


class MCPToolsSync:
    """``with`` it to start the servers, without an event loop of your own.

    Made by :func:`create_tools_from_mcp_sync`. The connections live on an
    event loop in a thread of their own; the tools can be called from any
    other loop (``run_with_tools_sync``'s, or one under ``asyncio.run``).
    """

    def __init__(self, tools: MCPTools) -> None:
        self._async = tools
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def tools(self) -> list[Tool]:
        return self._async.tools

    def __enter__(self) -> list[Tool]:
        if self._loop is not None:
            raise RuntimeError("this create_tools_from_mcp_sync(...) was already entered; make a new one")
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="toolrun-mcp", daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._async.__aenter__(), loop)
        try:
            return started.result()
        except BaseException:  # a failed start has stopped its servers; an interrupt has not
            started.cancel()
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every server and the thread their connections ran on (leaving the ``with`` does this)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._async.aclose(), loop).result(_STOP_WAIT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_WAIT)
            if not thread.is_alive():
                loop.close()

    def __repr__(self) -> str:
        return repr(self._async).replace("MCPTools(", "MCPToolsSync(", 1)


@arguments_of(create_tools_from_mcp)
def create_tools_from_mcp_sync(**arguments: Any) -> MCPToolsSync:
    """:func:`create_tools_from_mcp` for code without an event loop; same arguments.

    >>> with create_tools_from_mcp_sync(command=["python", "weather_server.py"]) as tools:
    ...     out = run_with_tools_sync(ai, model, {"messages": [...], "tools": tools})
    """
    return MCPToolsSync(create_tools_from_mcp(**arguments))
