"""Running the calls of one round: each function under its timeout, each outcome as the text the model reads.

Every failure the model should hear about — a tool name that does not exist,
arguments that are not JSON or break the schema, a function that raises or
hangs — becomes one shape of tool message, ``{"error": "..."}`` (the OpenAPI
and MCP tools report theirs the same way), so the model can correct itself
within the round limit. Nothing here raises for a tool's own failure.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import enum
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import pydantic

from .._wire import decode_arguments, function_body, new_call_id
from ..tools import Tool
from ..tools._tool import function_facts

logger = logging.getLogger("toolrun.embedded")

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


def _prepare(call: PendingCall, offered: Mapping[str, Tool], strict_validation: bool) -> str | Tool:
    """The tool that runs ``call``, or the error the model gets instead (unknown name, arguments unusable)."""
    tool = offered.get(call.name) if isinstance(call.name, str) else None
    if tool is None:
        return tool_error(
            f"there is no tool named {call.name!r}; the available tools are: {', '.join(offered) or 'none'}"
        )
    if call.error is not None:
        return tool_error(f"the arguments for {tool.name!r} {call.error}; call it again with a JSON object")
    if strict_validation and (schema_problems := tool.schema_errors(call.arguments or {})):
        return tool_error(
            f"the arguments for {tool.name!r} do not match its schema: {'; '.join(schema_problems)}; "
            "call it again with corrected arguments"
        )
    return tool


async def run_calls(
    calls: list[PendingCall], offered: Mapping[str, Tool], *, strict_validation: bool, tool_timeout: float | None
) -> list[tuple[str, float]]:
    """Run a round's calls concurrently; for each, in call order, the text the model reads and its seconds.

    Each call runs as a task of its own and is waited for with ``asyncio.wait``,
    never awaited directly, so a tool that ignores its cancellation cannot hold
    the run past its deadline: it is cancelled, abandoned (kept referenced until
    it ends) and reported as timed out. A result that comes after the deadline
    (an async tool that blocked the loop) is discarded the same way.

    A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, your
    own) ends the run; so does cancelling it. Either way the other calls are wound
    down first: async ones are cancelled, and the run waits until every call has
    ended or reached its deadline (a sync function's thread cannot be stopped;
    its result is then discarded) before the exception goes on.
    """
    loop = asyncio.get_running_loop()
    contents: list[tuple[str, float]] = [("", 0.0)] * len(calls)
    jobs: list[_Job] = []
    for index, call in enumerate(calls):
        ready = _prepare(call, offered, strict_validation)
        if isinstance(ready, str):
            contents[index] = (ready, 0.0)
        else:
            limit = ready.timeout if ready.timeout is not None else tool_timeout
            jobs.append(_Job(index, ready, limit, loop, call.arguments or {}))
    try:
        escaping = await _wait_for(jobs, loop, stop_at_escape=True)
    except BaseException:
        await _wind_down(jobs, loop)  # cancelled from outside: the calls end first all the same
        raise
    if escaping is not None:
        await _wind_down(jobs, loop)
        raise escaping
    for job in jobs:
        contents[job.index] = (job.content(), job.elapsed())
    return contents


# ------------------------------------------------------------------ one call as a task


@dataclasses.dataclass(slots=True)
class _Outcome:
    value: Any  # the result, or the exception the tool raised
    raised: bool
    finished: float  # loop time when the tool returned or raised, before the loop could deliver it


async def _call_tool(tool: Tool, arguments: Mapping[str, Any]) -> _Outcome:
    loop = asyncio.get_running_loop()
    try:
        value = await tool.acall(arguments)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - boxed: a KeyboardInterrupt raised in a task would escape the loop
        return _Outcome(exc, True, loop.time())
    return _Outcome(value, False, loop.time())


# Calls abandoned past their deadline, referenced until they end (a task nobody holds can be
# collected mid-run); each one's outcome is read then, so asyncio reports no unretrieved error.
_ABANDONED: set[asyncio.Task[_Outcome]] = set()


def _forget(task: asyncio.Task[_Outcome]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        logger.debug("an abandoned tool call ended; its outcome was discarded: %r", task.result().value)


class _Job:
    """One call of a round: its task, its deadline, and what the model is told."""

    __slots__ = ("cancelled_by_us", "deadline", "index", "limit", "outcome", "started", "task", "timed_out", "tool")

    def __init__(
        self, index: int, tool: Tool, limit: float | None, loop: asyncio.AbstractEventLoop, arguments: Mapping[str, Any]
    ) -> None:
        self.index = index
        self.tool = tool
        self.limit = limit
        self.started = loop.time()
        self.deadline = math.inf if limit is None else self.started + limit
        self.task = loop.create_task(_call_tool(tool, arguments), name=f"toolrun tool {tool.name}")
        self.outcome: _Outcome | None = None
        self.timed_out = False
        self.cancelled_by_us = False

    @property
    def running(self) -> bool:
        return self.outcome is None and not self.timed_out

    def settle(self) -> BaseException | None:
        """Read the finished task; return the exception that must end the run, if the tool raised one."""
        task = self.task
        if task.cancelled():  # the tool raised CancelledError of its own (ours is caught): a failure like any other
            self.outcome = _Outcome(asyncio.CancelledError(), True, task.get_loop().time())
        else:
            self.outcome = task.result()
        if self.outcome.finished > self.deadline:  # it blocked the loop past its deadline
            self.timed_out = True
            logger.warning(
                "tool %r returned after %.2f s, past its %s s limit: its result was discarded",
                self.tool.name,
                self.outcome.finished - self.started,
                self.limit,
            )
            return None
        value = self.outcome.value
        ordinary = isinstance(value, Exception | asyncio.CancelledError) or self.cancelled_by_us
        # KeyboardInterrupt, SystemExit, your own BaseException: the run ends with it.
        return value if self.outcome.raised and not ordinary else None

    def abandon(self) -> None:
        """Past its deadline: cancel it (a thread runs on regardless), keep it referenced, and move on."""
        self.timed_out = True
        self.task.cancel()
        _ABANDONED.add(self.task)
        self.task.add_done_callback(_forget)
        logger.warning(
            "tool %r %s and was abandoned%s",
            self.tool.name,
            "has no time limit" if self.limit is None else f"did not finish within {self.limit:g} s",
            "" if function_facts(self.tool.function).is_coroutine else "; its thread cannot be stopped and runs on",
        )

    def elapsed(self) -> float:
        end = self.outcome.finished if self.outcome is not None else self.deadline
        return end - self.started

    def content(self) -> str:
        name = self.tool.name
        if self.timed_out or self.outcome is None:
            return tool_error(f"{name!r} did not finish within {self.limit or 0:g} s and was abandoned")
        value = self.outcome.value
        if not self.outcome.raised:
            return as_content(value)
        if isinstance(value, pydantic.ValidationError):
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in value.errors(include_url=False)
            )
            return tool_error(
                f"the arguments for {name!r} are invalid: {problems}; call it again with corrected arguments"
            )
        detail = str(value)
        return tool_error(f"{name!r} failed: {type(value).__name__}{': ' + detail if detail else ''}")


async def _wait_for(jobs: list[_Job], loop: asyncio.AbstractEventLoop, *, stop_at_escape: bool) -> BaseException | None:
    """Wait until every job has ended or passed its deadline (then it is abandoned).

    With ``stop_at_escape``, return the first exception that must end the run as soon as it comes.
    """
    pending = {job.task: job for job in jobs if job.running}
    while pending:
        now = loop.time()
        for task, job in list(pending.items()):
            if task.done():  # read before any deadline: it may have ended in time while the loop was busy
                del pending[task]
                escaping = job.settle()
                if escaping is not None and stop_at_escape:
                    return escaping
            elif job.deadline <= now:
                del pending[task]
                job.abandon()
        if pending:
            next_deadline = min(job.deadline for job in pending.values())
            timeout = None if next_deadline == math.inf else max(0.0, next_deadline - now)
            await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    return None


async def _wind_down(jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
    """The run ends early: cancel the async calls still running and wait until every call has ended or
    reached its deadline. A call without a deadline is abandoned at once rather than waited for forever."""
    for job in jobs:
        if job.running and not job.task.done():
            if job.deadline == math.inf:
                job.abandon()
            elif function_facts(job.tool.function).is_coroutine:
                job.cancelled_by_us = True
                job.task.cancel()
    try:
        await _wait_for(jobs, loop, stop_at_escape=False)
    finally:
        for job in jobs:  # cancelled again while winding down: what is left is abandoned
            if job.running:
                if job.task.done():
                    job.settle()
                else:
                    job.abandon()


# ------------------------------------------------------------------ results

#: The most of a result's ``repr`` the model reads, when the result cannot be written as JSON at all.
MAX_REPR_CHARS = 32 * 1024
#: Levels of nesting written out when a result is too deep for the JSON encoder; deeper ones become a note.
MAX_DEPTH = 100


def as_content(result: Any) -> str:
    """A function's return value as the text of a tool message: strings as they are, the rest as JSON.

    Beyond JSON's own types: dates and times as ISO 8601, tuples and sets as
    lists (sets sorted where their items compare), dataclasses and pydantic
    models as objects, enums as their values, ``Decimal`` and ``UUID`` as
    strings, bytes as their UTF-8 text (or ``{"base64": ...}`` when they are not
    UTF-8), dict keys that are not strings as strings, a reference back to an
    enclosing container as ``"[circular reference]"``, nesting deeper than
    ``MAX_DEPTH`` as a note saying so; anything else as ``str(value)``. A value
    that still cannot be written (its ``str`` raises) is shown by its ``repr``,
    cut at ``MAX_REPR_CHARS`` with a note giving the full size.
    """
    if isinstance(result, str):
        return _valid_text(result)
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    try:
        return _valid_text(_result_to_json(result))
    except Exception:  # noqa: BLE001 - a key json refuses, a cycle, deep nesting: convert it ourselves
        pass
    try:
        return _valid_text(_to_json(_jsonable(result, set(), 0)))
    except Exception:  # noqa: BLE001 - a value whose str() raises: its repr is all there is
        return _cut_repr(result)


def _cut_repr(result: Any) -> str:
    try:
        text = repr(result)
    except Exception:  # noqa: BLE001 - a broken __repr__ too
        text = f"<a {type(result).__name__} that can be neither encoded nor shown>"
    if len(text) > MAX_REPR_CHARS:
        text = f"{text[:MAX_REPR_CHARS]}… [cut: {MAX_REPR_CHARS:,} of {len(text):,} characters]"
    return _valid_text(text)


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
    """What a tool may return beyond JSON's types, as JSON's types (see :func:`as_content`)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Shallow: the encoder converts the fields' values itself (asdict would deep-copy them).
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:  # items that do not compare (mixed types): in the set's own order
            return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode("ascii")}
    if isinstance(value, Mapping):  # a mapping that is not a dict
        return dict(value)
    return str(value)  # Decimal, UUID, Path, and whatever else: its own text


_result_to_json = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
_JSON_KEY_TYPES = (str, int, float, bool, type(None))


def _jsonable(value: Any, enclosing: set[int], depth: int) -> Any:
    """``value`` with every dict key a string, cycles and deep nesting cut, for a second try at encoding."""
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    original = id(value)
    if original in enclosing:
        return "[circular reference]"
    if depth >= MAX_DEPTH:
        return f"[cut: nested deeper than {MAX_DEPTH} levels]"
    if not isinstance(value, dict | list | tuple):
        value = _json_default(value)  # a dataclass's fields, a set's items...: checked for cycles below
        if isinstance(value, str | int | float | bool | type(None)):
            return value
    enclosing.add(original)
    try:
        if isinstance(value, Mapping):
            return {_json_key(key): _jsonable(item, enclosing, depth + 1) for key, item in value.items()}
        return [_jsonable(item, enclosing, depth + 1) for item in value]
    finally:
        enclosing.discard(original)


def _json_key(key: Any) -> Any:
    if isinstance(key, _JSON_KEY_TYPES):
        return key
    converted = _json_default(key)
    return converted if isinstance(converted, str) else str(key)
