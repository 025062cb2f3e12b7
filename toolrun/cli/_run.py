"""``toolrun run``: embedded function calling from the shell.

The tool loop is ``toolrun.embedded.run_with_tools``; this module loads the
tools, and narrates: it hands the loop a thin wrapper of the binding that
prints each model call's tool calls when the model makes them and each tool
result when the loop sends it back, so the user watches the run unfold.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.markup import escape

from .._errors import InvalidInputError
from .._wire import decode_arguments
from ._console import console, err_console

if TYPE_CHECKING:
    from .._wire import Event

_RESULT_PREVIEW_CHARS = 300


def run_command(
    *,
    model: str,
    prompt: str,
    tool_refs: list[str],
    openapi_specs: list[str],
    match_patterns: list[str],
    mcp_commands: list[str] | None = None,
    mcp_urls: list[str] | None = None,
    stream: bool,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    max_rounds: int,
    json_output: bool,
    threads: int | None = None,
) -> None:
    if stream and json_output:
        raise InvalidInputError(
            "--json prints the finished result; it cannot be combined with --stream", where="--json"
        )
    if match_patterns and not openapi_specs:
        raise InvalidInputError("--match filters the operations of --openapi specs; give a spec too", where="--match")
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InvalidInputError("the prompt is empty", where="PROMPT")
    mcp_servers = [{"command": c} for c in mcp_commands or ()] + [{"url": u} for u in mcp_urls or ()]
    ask = _Ask(
        model,
        prompt,
        system,
        sampling={"max_tokens": max_tokens, "temperature": temperature, "seed": seed},
        stream=stream,
        json_output=json_output,
        max_rounds=max_rounds,
        threads=threads,
    )
    asyncio.run(_run(ask, tool_refs, openapi_specs, match_patterns, mcp_servers))


@dataclass(frozen=True)
class _Ask:
    """One ``toolrun run``: what to ask which model, how, and how to show the answer (whatever the tools)."""

    model: str
    prompt: str
    system: str | None
    sampling: dict[str, Any]
    stream: bool
    json_output: bool
    max_rounds: int
    threads: int | None

    def inputs(self) -> dict[str, Any]:
        """The binding's inputs: the system message (if any), the prompt, and the sampling options given."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        messages = [*system, {"role": "user", "content": self.prompt}]
        return {"messages": messages, **{k: v for k, v in self.sampling.items() if v is not None}}


async def _run(
    ask: _Ask,
    tool_refs: list[str],
    openapi_specs: list[str],
    match_patterns: list[str],
    mcp_servers: list[dict[str, str]],
) -> None:
    tools: list[Any] = []
    for ref in tool_refs:
        tools.extend(load_tools(ref))
    schema_only = [t for t in tools if isinstance(t, dict)]
    if schema_only:
        if len(schema_only) < len(tools) or openapi_specs or mcp_servers:
            raise InvalidInputError(
                "JSON tools are only described to the model and their calls printed (traditional function "
                "calling), Python, OpenAPI and MCP tools are run: give one kind or the other",
                where="--tool",
            )
        await _call_once(ask, schema_only)
        return
    # The MCP servers live as long as the run: started here, stopped (and reaped) on the way out.
    async with contextlib.AsyncExitStack() as servers:
        for spec in openapi_specs:
            tools.extend(await _openapi_tools(spec, match_patterns))
        if mcp_servers:
            tools.extend(await servers.enter_async_context(_mcp_tools(mcp_servers)))
        await _run_with(ask, tools)


