"""Every call an engine produces is checked here before anyone sees it.

* A call to a tool that was not offered, or whose arguments break the tool's
  schema, is dropped: toolrun returns only valid calls. The local engine's
  grammar makes this rare; a remote engine, or a schema the grammar had to
  loosen, can still produce one.
* Integers the schema calls ``number`` become floats, so a Python tool
  annotated ``float`` gets a float.
* A small model that was just given a tool's result often asks for the same
  call again — the same values, or the tool's own answer fed back in (``sum``
  of the sum). A call of a tool already answered in this turn that brings no
  value the conversation says beyond what earlier calls used (that tool's own
  whole results not counting) is such a repeat: it is dropped, and if nothing
  else is left the turn is generated again without tools, so the model answers
  in text instead of looping. A value a result points to ("the code is on page
  4") is new.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from referencing.exceptions import Unresolvable

from .._grounding import asks_something_new, conversation_text
from .._schema import validator
from .._types import ToolSpec
from .._wire import Event, IndexedToolCall, Message
from ..engines import Engine, GenerationRequest

log = logging.getLogger("toolrun.ai")


def check_call(call: IndexedToolCall, tools: Mapping[str, ToolSpec]) -> tuple[IndexedToolCall | None, str | None]:
    """(the call with its arguments typed per schema, None) or (None, what is wrong with it)."""
    tool = tools.get(call["name"])
    if tool is None:
        return None, f"the model called {call['name']!r}, which is not among the tools"
    try:
        error = next(iter(validator(tool.parameters).iter_errors(call["arguments"])), None)
    except Unresolvable as exc:  # normalize_tool refuses such schemas; this is the last line
        return None, f"the schema of {call['name']!r} has a reference that cannot be resolved: {exc}"
    except RecursionError:  # likewise: a reference loop the schema check did not see
        return None, f"the schema of {call['name']!r} refers to itself too deeply to be checked"
    if error is not None:
        return None, f"arguments of {call['name']!r} do not match its schema: {error.message}"
    return {**call, "arguments": _as_numbers(call["arguments"], tool.parameters)}, None


def _as_numbers(value: Any, schema: Any) -> Any:
    """Integers where the schema says ``number`` become floats (``[1, 3]`` → ``[1.0, 3.0]``).

    JSON cannot tell 1 from 1.0, but Python callers can: a ``float`` parameter should get a float.
    """
    if not isinstance(schema, Mapping):
        return value
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: _as_numbers(v, props.get(k)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_as_numbers(v, schema["items"]) for v in value]
    return value


def _this_turn(messages: list[Message]) -> tuple[list[tuple[str, Mapping[str, Any] | None]], dict[str, list[str]]]:
    """Since the last user turn: the calls made, as (name, arguments), and each tool's results.

    The arguments are ``None`` where unknown: Workers AI's short form (``{"role": "assistant",
    "tool_call": "name"}``) records none, so any call of that tool counts as a repeat.
    """
    answered: list[tuple[str, Mapping[str, Any] | None]] = []
    results: dict[str, list[str]] = {}
    for msg in reversed(messages):
        if msg["role"] == "user":
            break
        if msg["role"] == "tool" and msg.get("name"):
            results.setdefault(msg["name"], []).append(msg["content"])
        for call in msg.get("tool_calls", ()):
            fn = call["function"]
            answered.append((fn["name"], fn["arguments"] or None))
    return answered, results


def _is_repeat(
    call: IndexedToolCall,
    answered: list[tuple[str, Mapping[str, Any] | None]],
    said: str,
    results: Mapping[str, list[str]],
) -> bool:
    """A call of a tool answered in this turn that asks nothing new (see the module doc)."""
    earlier = [arguments for name, arguments in answered if name == call["name"]]
    if not earlier:
        return False
    if any(arguments is None for arguments in earlier):
        return True
    return not asks_something_new(
        call["arguments"],
        (args for args in earlier if args is not None),
        said,
        not_from=results.get(call["name"], ()),
    )


async def checked_events(engine: Engine, request: GenerationRequest) -> AsyncIterator[Event]:
    """The engine's events with every call checked (see the module doc).

    Argument fragments pass straight through, except when the turn may be a
    repeat: then the calls must be seen whole before anything about them goes out.
    """
    tools = {t.name: t for t in request.tools}
    answered, results = _this_turn(request.messages) if request.tool_choice == "auto" else ([], {})
    said = conversation_text(request.messages) if answered else ""
    held: list[IndexedToolCall] = []
    stream = engine.generate(request)
    try:
        async for event in stream:
            if "tool_call_delta" in event:
                if not answered:
                    yield event
                continue
            if "tool_calls" in event:
                for call in event["tool_calls"]:
                    checked, problem = check_call(call, tools)
                    if checked is None:
                        log.warning("dropping an invalid tool call: %s", problem)
                        continue
                    held.append({**checked, "index": len(held)})
                continue
            if "usage" in event:
                if answered and held:
                    repeats = [call for call in held if _is_repeat(call, answered, said, results)]
                    if repeats:
                        log.info("dropping calls that repeat ones already answered: %s", [c["name"] for c in repeats])
                        held = [{**call, "index": i} for i, call in enumerate(c for c in held if c not in repeats)]
                    if not held:
                        log.info("the model only repeated calls it has results for; answering without tools")
                        async for retry_event in engine.generate(replace(request, tool_choice="none")):
                            yield retry_event
                        return
                for call in held:
                    yield {"tool_calls": [call]}
                if event["finish_reason"] == "tool_calls" and not held:
                    event = {**event, "finish_reason": "stop"}
                yield event
                continue
            yield event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
