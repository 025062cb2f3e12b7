"""Running the calls of one round: each function under its timeout, each outcome as the text the model reads.

Every failure the model should hear about — a tool name that does not exist,
arguments that are not JSON or break the schema, a function that raises or
hangs — becomes one shape of tool message, ``{"error": "..."}`` (the OpenAPI
and MCP tools report theirs the same way), so the model can correct itself
within the round limit. Nothing here raises for a tool's own failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import reprlib
from collections.abc import Mapping
from typing import Any

import pydantic

from .._wire import decode_arguments, function_body, new_call_id
from ..tools import Tool

_to_json = json.JSONEncoder(ensure_ascii=False).encode


def tool_error(message: str) -> str:
    """The tool message for a failure: ``{"error": message}``."""
    return _to_json({"error": message})


@dataclasses.dataclass(slots=True)
class PendingCall:
    """A call from the model's answer, before it runs."""

    id: str
    name: Any
    raw_arguments: Any
    arguments: dict[str, Any] | None = None
    error: str | None = None  # why the arguments could not be used


def read_tool_calls(response: Mapping[str, Any]) -> list[PendingCall]:
    """Calls in Workers AI's ``{name, arguments}`` or OpenAI's ``{id, function: {...}}`` shape; ids made unique."""
    raw = response.get("tool_calls")
    if not raw or type(raw) is not list:
        return []
    calls = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        body = function_body(item)
        call_id = str(item.get("id") or "")
        if not call_id or call_id in seen:  # results are matched to calls by id: keep them unique
            call_id = new_call_id()
        seen.add(call_id)
        call = PendingCall(call_id, body.get("name"), body.get("arguments"))
        call.arguments, call.error = decode_arguments(call.raw_arguments)
        calls.append(call)
    return calls


async def execute(
    call: PendingCall, offered: Mapping[str, Tool], *, strict_validation: bool, tool_timeout: float | None
) -> str:
    """The text the model gets back for one call."""
    tool = offered.get(call.name) if isinstance(call.name, str) else None
    if tool is None:
        return tool_error(
            f"there is no tool named {call.name!r}; the available tools are: {', '.join(offered) or 'none'}"
        )
    if call.error is not None:
        return tool_error(f"the arguments for {tool.name!r} {call.error}; call it again with a JSON object")
    arguments = call.arguments or {}
    if strict_validation and (schema_problems := tool.schema_errors(arguments)):
        return tool_error(
            f"the arguments for {tool.name!r} do not match its schema: {'; '.join(schema_problems)}; "
            "call it again with corrected arguments"
        )
    limit = tool.timeout if tool.timeout is not None else tool_timeout
    try:
        if limit is None:
            result = await tool.acall(arguments)
        else:
            result = await _within(limit, tool.acall(arguments))
    except _Expired:
        return tool_error(f"{tool.name!r} did not finish within {limit:g} s and was abandoned")
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        return tool_error(
            f"the arguments for {tool.name!r} are invalid: {problems}; call it again with corrected arguments"
        )
    except Exception as exc:  # noqa: BLE001 - the model is told, and the run goes on
        detail = str(exc)
        return tool_error(f"{tool.name!r} failed: {type(exc).__name__}{': ' + detail if detail else ''}")
    return as_content(result)


# ------------------------------------------------------------------ timeouts


class _Expired(Exception):
    """A tool call ran past its time limit (distinct from a TimeoutError the tool raises itself)."""


def _expire(task: asyncio.Task[Any], fired: list[bool]) -> None:
    fired.append(True)
    task.cancel()


class _within:  # noqa: N801 - used like a function: `await _within(limit, coro)`
    """``await coro``, cancelled after ``limit`` seconds, like ``asyncio.timeout()``.

    The timer is only set once the coroutine first suspends: a call that
    finishes without waiting (a pure function) needs none, and setting and
    cancelling one would be the largest part of run_with_tools' own cost per
    call. The cancellation bookkeeping mirrors asyncio.timeout(): a cancel
    that came from outside still propagates.
    """

    __slots__ = ("_coro", "_limit")

    def __init__(self, limit: float, coro: Any) -> None:
        self._limit = limit
        self._coro = coro

    def __await__(self) -> Any:
        steps = self._coro.__await__()
        try:
            yielded = steps.send(None)
        except StopIteration as done:
            return done.value
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        fired: list[bool] = []
        handle = asyncio.get_running_loop().call_later(self._limit, _expire, task, fired)
        try:
            result = yield from _delegate(steps, yielded)
        except asyncio.CancelledError:
            if fired and task.uncancel() <= cancelling:
                raise _Expired from None
            raise
        finally:
            handle.cancel()
        if fired:
            task.uncancel()  # the tool swallowed our cancellation and finished anyway
        return result


def _delegate(steps: Any, yielded: Any) -> Any:
    """``yield from steps`` for an iterator that has already yielded ``yielded`` (PEP 380's expansion)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the task (cancellation): passed on
            try:
                yielded = steps.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                yielded = steps.send(sent)
            except StopIteration as done:
                return done.value


# ------------------------------------------------------------------ results


def as_content(result: Any) -> str:
    """A function's return value as the text of a tool message (strings as they are, the rest as JSON)."""
    if isinstance(result, str):
        return _valid_text(result)
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    try:
        return _valid_text(_result_to_json(result))
    except (TypeError, ValueError, RecursionError):  # circular or absurdly deep: its repr will do
        return _valid_text(reprlib.repr(result))


def _valid_text(text: str) -> str:
    """Lone surrogates (a careless ``decode(..., "surrogateescape")``) become U+FFFD: the model's
    tokenizer, and the binding's input check, take only valid Unicode."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _json_default(value: Any) -> Any:
    """What a tool may return beyond JSON's types: pydantic models, dataclasses, tuples, sets, bytes."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_result_to_json = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