async def _run_with(ask: _Ask, tools: list[Any]) -> None:
    from ..ai import AsyncAI
    from ..embedded import ToolRunStream, run_with_tools

    inputs = ask.inputs()
    if tools:
        inputs["tools"] = tools
        names = ", ".join(escape(t.name) for t in tools)
        err_console.print(f"[dim]{len(tools)} tool{'s' if len(tools) != 1 else ''}: {names}[/dim]")

    ai = AsyncAI(n_threads=ask.threads)
    narrator = Narrator(ai)
    started = time.perf_counter()
    try:
        result = await run_with_tools(
            narrator, ask.model, inputs, stream_final_response=ask.stream, max_recursive_tool_runs=ask.max_rounds
        )
        if isinstance(result, ToolRunStream):
            async for event in result:
                text = event.get("response") if isinstance(event, Mapping) else None
                if text:
                    console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
            console.print()
            usage = result.total_usage
        else:
            if ask.json_output:
                console.print_json(json.dumps(result, default=str))
            else:
                console.print(result.get("response") or "", markup=False, highlight=False, soft_wrap=True)
            usage = result.get("total_usage") or result.get("usage") or {}
    finally:
        narrator.stop_status()
        await ai.aclose()
    err_console.print(
        f"[dim]{narrator.model_calls} model call{'s' if narrator.model_calls != 1 else ''} · "
        f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens · "
        f"{time.perf_counter() - started:.1f} s[/dim]"
    )


async def _call_once(ask: _Ask, tools: list[dict[str, Any]]) -> None:
    """Traditional function calling: one model call, whose tool calls are printed for the caller to run."""
    from ..ai import AsyncAI, collect

    inputs = {**ask.inputs(), "tools": tools}
    names = ", ".join(escape(str(t.get("name") or t.get("function", {}).get("name"))) for t in tools)
    err_console.print(f"[dim]{len(tools)} tool{'s' if len(tools) != 1 else ''} (calls printed, not run): {names}[/dim]")
    ai = AsyncAI(n_threads=ask.threads)
    started = time.perf_counter()
    status = err_console.status(f"[dim]{escape(ask.model)} is thinking…[/dim]", spinner="dots")
    try:
        status.start()
        # One path for both: the stream's events folded into the result, printing the text if asked to.
        events = cast("AsyncIterator[Event]", await ai.run(ask.model, {**inputs, "stream": True}))
        if ask.stream:
            status.stop()
        result = await collect(_printing_text(events) if ask.stream else events)
    finally:
        status.stop()
        await ai.aclose()
    calls = [{"name": c["name"], "arguments": c["arguments"], "id": c["id"]} for c in result["tool_calls"]]
    if ask.json_output:
        shown = {"tool_calls": calls, **{k: v for k, v in result.items() if k != "tool_calls"}}
        console.print_json(json.dumps(shown, ensure_ascii=False, default=str))
    else:
        for call in calls:
            console.print(_call_text(call), markup=False, highlight=False, soft_wrap=True)
        if result["response"] and not ask.stream:
            console.print(result["response"], markup=False, highlight=False, soft_wrap=True)
    usage = result["usage"]
    err_console.print(
        f"[dim]{len(calls)} tool call{'s' if len(calls) != 1 else ''} · {usage['prompt_tokens']} prompt + "
        f"{usage['completion_tokens']} completion tokens · {time.perf_counter() - started:.1f} s[/dim]"
    )


