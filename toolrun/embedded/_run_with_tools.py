"""``run_with_tools``: embedded function calling, the Python form of ai-utils' ``runWithTools``.

One run is: (optionally) trim the tools; ask the model with the tools on
offer; run every call it makes — concurrently, each under a timeout — and put
the results back into the conversation; repeat for up to
``max_recursive_tool_runs`` more rounds; then generate the final answer
without tools (streamed if asked).

Where it departs from ai-utils 1.0.1, on purpose:

- Failures go back to the model instead of vanishing: a hallucinated tool
  name, arguments that are not JSON, arguments that break the schema
  (``strict_validation``), a raising or hanging function all become a tool
  message saying what went wrong, so the next round can correct it.
- One assistant turn carries all of a round's calls, and each result carries
  its call's id, in call order (ai-utils writes one assistant turn per call
  and results in completion order, without ids).
- A round in which the model calls no tool *is* the answer: no second
  generation without tools (ai-utils always makes one).
- ``max_tokens``, ``temperature``, ``seed`` and the other inputs reach every
  model call (ai-utils forwards only messages and tools).
- Only the tools left after trimming can run (ai-utils runs any tool it was
  given, even one the trim took away).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import json
import logging
import reprlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pydantic

from .._errors import EngineError, InvalidInputError
from ._client import call_model
from ..tools import Tool, as_tool, tool_name_and_description
from ..tools._tool import function_facts

logger = logging.getLogger("toolrun.embedded")

#: ai-utils' README documents 1; its code (1.0.1) uses 0. We follow the README:
#: a round in which the model calls nothing ends the run at once, so the extra
#: round costs nothing unless the model needs a second step (look a user up,
#: then their repositories). Pass 0 for ai-utils' actual behaviour.
DEFAULT_MAX_RECURSIVE_TOOL_RUNS = 1
#: Seconds one tool call may take before its error goes back to the model.
DEFAULT_TOOL_TIMEOUT = 30.0

# Inputs that run_with_tools manages itself; everything else is forwarded to every model call.
_MANAGED_INPUTS = frozenset({"messages", "prompt", "tools", "stream", "tool_choice", "functions"})
_LOG_VALUE_CHARS = 500
# json.dumps() with any option builds a new encoder on every call; these are built once.
_to_json = json.JSONEncoder(ensure_ascii=False).encode

TrimFunction = Callable[[list[Tool], Any, str, list[dict[str, Any]]], "Sequence[Any] | Awaitable[Sequence[Any]]"]


async def run_with_tools(
    ai: Any,
    model: str,
    inputs: Mapping[str, Any],
    *,
    strict_validation: bool = False,
    max_recursive_tool_runs: int = DEFAULT_MAX_RECURSIVE_TOOL_RUNS,
    stream_final_response: bool = False,
    verbose: bool = False,
    trim_function: TrimFunction | None = None,
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
) -> dict[str, Any] | ToolRunStream:
    """Let the model call Python functions until it can answer, and return its answer.

    ``ai`` is anything with ``run(model, inputs)`` (async or not): toolrun's
    ``AsyncAI``/``AI``, a remote engine, your own client. ``inputs`` are
    Workers AI inputs whose ``tools`` also carry code: :func:`tool` functions,
    :class:`Tool` objects, plain functions, or ai-utils' dicts
    ``{"name", "description", "parameters", "function": callable}``. Other
    inputs (``temperature``, ``max_tokens``, ``seed``...) reach every model call;
    ``tool_choice`` applies to the first round only; ``stream`` is ignored
    (``stream_final_response`` decides); a ``prompt`` becomes a user message.

    - ``max_recursive_tool_runs``: tool rounds after the first (default
      :data:`DEFAULT_MAX_RECURSIVE_TOOL_RUNS`); then the answer is generated without tools.
    - ``strict_validation``: check arguments against the tool's full JSON
      Schema before calling; a failure goes back to the model to retry.
    - ``stream_final_response``: return a :class:`ToolRunStream` of ``AI.run``
      stream events instead of a dict.
    - ``verbose``: log every step (calls, arguments, results, timings, token
      counts) at INFO on the ``toolrun.embedded`` logger, printing to stderr if
      logging is not configured.
    - ``trim_function(tools, ai, model, messages) -> tools`` (sync or async)
      picks the tools to offer, e.g. :func:`auto_trim_tools`, :func:`bm25_trim_tools`.
    - ``tool_timeout``: seconds per call (``None``: no limit); a ``Tool``'s own ``timeout`` wins.

    Returns ``AI.run``'s result for the final answer, plus ``messages`` (the
    whole conversation, tool turns and answer included) and ``total_usage``
    (tokens summed over every model call of the run; ``usage`` stays the final call's).
    """
    loop = _ToolLoop(
        ai, model, inputs,
        strict_validation=strict_validation,
        max_recursive_tool_runs=max_recursive_tool_runs,
        stream_final_response=stream_final_response,
        verbose=verbose,
        tool_timeout=tool_timeout,
    )
    return await loop.run(trim_function)


# ------------------------------------------------------------------ results


class ToolRunStream:
    """The final answer as ``AI.run`` stream events; the run's history fills in as they are read.

    ``messages`` ends with the answer, and ``total_usage`` includes the final
    call, once the stream has been read to the end.
    """

    def __init__(self, events: AsyncIterator[Any], messages: list[dict[str, Any]],
                 total_usage: dict[str, int], on_done: Callable[[dict[str, int]], None] | None = None,
                 *, count_usage: bool = True) -> None:
        self._events = events
        self._count_usage = count_usage
        self._parts: list[str] = []
        self._done = False
        self._on_done = on_done
        self.messages = messages
        self.total_usage = total_usage

    def __aiter__(self) -> ToolRunStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._events.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        if isinstance(event, Mapping):
            text = event.get("response")
            if isinstance(text, str):
                self._parts.append(text)
            if self._count_usage and isinstance(event.get("usage"), Mapping):
                _add_usage(self.total_usage, event["usage"])
        return event

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.messages.append({"role": "assistant", "content": "".join(self._parts)})
            if self._on_done:
                self._on_done(self.total_usage)

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


async def _events_of(response: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """An already generated answer as the stream events ``AI.run`` would have sent."""
    text = response.get("response") or ""
    if text:
        yield {"response": text}
    last: dict[str, Any] = {"response": "", "finish_reason": "stop"}
    if isinstance(response.get("usage"), Mapping):
        last["usage"] = dict(response["usage"])
    yield last


async def _async_events(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """A sync client's stream, read without blocking the event loop."""
    done = object()
    while (item := await asyncio.to_thread(next, iterator, done)) is not done:
        yield item


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the exact-type test spares an ABC check


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if _is_mapping(usage):
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if type(value) is int:
                total[key] += value


def _sum_usage(usages: list[Any]) -> dict[str, int]:
    total = dict.fromkeys(_USAGE_KEYS, 0)
    for usage in usages:
        if usage:
            _add_usage(total, usage)
    return total


# --------------------------------------------------------------------- loop


@dataclasses.dataclass(slots=True)
class _Call:
    id: str
    name: Any
    raw_arguments: Any
    arguments: dict[str, Any] | None = None
    error: str | None = None  # why the arguments could not be used


class _ToolLoop:
    def __init__(self, ai: Any, model: str, inputs: Mapping[str, Any], *, strict_validation: bool,
                 max_recursive_tool_runs: int, stream_final_response: bool, verbose: bool,
                 tool_timeout: float | None) -> None:
        run = getattr(ai, "run", None)
        if not callable(run):
            raise InvalidInputError(f"ai must have a run(model, inputs) method; got {type(ai).__name__}", where="ai")
        if not _is_mapping(inputs):
            raise InvalidInputError(f"inputs must be a dict, not {type(inputs).__name__}", where="inputs")
        if type(max_recursive_tool_runs) is not int or max_recursive_tool_runs < 0:
            raise InvalidInputError("must be a whole number >= 0", where="max_recursive_tool_runs")
        if tool_timeout is not None and (type(tool_timeout) not in (int, float) or not 0 < tool_timeout < float("inf")):
            raise InvalidInputError(f"must be a positive number of seconds, or None; got {tool_timeout!r}",
                                    where="tool_timeout")
        self.ai = ai
        self.model = model
        self.strict_validation = strict_validation
        self.rounds_after_first = max_recursive_tool_runs
        self.stream_final_response = stream_final_response
        self.tool_timeout = tool_timeout
        self.messages = _initial_messages(inputs)
        self.tools = _collect_tools(inputs.get("tools"))
        self.tool_choice = inputs.get("tool_choice")
        self.forwarded = {k: v for k, v in inputs.items() if k not in _MANAGED_INPUTS}
        self.usages: list[Any] = []  # each model call's usage, summed once at the end
        if verbose:
            _enable_verbose_output()
        self.log_level = logging.INFO if verbose else logging.DEBUG
        self.logging = logger.isEnabledFor(self.log_level)
        self.started = time.perf_counter() if self.logging else 0.0
        self.run_is_async = function_facts(getattr(run, "__func__", run)).is_coroutine

    def log(self, message: str, *args: Any) -> None:
        if self.logging:
            logger.log(self.log_level, message, *args)

    # ------------------------------------------------------------- run

    async def run(self, trim_function: TrimFunction | None) -> dict[str, Any] | ToolRunStream:
        offered = self.tools
        if self.logging:
            self.log("run_with_tools: model %s, %d messages, %d tools", self.model, len(self.messages), len(offered))
        if trim_function is not None and not callable(trim_function):
            raise InvalidInputError(f"must be a function (tools, ai, model, messages) -> tools, not "
                                    f"{type(trim_function).__name__}", where="trim_function")
        if trim_function is not None and offered:
            offered = await self._trim(trim_function)
        # Schemas are not meta-validated here: the binding does that on the request
        # (naming the tool and the fault), and doing it twice costs more than the rest of a round.
        offered_by_name = {t.name: t for t in offered}
        tool_payload = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in offered
        ]

        rounds_left = self.rounds_after_first
        round_number = 0
        while offered:
            round_number += 1
            request = self._request(stream=False, tools=tool_payload)
            if self.tool_choice is not None:
                # The caller's choice shapes the first round; later rounds are the model's to decide.
                request["tool_choice"] = self.tool_choice
                self.tool_choice = None
            response = await self._call_model(request, round_number)
            calls = _read_tool_calls(response)
            if not calls:
                # The model answered instead of calling: that is the final answer, no second generation.
                return self._answer(response)
            await self._run_round(response, calls, offered_by_name, round_number)
            if rounds_left == 0:
                break
            rounds_left -= 1

        if offered and self.logging:
            self.log("round limit reached (max_recursive_tool_runs=%d): final answer without tools",
                     self.rounds_after_first)
        final = await self._call_model(self._request(stream=self.stream_final_response), 0)
        return self._answer(final)

    def _request(self, *, stream: bool, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        # A fresh list each call: a client may keep the request, and we go on appending.
        request = {**self.forwarded, "messages": list(self.messages), "stream": stream}
        if tools is not None:
            request["tools"] = tools
        return request

    async def _trim(self, trim_function: TrimFunction) -> list[Tool]:
        started = time.perf_counter()
        chosen = trim_function(list(self.tools), self.ai, self.model, [dict(m) for m in self.messages])
        if inspect.isawaitable(chosen):
            chosen = await chosen
        if chosen is None or isinstance(chosen, (str, bytes, Mapping)) or not isinstance(chosen, Iterable):
            raise InvalidInputError(f"trim_function must return a list of tools, not {type(chosen).__name__}",
                                    where="trim_function")
        by_name = {t.name: t for t in self.tools}
        offered: list[Tool] = []
        for item in chosen:
            name = tool_name_and_description(item)[0]
            if name not in by_name:
                raise InvalidInputError(f"trim_function returned a tool that was not given: {name!r}",
                                        where="trim_function")
            if by_name[name] not in offered:
                offered.append(by_name[name])
        if self.logging:
            self.log("trim: %d -> %d tools in %.1f ms: %s", len(self.tools), len(offered),
                     (time.perf_counter() - started) * 1000, ", ".join(t.name for t in offered))
        return offered

    async def _call_model(self, request: dict[str, Any], round_number: int) -> Any:
        """One model call; ``round_number`` 0 is the final answer."""
        started = time.perf_counter() if self.logging else 0.0
        label = (f"round {round_number}" if round_number else "final answer") if self.logging else ""
        if self.logging:
            self.log("%s: AI.run with %d messages, %d tools, stream=%s", label, len(request["messages"]),
                     len(request.get("tools", ())), request["stream"])
        if self.run_is_async:
            response = await self.ai.run(self.model, request)
        else:
            response = await call_model(self.ai, self.model, request)
        if request["stream"] and not _is_mapping(response):
            if self.logging:
                self.log("%s: stream opened in %.1f ms", label, (time.perf_counter() - started) * 1000)
            return response
        if not _is_mapping(response):
            raise EngineError(f"{type(self.ai).__name__}.run returned {type(response).__name__}; "
                              "expected a dict like {'response': ..., 'tool_calls': [...]}")
        self.usages.append(response.get("usage"))
        if self.logging:
            calls = response.get("tool_calls") or []
            self.log("%s: %.1f ms, usage %s, %d tool call(s), text %s", label, (time.perf_counter() - started) * 1000,
                     json.dumps(response.get("usage")), len(calls), _short(response.get("response") or ""))
        return response

    # ----------------------------------------------------------- tools

    async def _run_round(self, response: Mapping[str, Any], calls: list[_Call],
                         offered: Mapping[str, Tool], round_number: int) -> None:
        seen_ids: set[str] = set()
        for call in calls:
            if call.id in seen_ids:  # results are matched to calls by id: keep them unique
                call.id = new_call_id()
            seen_ids.add(call.id)
            call.arguments, call.error = _decode_arguments(call.raw_arguments)
        self.messages.append({
            "role": "assistant",
            "content": response.get("response") or "",
            "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": str(c.name), "arguments": _to_json(c.arguments or {})}}
                for c in calls
            ],
        })
        if len(calls) == 1:
            contents = [await self._execute(calls[0], offered)]
        else:
            started = time.perf_counter()
            contents = await asyncio.gather(*(self._execute(c, offered) for c in calls))
            self.log("round %d: %d calls done in %.1f ms", round_number, len(calls),
                     (time.perf_counter() - started) * 1000)
        for call, content in zip(calls, contents):
            self.messages.append({"role": "tool", "name": str(call.name), "tool_call_id": call.id, "content": content})

    async def _execute(self, call: _Call, offered: Mapping[str, Tool]) -> str:
        """The text the model gets back for one call; never raises for the tool's own failures."""
        started = time.perf_counter() if self.logging else 0.0
        tool = offered.get(call.name) if isinstance(call.name, str) else None
        if tool is None:
            outcome = (f"Error: there is no tool named {call.name!r}. "
                       f"The available tools are: {', '.join(offered) or 'none'}.")
        elif call.error is not None:
            outcome = f"Error: the arguments for {tool.name!r} {call.error}. Call it again with a JSON object."
        elif self.strict_validation and (problems := tool.schema_errors(call.arguments or {})):
            outcome = (f"Error: the arguments for {tool.name!r} do not match its schema: {'; '.join(problems)}. "
                       "Call it again with corrected arguments.")
        else:
            outcome = await self._invoke(tool, call.arguments or {})
        if self.logging:
            self.log("tool %s(%s) -> %s [%.1f ms]", call.name, _short(json.dumps(call.arguments, default=str)),
                     _short(outcome), (time.perf_counter() - started) * 1000)
        return outcome

    async def _invoke(self, tool: Tool, arguments: dict[str, Any]) -> str:
        limit = tool.timeout if tool.timeout is not None else self.tool_timeout
        try:
            if limit is None:
                result = await tool.acall(arguments)
            else:
                result = await _within(limit, tool.acall(arguments))
        except _Expired:
            return f"Error: {tool.name!r} did not finish within {limit:g} s and was abandoned."
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            return f"Error: the arguments for {tool.name!r} are invalid: {problems}. Call it again with corrected arguments."
        except Exception as exc:  # noqa: BLE001 - the model is told, and the run goes on
            detail = str(exc)
            return f"Error: {tool.name!r} failed: {type(exc).__name__}{': ' + detail if detail else ''}"
        return _as_content(result)

    # ---------------------------------------------------------- answer

    def _answer(self, response: Any) -> dict[str, Any] | ToolRunStream:
        if self.stream_final_response:
            if isinstance(response, Mapping):
                # Answered in a tool round (or the client does not stream): replay it as
                # events. Its usage is already counted, so the stream must not add it again.
                return ToolRunStream(_events_of(response), self.messages, _sum_usage(self.usages), self._log_done,
                                     count_usage=False)
            if hasattr(response, "__aiter__"):
                events: AsyncIterator[Any] = aiter(response)
            elif hasattr(response, "__iter__"):
                events = _async_events(iter(response))
            else:
                raise EngineError(f"{type(self.ai).__name__}.run(stream=True) returned {type(response).__name__}; "
                                  "expected an iterator of events")
            return ToolRunStream(events, self.messages, _sum_usage(self.usages), self._log_done)
        result = dict(response)
        self.messages.append({"role": "assistant", "content": response.get("response") or ""})
        result["messages"] = self.messages
        result["total_usage"] = _sum_usage(self.usages)
        self._log_done(result["total_usage"])
        return result

    def _log_done(self, total_usage: dict[str, int]) -> None:
        if self.logging:
            self.log("run_with_tools done in %.1f ms, total usage %s",
                     (time.perf_counter() - self.started) * 1000, json.dumps(total_usage))


