"""One live MCP server: started, listed, called, watched for tool changes, stopped.

The ``mcp`` SDK's client is a nest of anyio task groups, which must be left
by the task that entered them, and whose stdio shutdown (close stdin, wait,
SIGTERM then SIGKILL the process group) is only safe from anyio's own
cancellation, not from a bare ``task.cancel()``. So each server gets one
supervisor task that owns the connection from start to stop inside one
anyio cancel scope: its deadline bounds the start, cancelling it is how the
server is stopped. Tool calls run in the caller's tasks, and never raise:
every failure, a server that died included, is an ``{"error": ...}`` result.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import mcp_types
import pydantic
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..._errors import MCPServerError
from ._content import error_text, result_text, trim_raw_result
from ._spec import ServerSpec

logger = logging.getLogger("toolrun.mcp")

#: A listing is read page by page; a server whose cursors never end cannot hold toolrun forever.
MAX_PAGES = 1000
MAX_TOOLS = 10_000

ListingCallback = Callable[["ServerConnection", list[mcp_types.Tool]], None]


class ServerConnection:
    """The supervisor of one server; :meth:`call` is safe from any task of the loop that started it."""

    def __init__(
        self, spec: ServerSpec, *, connect_timeout: float, on_listing: ListingCallback, verbose: bool = False
    ) -> None:
        self.spec = spec
        self.label = spec.label
        self.loop: asyncio.AbstractEventLoop | None = None
        self._connect_timeout = connect_timeout
        self._on_listing = on_listing
        self._log = logger.info if verbose else logger.debug
        self._client: Client | None = None
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        #: Why the connection ended, once it has (the server went away, the transport failed).
        self.ended: str | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> list[mcp_types.Tool]:
        """Start (or reach) the server and list its tools; raise :class:`MCPServerError` if that fails."""
        self.loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[mcp_types.Tool]] = self.loop.create_future()
        # Read even when nobody waits any more (the starter was cancelled): no "never retrieved" warning.
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._task = asyncio.create_task(self._supervise(ready), name=f"toolrun-mcp {self.label}")
        # Shielded: a cancelled starter must not cancel the future the supervisor will still set;
        # the starter's caller stops the supervisor instead.
        return await asyncio.shield(ready)

    async def stop(self) -> None:
        """Stop the server and wait until it is gone (a stdio child is reaped); safe to call twice."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()
        task = self._task
        if task is None:
            return
        try:
            # Shielded: a second cancellation of the caller must not cut the shutdown short; the
            # supervisor then finishes on its own and asyncio.run's teardown still waits for it.
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # the caller was cancelled, not the supervisor (the loop closing)
                raise
        except Exception as exc:  # noqa: BLE001 - stopping is done; what went wrong on the way is not news
            logger.debug("MCP server %s: stopping: %s", self.label, _describe(exc))

    async def _supervise(self, ready: asyncio.Future[list[mcp_types.Tool]]) -> None:
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout) as scope:
                self._scope = scope
                if self._stopping:
                    scope.cancel()
                async with AsyncExitStack() as stack:
                    client = await self._connect(stack)
                    tools = await self._list(client)
                    await self._watch_changes(client, stack)
                    scope.deadline = math.inf  # started: from now on only stop() ends it
                    self._client = client
                    ready.set_result(tools)
                    await self._follow_changes(client)
            if not ready.done():
                reason = (
                    "was stopped"
                    if self._stopping
                    else f"did not start and list its tools within {self._connect_timeout:g} s"
                )
                ready.set_exception(MCPServerError(f"the MCP server {self.label} {reason}"))
        except Exception as exc:  # noqa: BLE001 - the caller or the tools hear of it, the loop goes on
            detail = _describe(exc)
            if not ready.done():
                ready.set_exception(MCPServerError(f"the MCP server {self.label} could not be started: {detail}"))
            elif not self._stopping:
                logger.warning("MCP server %s: the connection failed: %s", self.label, detail)
            self.ended = detail
        finally:
            self._client = None
            if self.ended is None:
                self.ended = "the connection was closed"
            if not ready.done():  # cancelled from outside (the loop is closing)
                ready.cancel()

    async def _connect(self, stack: AsyncExitStack) -> Client:
        spec = self.spec
        transport: Any
        if spec.command is not None:
            params = StdioServerParameters(
                command=spec.command[0],
                args=list(spec.command[1:]),
                env=dict(spec.env) if spec.env else None,
                cwd=spec.cwd,
            )
            transport = stdio_client(params, errlog=_stderr())
        else:
            assert spec.url is not None
            http = await stack.enter_async_context(create_mcp_http_client(headers=dict(spec.headers) or None))
            transport = streamable_http_client(spec.url, http_client=http)
        from ..._version import __version__

        client = Client(
            _trimming(transport, spec.max_response_bytes),
            cache=None,
            message_handler=self._on_message,
            client_info=mcp_types.Implementation(name="toolrun", version=__version__),
        )
        return await stack.enter_async_context(client)

    # ------------------------------------------------------------ listing

    async def _list(self, client: Client) -> list[mcp_types.Tool]:
        """Every page of ``tools/list``, within the page and tool caps."""
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
            if len(tools) >= MAX_TOOLS:
                logger.warning(
                    "MCP server %s lists more than %d tools; only the first %d are used",
                    self.label,
                    MAX_TOOLS,
                    len(tools),
                )
                return tools
            if cursor in seen:
                logger.warning("MCP server %s sent the cursor %r twice; the listing stops there", self.label, cursor)
                return tools
            seen.add(cursor)
        logger.warning("MCP server %s lists tools on more than %d pages; only those are used", self.label, MAX_PAGES)
        return tools

    async def _watch_changes(self, client: Client, stack: AsyncExitStack) -> None:
        """Ask a 2026-era server to send tool changes; earlier servers send them unasked."""
        tools_capability = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not (
            tools_capability and tools_capability.list_changed
        ):
            return
        try:
            # The events also reach _on_message, which is where they are handled for both eras.
            await stack.enter_async_context(client.listen(tools_list_changed=True))
        except (MCPError, RuntimeError, TimeoutError) as exc:
            logger.debug("MCP server %s: no tool change subscription: %s", self.label, _describe(exc))

    async def _on_message(self, message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self._changed.set()
        elif isinstance(message, Exception):
            logger.debug("MCP server %s: transport error: %s", self.label, _describe(message))

    async def _follow_changes(self, client: Client) -> None:
        """Re-list whenever the server says its tools changed (a burst of notices makes one listing)."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                with anyio.fail_after(self._connect_timeout):
                    tools = await self._list(client)
            except (MCPError, TimeoutError, pydantic.ValidationError) as exc:
                logger.warning(
                    "MCP server %s changed its tools, but listing them failed: %s", self.label, _describe(exc)
                )
                continue
            self._log("MCP server %s: tools changed; %d listed", self.label, len(tools))
            self._on_listing(self, tools)

    # ------------------------------------------------------------ calling

    async def call(self, name: str, arguments: dict[str, Any], *, time_limit: float | None, limit: int) -> str:
        """The model's text for one ``tools/call``; never raises but for the caller's own cancellation."""
        client = self._client
        if client is None:
            return error_text(f"the MCP server {self.label} is not connected ({self.ended or 'not started'})", limit)
        self._log("MCP %s: tools/call %s", self.label, name)
        try:
            async with asyncio.timeout(time_limit):
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            text = error_text(f"the MCP tool call timed out after {time_limit:g}s", limit)
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                why = f": {self.ended}" if self.ended and self._client is None else ""
                text = error_text(
                    f"the connection to the MCP server {self.label} closed (the server exited or went away){why}", limit
                )
            else:
                text = error_text(f"MCP error {exc.code}: {exc.message}", limit)
        except pydantic.ValidationError as exc:
            text = error_text(f"the MCP server sent a malformed result: {_describe(exc)}", limit)
        except Exception as exc:  # noqa: BLE001 - the SDK raises RuntimeError for a result that breaks its schema
            text = error_text(f"the MCP call failed: {_describe(exc)}", limit)
        else:
            text = result_text(result, limit)
        self._log("MCP %s: %s answered %d characters", self.label, name, len(text))
        return text


@asynccontextmanager
async def _trimming(transport: Any, limit: int) -> AsyncIterator[tuple[Any, Any]]:
    """The transport, with each result's content items trimmed to what ``limit`` bytes can show
    as they are read, before the SDK makes objects of them (see :func:`trim_raw_result`).

    The SDK has no bound on the size of one message: a line (stdio) or body (HTTP) is read
    whole and parsed before any of this can look at it.
    """
    async with transport as (read_stream, write_stream):
        yield _TrimmingReadStream(read_stream, limit), write_stream


class _TrimmingReadStream:
    """A transport's read stream whose responses pass through :func:`trim_raw_result`."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def _trim(self, item: Any) -> Any:
        if isinstance(item, SessionMessage) and isinstance(item.message, mcp_types.JSONRPCResponse):
            result = item.message.result
            trimmed = trim_raw_result(result, self._limit)
            if trimmed is not result:
                item.message = item.message.model_copy(update={"result": trimmed})
        return item

    async def receive(self) -> Any:
        return self._trim(await self._inner.receive())

    def __aiter__(self) -> _TrimmingReadStream:
        return self

    async def __anext__(self) -> Any:
        return self._trim(await self._inner.__anext__())

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _TrimmingReadStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        result: bool | None = await self._inner.__aexit__(*exc_info)
        return result

    def __getattr__(self, name: str) -> Any:  # last_context, close() and the like, as the inner stream has them
        return getattr(self._inner, name)


def _describe(exc: BaseException) -> str:
    """One line for an exception, looking inside the exception groups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, pydantic.ValidationError):
        return f"{exc.error_count()} validation error(s): {exc.errors(include_url=False)[0]['msg']}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stderr() -> Any:
    """Where a stdio server's stderr goes: ours, when it is a real file (test runners swap in ones that are not)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    return asyncio.subprocess.DEVNULL
