"""Every call an engine produces is checked here before anyone sees it.

* A call to a tool that was not offered, or whose arguments break the tool's
  schema, is dropped: toolrun returns only valid calls. The local engine's
  grammar makes this rare; a remote engine, or a schema the grammar had to
  loosen, can still produce one.
* Integers the schema calls ``number`` become floats, so a Python tool
  annotated ``float`` gets a float.

Which calls a turn makes — repeats of answered calls dropped among them — is the engines' turn policy
(:mod:`toolrun.engines.turn`); this is the last line, for every engine alike.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from referencing.exceptions import Unresolvable

from .._schema import validator
from .._types import ToolSpec
from .._wire import Event, IndexedToolCall
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


async def checked_events(engine: Engine, request: GenerationRequest) -> AsyncGenerator[Event, None]:
    """The engine's events with every call checked (see the module doc): the valid ones, numbered in order,
    go out together before the last event."""
    tools = {t.name: t for t in request.tools}
    held: list[IndexedToolCall] = []
    stream = engine.generate(request)
    try:
        async for event in stream:
            if "tool_calls" in event:
                for call in event["tool_calls"]:
                    checked, problem = check_call(call, tools)
                    if checked is None:
                        log.warning("dropping an invalid tool call: %s", problem)
                        continue
                    held.append({**checked, "index": len(held)})
                continue
            if "usage" in event:
                for call in held:
                    yield {"tool_calls": [call]}
                if event["finish_reason"] == "tool_calls" and not held:
                    event = {**event, "finish_reason": "stop"}
            yield event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