async def _printing_text(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The events unchanged, each piece of answer text printed as it arrives."""
    async for event in events:
        text = event.get("response") if "usage" not in event else None
        if isinstance(text, str) and text:
            console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        yield event
    console.print()


def _call_text(call: Mapping[str, Any]) -> str:
    """``name(key="value", ...)``: a call as the user reads it."""
    arguments, _ = decode_arguments(call.get("arguments"))
    shown = (
        ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
        if arguments is not None
        else json.dumps(call.get("arguments"))  # what the model wrote, as it wrote it
    )
    return f"{call.get('name')}({shown})"


class Narrator:
    """The binding, plus a running commentary of tool calls and results on stderr."""

    def __init__(self, ai: Any) -> None:
        self._ai = ai
        self._shown_results: set[str] = set()
        self._status: Any = None
        self.model_calls = 0

    async def run(self, model: str, inputs: Mapping[str, Any]) -> Any:
        self._show_new_results(inputs.get("messages") or [])
        self.model_calls += 1
        self._status = err_console.status(f"[dim]{escape(model)} is thinking…[/dim]", spinner="dots")
        self._status.start()
        try:
            # Streaming or not, run() returns once the model has produced something.
            result = await self._ai.run(model, inputs)
        finally:
            self.stop_status()
        if isinstance(result, Mapping):
            for call in result.get("tool_calls") or ():
                self._show_call(call)
        return result

    def stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _show_call(self, call: Mapping[str, Any]) -> None:
        name, _, arguments = _call_text(call).partition("(")
        err_console.print(
            f"[bold yellow]→[/bold yellow] [bold]{escape(name)}[/bold]({escape(arguments)}", highlight=False
        )

    def _show_new_results(self, messages: list[Mapping[str, Any]]) -> None:
        for msg in messages:
            if msg.get("role") != "tool":
                continue
            key = str(msg.get("tool_call_id") or id(msg))
            if key in self._shown_results:
                continue
            self._shown_results.add(key)
            content = msg.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
            if len(text) > _RESULT_PREVIEW_CHARS:
                text = text[:_RESULT_PREVIEW_CHARS] + f"… ({len(text):,} chars)"
            name = msg.get("name") or "tool"
            err_console.print(
                f"[bold green]←[/bold green] [bold]{escape(str(name))}[/bold]: [dim]{escape(text)}[/dim]",
                highlight=False,
            )


# -------------------------------------------------------------- loading tools


def load_tools(ref: str) -> list[Any]:
    """The tools ``--tool`` names: JSON (inline or a ``.json`` file), described only, as plain dicts;
    or ``module:attr`` / ``path/to/file.py:attr`` (a function, a Tool, or a list of them), to run."""
    from ..tools import as_tool

    text = ref.strip()
    if text.startswith(("{", "[")):
        return _json_tools(text, "--tool")
    if text.endswith(".json"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"no such file: {path}", where=f"--tool {ref}")
        return _json_tools(path.read_text(encoding="utf-8"), f"--tool {ref}")
    where = f"--tool {ref}"
    module_part, sep, attr = ref.rpartition(":")
    if not sep or not module_part or not attr:
        raise InvalidInputError("expected module:function or path/to/file.py:function", where=where)
    module = _import(module_part, where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            hint = f"; it has {', '.join(available[:12])}" if available else ""
            raise InvalidInputError(f"{module_part} has no attribute {attr!r}{hint}", where=where)
        obj = getattr(obj, part)
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    return [as_tool(item, where=where) for item in items]


def _json_tools(text: str, where: str) -> list[dict[str, Any]]:
    """A tool in Workers AI's flat shape or OpenAI's ``{"type": "function", "function": ...}``, or a list of them."""
    from .._types import normalize_tool

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON: {exc}", where=where) from None
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        try:
            normalize_tool(item, index)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, where=f"{where}: {exc.where}") from None
    if not items:
        raise InvalidInputError("the list of tools is empty", where=where)
    return [dict(item) for item in items]


def _import(module_part: str, where: str) -> Any:
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        path = Path(module_part).expanduser().resolve()
        if not path.is_file():
            raise InvalidInputError(f"no such file: {path}", where=where)
        name = f"toolrun_cli_tools_{abs(hash(str(path)))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidInputError(f"cannot import {path}", where=where)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise InvalidInputError(f"importing {path} failed: {type(exc).__name__}: {exc}", where=where) from exc
        return module
    # Like `python -m`, let modules in the current directory be found.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_part)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import module {module_part!r}: {exc}", where=where) from exc


async def _openapi_tools(spec: str, match_patterns: list[str]) -> list[Any]:
    from ..tools import create_tools_from_openapi_spec

    tools = await create_tools_from_openapi_spec(spec, match_patterns=match_patterns or None)
    if not tools:
        raise InvalidInputError(
            f"the spec has no operation matching {match_patterns}" if match_patterns else "the spec has no operations",
            where=f"--openapi {spec}",
        )
    return tools


def _mcp_tools(servers: list[dict[str, str]]) -> Any:
    from ..tools.mcp import create_tools_from_mcp

    return create_tools_from_mcp(servers=servers)