# ------------------------------------------------------------------ helpers


# Call ids for models that give none (Workers AI's do not): the shape of
# toolrun._types.new_call_id, but a counter behind a per-process random prefix
# instead of 12 fresh random bytes per call.
_CALL_ID_PREFIX = "call_" + secrets.token_hex(6)
_call_numbers = itertools.count()


def new_call_id() -> str:
    return f"{_CALL_ID_PREFIX}{next(_call_numbers):012x}"


class _Expired(Exception):
    """A tool call ran past its time limit (distinct from a TimeoutError the tool raises itself)."""


def _expire(task: asyncio.Task, fired: list[bool]) -> None:
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

    __slots__ = ("_limit", "_coro")

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


def _initial_messages(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = inputs.get("messages")
    if messages is None and isinstance(inputs.get("prompt"), str):
        return [{"role": "user", "content": inputs["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages must be a non-empty list of message objects", where="inputs.messages")
    for i, message in enumerate(messages):
        if not _is_mapping(message):
            raise InvalidInputError(f"a message must be an object, not {type(message).__name__}",
                                    where=f"inputs.messages[{i}]")
    return list(messages)  # appended to, so the caller's list stays as it was; the dicts are never changed


def _collect_tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if type(raw) is not list and (isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence)):
        raise InvalidInputError("tools must be a list", where="inputs.tools")
    tools = [as_tool(item, f"inputs.tools[{i}]") for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, t in enumerate(tools):
        if t.function is None:
            raise InvalidInputError(f"tool {t.name!r} has no function for run_with_tools to run",
                                    where=f"inputs.tools[{i}].function")
        if t.name in seen:
            raise InvalidInputError(f"two tools are named {t.name!r}", where=f"inputs.tools[{i}].name")
        seen.add(t.name)
    return tools


def _read_tool_calls(response: Mapping[str, Any]) -> list[_Call]:
    """Calls in Workers AI's ``{name, arguments}`` or OpenAI's ``{id, function: {...}}`` shape."""
    raw = response.get("tool_calls")
    if not raw or type(raw) is not list:
        return []
    calls = []
    for item in raw:
        if not _is_mapping(item):
            continue
        function = item.get("function")
        body = function if function is not None and _is_mapping(function) else item
        call_id = item.get("id")
        calls.append(_Call(str(call_id) if call_id else new_call_id(), body.get("name"), body.get("arguments")))
    return calls


def _decode_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, f"are not valid JSON ({exc.msg} at character {exc.pos}: {_short(raw, 120)})"
    if not _is_mapping(raw):
        return None, f"must be a JSON object, not {type(raw).__name__}"
    return dict(raw), None


def _as_content(result: Any) -> str:
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


def _short(text: str, limit: int = _LOG_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


_verbose_lock = threading.Lock()


def _enable_verbose_output() -> None:
    """``verbose=True`` must show something even when the application configured no logging."""
    with _verbose_lock:
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        if not logger.hasHandlers():
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            logger.addHandler(handler)
