"""``run_with_tools``: embedded function calling, the Python form of ai-utils' ``runWithTools``.

One run is: (optionally) trim the tools; ask the model with the tools on
offer; run every call it makes — concurrently, each under a timeout — and put
the results back into the conversation; repeat for up to
``max_recursive_tool_runs`` more rounds; then generate the final answer
without tools (streamed if asked).

Where it departs from ai-utils 1.0.1, on purpose:

- Failures go back to the model instead of vanishing: a hallucinated tool
  name, arguments that are not JSON, arguments that break the schema
  (``strict_validation``), a raising or hanging function all become a
  ``{"error": ...}`` tool message, so the next round can correct it.
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

import inspect
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Unpack

from .._errors import EngineError, InvalidInputError
from .._types import check_unique_names, message_list
from .._wire import message_tool_call, openai_message_call, openai_tool, tool_call
from ..tools import Tool, as_tool, tool_name_and_description
from ._client import ModelClient, call_model, is_async_client
from ._execute import PendingCall, read_tool_calls, run_calls
from ._options import RunOptions, RunOptionsArgs, TrimFunction
from ._stream import ToolRunStream, async_events, events_of, sum_usage

logger = logging.getLogger("toolrun.embedded")

# Inputs that run_with_tools manages itself; everything else is forwarded to every model call.
_MANAGED_INPUTS = frozenset({"messages", "prompt", "tools", "stream", "tool_choice", "functions"})
_LOG_VALUE_CHARS = 500


async def run_with_tools(
    ai: ModelClient, model: str, inputs: Mapping[str, Any], **options: Unpack[RunOptionsArgs]
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

    The options (``strict_validation``, ``max_recursive_tool_runs``,
    ``stream_final_response``, ``verbose``, ``trim_function``, ``tool_timeout``)
    are described on :class:`RunOptions`.

    Returns ``AI.run``'s result for the final answer, plus ``messages`` (the
    whole conversation, tool turns and answer included) and ``total_usage``
    (tokens summed over every model call of the run; ``usage`` stays the final call's).
    With ``stream_final_response`` it returns a :class:`ToolRunStream` of events.
    """
    return await ToolLoop(ai, model, inputs, RunOptions(**options)).run()


