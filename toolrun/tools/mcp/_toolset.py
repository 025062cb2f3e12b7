"""Several MCP servers as one list of toolrun tools: names, filters, schema checks, and the live list."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._errors import InvalidInputError, ToolSchemaError
from ..._schema import check_tool_schema
from ..._types import TOOL_NAME_PATTERN
from .._tool import Tool
from ._content import error_text
from ._spec import ServerSpec

if TYPE_CHECKING:  # the SDK costs a second and more to import: only when a server starts
    import mcp_types

    from ._connection import ServerConnection

logger = logging.getLogger("toolrun.mcp")

#: A description is prompt text; a server's should not crowd out the conversation.
MAX_DESCRIPTION_CHARS = 4096
#: A call may take the server's ``timeout`` and a little more: its own ``{"error"}`` answer, not
#: run_with_tools' generic one, should reach the model.
_TIMEOUT_GRACE = 1.0
_NOT_A_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_.:-]")


class Toolset:
    """The connections of one ``create_tools_from_mcp`` and the tools they offer, kept in ``tools``."""

    def __init__(self, specs: list[ServerSpec], *, connect_timeout: float, verbose: bool) -> None:
        self.specs = specs
        self.tools: list[Tool] = []
        self._connect_timeout = connect_timeout
        self._verbose = verbose
        self._connections: list[ServerConnection] = []
        self._offered: dict[ServerConnection, list[Tool]] = {}

    async def start(self) -> list[Tool]:
        from ._connection import ServerConnection

        self._connections = [
            ServerConnection(
                spec, connect_timeout=self._connect_timeout, on_listing=self._relisted, verbose=self._verbose
            )
            for spec in self.specs
        ]
        try:
            listings = await asyncio.gather(*(c.start() for c in self._connections), return_exceptions=True)
            failures = [r for r in listings if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            taken: dict[str, ServerConnection] = {}
            for index, (connection, listing) in enumerate(zip(self._connections, listings, strict=True)):
                assert not isinstance(listing, BaseException)
                offered = self._build(connection, listing)
                for made in offered:
                    other = taken.get(made.name)
                    if other is not None:
                        raise InvalidInputError(
                            f"two MCP tools are named {made.name!r}: one from {other.label}, one from "
                            f"{connection.label}; give the servers a prefix (servers=[{{..., 'prefix': 'a_'}}, ...])",
                            where=f"servers[{index}]" if len(self.specs) > 1 else "prefix",
                        )
                    taken[made.name] = connection
                self._offered[connection] = offered
        except BaseException:
            await self.stop()
            raise
        self.tools[:] = [t for c in self._connections for t in self._offered[c]]
        return self.tools

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._connections))

    def _relisted(self, connection: ServerConnection, listing: list[mcp_types.Tool]) -> None:
        """A server's new tool list: its tools are replaced in place, in the live list the user holds."""
        others = {t.name: c for c, tools in self._offered.items() if c is not connection for t in tools}
        offered = []
        for made in self._build(connection, listing):
            if made.name in others:
                logger.warning(
                    "MCP server %s: new tool %r skipped: %s already offers a tool of that name",
                    connection.label,
                    made.name,
                    others[made.name].label,
                )
                continue
            offered.append(made)
        self._offered[connection] = offered
        self.tools[:] = [t for c in self._connections for t in self._offered.get(c, ())]

    def _build(self, connection: ServerConnection, listing: list[mcp_types.Tool]) -> list[Tool]:
        spec = connection.spec
        made: dict[str, Tool] = {}
        for remote in listing:
            if spec.match_patterns and not any(p.search(remote.name) for p in spec.match_patterns):
                continue
            name = tool_name(spec.prefix, remote.name)
            if name is None:
                logger.warning(
                    "MCP server %s: tool %r skipped: no usable tool name can be made of it",
                    connection.label,
                    remote.name,
                )
                continue
            if name in made:
                logger.warning(
                    "MCP server %s: tool %r skipped: the server lists another tool named %r",
                    connection.label,
                    remote.name,
                    name,
                )
                continue
            if name != spec.prefix + remote.name:
                logger.info("MCP server %s: tool %r is called %r here", connection.label, remote.name, name)
            try:
                check_tool_schema(remote.input_schema, "inputSchema", name)
            except ToolSchemaError as exc:
                logger.warning(
                    "MCP server %s: tool %r skipped: its inputSchema is refused: %s",
                    connection.label,
                    remote.name,
                    exc.message,
                )
                continue
            made[name] = Tool(
                name,
                _description(remote),
                remote.input_schema,
                make_tool_function(connection, remote.name, name),
                timeout=spec.timeout + _TIMEOUT_GRACE if spec.timeout is not None else None,
            )
        return list(made.values())


def tool_name(prefix: str, remote: str) -> str | None:
    """``prefix`` + the server's name, with characters tool names cannot have turned into ``_``."""
    name = prefix + _NOT_A_NAME_CHAR.sub("_", remote)[: 128 - len(prefix)]
    return name if TOOL_NAME_PATTERN.fullmatch(name) and remote else None


def _description(remote: mcp_types.Tool) -> str:
    text = (remote.description or remote.title or "").strip()
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 1] + "…"
    if not text.isascii():  # a lone surrogate from a JSON escape would fail the binding's input check
        text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def make_tool_function(connection: ServerConnection, remote_name: str, name: str) -> Any:
    """The tool's function: ``await function({"city": "Austin"})`` (or keywords) -> the text for the model.

    A real ``async def``, so run_with_tools awaits it rather than giving it a thread.
    Called from another event loop (the sync face's caller), it hands the call to the
    loop that owns the connection.
    """
    spec = connection.spec
    timeout, limit = spec.timeout, spec.max_response_bytes

    async def function(arguments: Any = None, /, **keywords: Any) -> str:
        if arguments is None:
            args = keywords
        elif isinstance(arguments, Mapping):
            args = {**arguments, **keywords}
        else:
            return error_text(f"the arguments must be an object, not {type(arguments).__name__}", limit)
        owner = connection.loop
        if owner is asyncio.get_running_loop():
            return await connection.call(remote_name, args, time_limit=timeout, limit=limit)
        if owner is None or owner.is_closed() or not owner.is_running():
            return error_text(
                f"the MCP server {connection.label} belongs to an event loop that is not running; "
                "call its tools inside the `async with` (or use create_tools_from_mcp_sync)",
                limit,
            )
        handed = asyncio.run_coroutine_threadsafe(
            connection.call(remote_name, args, time_limit=timeout, limit=limit), owner
        )
        return await asyncio.wrap_future(handed)  # cancelling this cancels the call over there

    function.__name__ = function.__qualname__ = name
    function.mcp_server = connection.label  # type: ignore[attr-defined]
    function.mcp_name = remote_name  # type: ignore[attr-defined]
    return function