class ToolLoop:
    def __init__(self, ai: ModelClient, model: str, inputs: Mapping[str, Any], options: RunOptions) -> None:
        if not callable(getattr(ai, "run", None)):
            raise InvalidInputError(f"ai must have a run(model, inputs) method; got {type(ai).__name__}", where="ai")
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(f"inputs must be a dict, not {type(inputs).__name__}", where="inputs")
        self.ai = ai
        self.model = model
        self.options = options
        # The conversation. The assistant turns the loop adds keep their calls' arguments as dicts: toolrun's
        # own AI reads them as they are; JSON text is written only for a foreign client and for the caller.
        self.messages = _initial_messages(inputs)
        self._given = len(self.messages)  # the caller's messages, passed on as they came
        self._encoded: list[dict[str, Any]] = []  # self.messages with arguments as JSON text, so far
        self._reads_dicts = getattr(ai, "reads_dict_arguments", False) is True
        self.tools = _collect_tools(inputs.get("tools"))
        self.tool_choice = inputs.get("tool_choice")
        self.forwarded = {k: v for k, v in inputs.items() if k not in _MANAGED_INPUTS}
        self.usages: list[Any] = []  # each model call's usage, summed once at the end
        if options.verbose:
            _enable_verbose_output()
        self.log_level = logging.INFO if options.verbose else logging.DEBUG
        self.logging = logger.isEnabledFor(self.log_level)
        self.started = time.perf_counter() if self.logging else 0.0
        self.run_is_async = is_async_client(ai)

    def log(self, message: str, *args: Any) -> None:
        if self.logging:
            logger.log(self.log_level, message, *args)

    # ------------------------------------------------------------- run

    async def run(self) -> dict[str, Any] | ToolRunStream:
        offered = self.tools
        if self.logging:
            self.log("run_with_tools: model %s, %d messages, %d tools", self.model, len(self.messages), len(offered))
        if self.options.trim_function is not None and offered:
            offered = await self._trim(self.options.trim_function)
        # Schemas are not meta-validated here: the binding does that on the request
        # (naming the tool and the fault), and doing it twice costs more than the rest of a round.
        offered_by_name = {t.name: t for t in offered}
        tool_payload = [openai_tool(t) for t in offered]

        rounds_left = self.options.max_recursive_tool_runs
        round_number = 0
        while offered:
            round_number += 1
            request = self._request(stream=False, tools=tool_payload)
            if self.tool_choice is not None:
                # The caller's choice shapes the first round; later rounds are the model's to decide.
                request["tool_choice"] = self.tool_choice
                self.tool_choice = None
            response = await self._call_model(request, round_number)
            calls = read_tool_calls(response)
            if not calls:
                # The model answered instead of calling: that is the final answer, no second generation.
                return self._answer(response)
            await self._run_round(response, calls, offered_by_name, round_number)
            if rounds_left == 0:
                break
            rounds_left -= 1

        if offered and self.logging:
            self.log(
                "round limit reached (max_recursive_tool_runs=%d): final answer without tools",
                self.options.max_recursive_tool_runs,
            )
        final = await self._call_model(self._request(stream=self.options.stream_final_response), 0)
        return self._answer(final)

    def _request(self, *, stream: bool, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        # A fresh list each call: a client may keep the request, and we go on appending.
        messages = list(self.messages) if self._reads_dicts else self._wire_messages()
        request = {**self.forwarded, "messages": messages, "stream": stream}
        if tools is not None:
            request["tools"] = tools
        return request

    def _wire_messages(self) -> list[dict[str, Any]]:
        """The conversation as OpenAI's chat API has it (a fresh list); each turn is converted once."""
        for i in range(len(self._encoded), len(self.messages)):
            message = self.messages[i]
            if i >= self._given and message.get("tool_calls"):
                message = {**message, "tool_calls": [openai_message_call(c) for c in message["tool_calls"]]}
            self._encoded.append(message)
        return list(self._encoded)

    async def _trim(self, trim_function: TrimFunction) -> list[Tool]:
        started = time.perf_counter()
        chosen = trim_function(list(self.tools), self.ai, self.model, [dict(m) for m in self.messages])
        if inspect.isawaitable(chosen):
            chosen = await chosen
        if chosen is None or isinstance(chosen, (str, bytes, Mapping)) or not isinstance(chosen, Iterable):
            raise InvalidInputError(
                f"trim_function must return a list of tools, not {type(chosen).__name__}", where="trim_function"
            )
        by_name = {t.name: t for t in self.tools}
        offered: list[Tool] = []
        for item in chosen:
            name = tool_name_and_description(item)[0]
            if name not in by_name:
                raise InvalidInputError(
                    f"trim_function returned a tool that was not given: {name!r}", where="trim_function"
                )
            if by_name[name] not in offered:
                offered.append(by_name[name])
        if self.logging:
            self.log(
                "trim: %d -> %d tools in %.1f ms: %s",
                len(self.tools),
                len(offered),
                (time.perf_counter() - started) * 1000,
                ", ".join(t.name for t in offered),
            )
        return offered

    async def _call_model(self, request: dict[str, Any], round_number: int) -> Any:
        """One model call; ``round_number`` 0 is the final answer."""
        started = time.perf_counter() if self.logging else 0.0
        label = (f"round {round_number}" if round_number else "final answer") if self.logging else ""
        if self.logging:
            self.log(
                "%s: AI.run with %d messages, %d tools, stream=%s",
                label,
                len(request["messages"]),
                len(request.get("tools", ())),
                request["stream"],
            )
        if self.run_is_async:
            response = await self.ai.run(self.model, request)
        else:
            response = await call_model(self.ai, self.model, request)
        if request["stream"] and not isinstance(response, Mapping):
            if self.logging:
                self.log("%s: stream opened in %.1f ms", label, (time.perf_counter() - started) * 1000)
            return response
        if not isinstance(response, Mapping):
            raise EngineError(
                f"{type(self.ai).__name__}.run returned {type(response).__name__}; "
                "expected a dict like {'response': ..., 'tool_calls': [...]}"
            )
        self.usages.append(response.get("usage"))
        if self.logging:
            calls = response.get("tool_calls") or []
            self.log(
                "%s: %.1f ms, usage %s, %d tool call(s), text %s",
                label,
                (time.perf_counter() - started) * 1000,
                json.dumps(response.get("usage")),
                len(calls),
                _short(response.get("response") or ""),
            )
        return response

    # ----------------------------------------------------------- tools

    async def _run_round(
        self, response: Mapping[str, Any], calls: list[PendingCall], offered: Mapping[str, Tool], round_number: int
    ) -> None:
        self.messages.append(
            {
                "role": "assistant",
                "content": response.get("response") or "",
                "tool_calls": [message_tool_call(tool_call(str(c.name), c.arguments or {}, c.id)) for c in calls],
            }
        )
        started = time.perf_counter()
        outcomes = await run_calls(
            calls, offered, strict_validation=self.options.strict_validation, tool_timeout=self.options.tool_timeout
        )
        for call, (content, seconds) in zip(calls, outcomes, strict=True):
            if self.logging:
                self.log(
                    "tool %s(%s) -> %s [%.1f ms]",
                    call.name,
                    _short(json.dumps(call.arguments, default=str)),
                    _short(content),
                    seconds * 1000,
                )
            self.messages.append({"role": "tool", "name": str(call.name), "tool_call_id": call.id, "content": content})
        if len(calls) > 1:
            self.log(
                "round %d: %d calls done in %.1f ms", round_number, len(calls), (time.perf_counter() - started) * 1000
            )

    # ---------------------------------------------------------- answer

    def _answer(self, response: Any) -> dict[str, Any] | ToolRunStream:
        if self.options.stream_final_response:
            if isinstance(response, Mapping):
                # Answered in a tool round (or the client does not stream): replay it as
                # events. Its usage is already counted, so the stream must not add it again.
                return ToolRunStream(
                    events_of(response),
                    self._wire_messages(),
                    sum_usage(self.usages),
                    self._log_done,
                    count_usage=False,
                )
            if hasattr(response, "__aiter__"):
                events: AsyncIterator[Any] = aiter(response)
            elif hasattr(response, "__iter__"):
                events = async_events(iter(response))
            else:
                raise EngineError(
                    f"{type(self.ai).__name__}.run(stream=True) returned {type(response).__name__}; "
                    "expected an iterator of events"
                )
            return ToolRunStream(events, self._wire_messages(), sum_usage(self.usages), self._log_done)
        result = dict(response)
        self.messages.append({"role": "assistant", "content": response.get("response") or ""})
        result["messages"] = self._wire_messages()
        result["total_usage"] = sum_usage(self.usages)
        self._log_done(result["total_usage"])
        return result

    def _log_done(self, total_usage: dict[str, int]) -> None:
        if self.logging:
            self.log(
                "run_with_tools done in %.1f ms, total usage %s",
                (time.perf_counter() - self.started) * 1000,
                json.dumps(total_usage),
            )


# ------------------------------------------------------------------ helpers


def _initial_messages(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = inputs.get("messages")
    if messages is None and isinstance(inputs.get("prompt"), str):
        return [{"role": "user", "content": inputs["prompt"]}]
    # Appended to, so the caller's list stays as it was; the dicts are never changed.
    return list(message_list(messages, "inputs.messages"))  # type: ignore[arg-type]


def _collect_tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise InvalidInputError("tools must be a list", where="inputs.tools")
    tools = [as_tool(item, f"inputs.tools[{i}]") for i, item in enumerate(raw)]
    for i, t in enumerate(tools):
        if t.function is None:
            raise InvalidInputError(
                f"tool {t.name!r} has no function for run_with_tools to run", where=f"inputs.tools[{i}].function"
            )
    check_unique_names((t.name for t in tools), "inputs.tools")
    return tools


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
