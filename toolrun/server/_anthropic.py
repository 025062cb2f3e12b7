"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) over the same binding.

The request's ``system``, ``messages``, ``tools`` and ``tool_choice`` become the
binding's inputs through :mod:`toolrun._wire`'s Anthropic converters; the binding
validates and runs them as it does chat completions, so its guarantees hold here:
every call parses and fits its tool's schema, ``any`` (required) and ``tool``
(named) choices are enforced by the grammar. The answer goes back as content
blocks, or as Anthropic's SSE (``message_start``, ``content_block_*``,
``message_delta``, ``message_stop``, ``ping``).

What differs from Anthropic's own API, on purpose:

- ``stop_sequences`` are matched here, on the text as it streams: the model is
  stopped at the first one (``stop_reason: "stop_sequence"``). Its
  ``output_tokens`` is then the number of text pieces the engine streamed
  (one per token on the local engine), as the engine's own count never came.
- A stream's ``message_start`` carries ``input_tokens: 0``; the prompt's real
  count comes in ``message_delta`` (the SDKs take it from there), since the
  engine counts the prompt only once it has read it.
- ``metadata``, ``service_tier``, ``thinking`` (no model here thinks aloud) and
  ``cache_control`` are accepted and ignored; the ``anthropic-version`` and
  ``anthropic-beta`` headers too. Server tools, images, documents and a last
  assistant turn to continue (prefill) are refused with a 400 that names them.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import InvalidInputError, ToolrunError
from .._wire import (
    Event,
    FinalEvent,
    IndexedToolCall,
    RunResult,
    anthropic_content,
    anthropic_input_json_delta,
    anthropic_messages,
    anthropic_stop_reason,
    anthropic_text_block,
    anthropic_text_delta,
    anthropic_tool,
    anthropic_tool_choice,
    anthropic_tool_use,
    anthropic_usage,
    encode_arguments,
    final_event,
)
from ..ai import collect, parse_inputs
from ..ai._inputs import build_request
from ..engines import GenerationRequest
from ._body import reject_unknown_fields, required_model
from ._endpoint import endpoint
from ._errors import anthropic_error, anthropic_error_body
from ._state import ServerState
from ._streaming import EventStreamResponse, event_frames, run_unless_disconnected, sse_event

API = "anthropic"

#: Request fields handed to the binding as they are (it validates them).
_PASSED_THROUGH = ("temperature", "top_p", "top_k")
#: Fields that are accepted and have no effect here.
_IGNORED = ("metadata", "service_tier", "thinking", "cache_control")
_HANDLED = ("model", "messages", "system", "tools", "tool_choice", "max_tokens", "stop_sequences", "stream")
_KNOWN = frozenset(_PASSED_THROUGH + _IGNORED + _HANDLED)
_KNOWN_FOR_COUNTING = frozenset(("model", "messages", "system", "tools", "tool_choice", *_IGNORED))

#: toolrun's own bounds on stop_sequences (each is searched for in the text after every piece).
_MAX_STOP_SEQUENCES = 64
_MAX_STOP_SEQUENCE_CHARS = 1000


class MessagesRequest(NamedTuple):
    model: str
    inputs: dict[str, Any]
    stream: bool
    stop_sequences: tuple[str, ...]
    #: Where each of the binding's messages came from in the request (``system``, ``messages[1].content[2]``).
    origins: list[str]


def to_binding_inputs(body: dict[str, Any], *, counting: bool = False) -> MessagesRequest:
    """The binding's inputs from a Messages request (``counting``: a count_tokens request, no max_tokens)."""
    reject_unknown_fields(body, _KNOWN_FOR_COUNTING if counting else _KNOWN, noun="field")
    model = required_model(body)
    if not counting and "max_tokens" not in body:
        raise InvalidInputError("max_tokens is required: the most tokens the answer may have", where="max_tokens")
    messages, origins = anthropic_messages(body.get("system"), body.get("messages"))
    inputs: dict[str, Any] = {k: body[k] for k in _PASSED_THROUGH if body.get(k) is not None}
    inputs["messages"] = messages
    if body.get("tools") is not None:
        tools = body["tools"]
        if not isinstance(tools, list):
            raise InvalidInputError("tools must be a list of tools", where="tools")
        inputs["tools"] = [anthropic_tool(tool, i) for i, tool in enumerate(tools)]
    inputs["tool_choice"], inputs["parallel_tool_calls"] = anthropic_tool_choice(body.get("tool_choice"))
    if counting:
        return MessagesRequest(model, inputs, False, (), origins)
    inputs["max_tokens"] = body["max_tokens"]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInputError(f"stream must be true or false, not {json.dumps(stream)}", where="stream")
    inputs["stream"] = stream
    return MessagesRequest(model, inputs, stream, _stop_sequences(body.get("stop_sequences")), origins)


def _stop_sequences(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > _MAX_STOP_SEQUENCES:
        raise InvalidInputError(
            f"stop_sequences must be a list of at most {_MAX_STOP_SEQUENCES} strings", where="stop_sequences"
        )
    for i, sequence in enumerate(raw):
        if not isinstance(sequence, str) or not 0 < len(sequence) <= _MAX_STOP_SEQUENCE_CHARS:
            raise InvalidInputError(
                f"a stop sequence must be a string of 1 to {_MAX_STOP_SEQUENCE_CHARS} characters",
                where=f"stop_sequences[{i}]",
            )
    return tuple(raw)


def _in_client_terms(error: ToolrunError, origins: list[str]) -> ToolrunError:
    """Point an error the binding found at the request's own field (the binding knows its own shapes)."""
    where = error.where or ""
    message_at = re.match(r"messages\[(\d+)\]", where)
    if message_at and int(message_at.group(1)) < len(origins):
        error.where = origins[int(message_at.group(1))]
    elif tool_at := re.fullmatch(r"(tools\[\d+\])\.parameters(.*)", where):
        error.where = f"{tool_at.group(1)}.input_schema{tool_at.group(2)}"
    elif where == "tool_choice.function.name":
        error.where = "tool_choice.name"
    elif where == "parallel_tool_calls":
        error.where = "tool_choice.disable_parallel_tool_use"
    return error


# ------------------------------------------------------------ stop sequences


class _StopScan:
    """Finds the first stop sequence in text that arrives in pieces, holding back what may begin one."""

    def __init__(self, sequences: tuple[str, ...]) -> None:
        self.sequences = sequences
        self.window = max(len(s) for s in sequences) - 1  # a sequence's start is within this many characters
        self.openers = frozenset(s[0] for s in sequences)
        self.held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The text that may go out now (up to the sequence, when one was found)."""
        buffer = self.held + text
        found = [(at, s) for s in self.sequences if (at := buffer.find(s)) >= 0]
        if found:
            at, self.matched = min(found)
            self.held = ""
            return buffer[:at]
        tail_start = max(0, len(buffer) - self.window)
        hold_from = next((i for i in range(tail_start, len(buffer)) if buffer[i] in self.openers), len(buffer))
        self.held = buffer[hold_from:]
        return buffer[:hold_from]

    def release(self) -> str:
        """What was held back, once the text is over without a sequence."""
        held, self.held = self.held, ""
        return held


async def _until_stop_sequence(
    events: AsyncGenerator[Event, None], scan: _StopScan, prompt_tokens: Callable[[], Awaitable[int]]
) -> AsyncGenerator[Event, None]:
    """The binding's events with each stop sequence looked for in the text; at the first, the model is
    stopped and a last event says what it used (see the module's notes on the count)."""
    pieces = 0
    try:
        async for event in events:
            if "usage" in event or "tool_call_delta" in event or "tool_calls" in event:
                if scan.held:  # the text is over: what was held back began no sequence
                    yield {"response": scan.release()}
                yield event
                continue
            pieces += 1
            text = scan.feed(event["response"])
            if text:
                yield {"response": text}
            if scan.matched is not None:
                await events.aclose()  # stop the model at the sequence, as Anthropic's API does
                yield final_event(await prompt_tokens(), pieces, "stop")
                return
    finally:
        await events.aclose()


# ------------------------------------------------------------ token counts


@runtime_checkable
class _PromptTokenizer(Protocol):
    """An engine that can tokenize a request's prompt exactly as it would read it (the local engine)."""

    def prompt_tokens(self, request: GenerationRequest) -> list[int]: ...


async def _input_tokens(state: ServerState, model: str, inputs: dict[str, Any]) -> int:
    """The prompt's length in the model's tokens; for an engine without a tokenizer here (a remote one),
    an estimate of one token per four characters of the messages and tools as JSON."""
    entry = state.ai.catalog.get(model)
    request = build_request(parse_inputs({**inputs, "stream": False}), function_calling=entry.function_calling)
    await state.load(entry.name)
    engine = await state.ai.engine(entry.name)
    if isinstance(engine, _PromptTokenizer):
        return len(await asyncio.to_thread(engine.prompt_tokens, request))
    tools = [tool.as_openai() for tool in request.tools]
    return math.ceil(len(json.dumps([request.messages, tools], ensure_ascii=False)) / 4)


@endpoint(API, "count_tokens", anthropic_error)
async def count_tokens(request: Request, state: ServerState) -> Response:
    body = await state.read_body(request)
    parsed = to_binding_inputs(body, counting=True)
    try:
        count = await _input_tokens(state, parsed.model, parsed.inputs)
    except ToolrunError as exc:
        raise _in_client_terms(exc, parsed.origins) from None
    return JSONResponse({"input_tokens": count})


# ------------------------------------------------------------ messages


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def _sse(payload: dict[str, Any]) -> bytes:
    """One of Anthropic's stream events: its ``type`` is also the SSE event name."""
    return sse_event(payload["type"], json.dumps(payload, ensure_ascii=False))


def _error_frame(error: ToolrunError) -> bytes:
    return _sse(anthropic_error_body(error))


@endpoint(API, "messages", anthropic_error)
async def messages(request: Request, state: ServerState) -> Response:
    body = await state.read_body(request)
    parsed = to_binding_inputs(body)
    state.cap_max_tokens(parsed.inputs)
    scan = _StopScan(parsed.stop_sequences) if parsed.stop_sequences else None
    # With stop sequences the answer is read as a stream (to stop the model at one), whether or not it is sent so.
    inputs = {**parsed.inputs, "stream": parsed.stream or scan is not None}
    try:
        result, ticket = await state.run(request, parsed.model, inputs)
    except ToolrunError as exc:
        raise _in_client_terms(exc, parsed.origins) from None
    message: dict[str, Any] = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if isinstance(result, dict):  # the whole result: neither streamed nor scanned
        return JSONResponse(_whole_message(message, result, None))
    events = result
    if scan is not None:
        events = _until_stop_sequence(result, scan, lambda: _input_tokens(state, parsed.model, parsed.inputs))
    if not parsed.stream:
        try:
            whole = await run_unless_disconnected(request, collect(events))
        finally:
            ticket.release()
        state.metrics.observe_usage(ticket.model, whole["usage"], ticket.held_seconds)
        return JSONResponse(_whole_message(message, whole, scan))
    frames = event_frames(
        events,
        _BlockRenderer(scan).render,
        opening=[
            _sse({"type": "message_start", "message": {**message, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            _sse({"type": "ping"}),
        ],
        on_usage=lambda used: state.metrics.observe_usage(ticket.model, used, ticket.held_seconds),
        error_frame=_error_frame,
        done=False,  # Anthropic's stream ends with message_stop, not OpenAI's [DONE]
    )
    return EventStreamResponse(frames, on_finish=lambda _: ticket.release())


def _whole_message(message: dict[str, Any], result: RunResult, scan: _StopScan | None) -> dict[str, Any]:
    matched = scan.matched if scan is not None else None
    return {
        **message,
        "content": anthropic_content(result["response"], result["tool_calls"]),
        "stop_reason": "stop_sequence" if matched else anthropic_stop_reason(result["finish_reason"]),
        "stop_sequence": matched,
        "usage": anthropic_usage(result["usage"]),
    }


class _BlockRenderer:
    """Binding events as Anthropic's content-block events, after ``message_start``.

    Blocks follow one another: a new one (text, or a call) closes the open one.
    A call whose arguments the engine streamed as it decoded them goes out as
    those fragments (``input_json_delta``s); any other call as one delta when
    the checked call arrives. Whitespace before a text block's first words
    waits for them, so a call the model writes after a newline opens no empty
    text block.
    """

    def __init__(self, scan: _StopScan | None) -> None:
        self.scan = scan
        self.index = 0  # the open block's index, or the next one's
        self.open_key: str | None = None  # "text", or "call:<its index in the turn>"
        self.streamed: set[int] = set()  # calls whose arguments went out as fragments
        self.blank = ""

    def render(self, event: Event) -> list[bytes]:
        if "tool_call_delta" in event:
            part = event["tool_call_delta"]
            self.streamed.add(part["index"])
            frames = self._enter(f"call:{part['index']}", anthropic_tool_use(part["id"], part["name"], {}))
            return [*frames, self._delta(anthropic_input_json_delta(part["arguments"]))]
        if "tool_calls" in event:
            return [frame for call in event["tool_calls"] for frame in self._whole_call(call)]
        if "usage" in event:
            return [*self._close(), self._message_delta(event), _sse({"type": "message_stop"})]
        return self._text(event["response"])

    def _text(self, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self.open_key != "text":
            self.blank += text
            if not self.blank.strip():
                return []
            text, self.blank = self.blank, ""
            frames = self._enter("text", anthropic_text_block(""))
        return [*frames, self._delta(anthropic_text_delta(text))]

    def _whole_call(self, call: IndexedToolCall) -> list[bytes]:
        key = f"call:{call['index']}"
        if call["index"] in self.streamed:  # its fragments went out: the checked call only closes its block
            return self._close() if self.open_key == key else []
        frames = self._enter(key, anthropic_tool_use(call["id"], call["name"], {}))
        frames.append(self._delta(anthropic_input_json_delta(encode_arguments(call["arguments"]))))
        return [*frames, *self._close()]

    def _enter(self, key: str, block: dict[str, Any]) -> list[bytes]:
        """Open the block ``key`` names (closing the open one), unless it is the open one."""
        if self.open_key == key:
            return []
        frames = self._close()
        self.open_key, self.blank = key, ""
        frames.append(_sse({"type": "content_block_start", "index": self.index, "content_block": block}))
        return frames

    def _close(self) -> list[bytes]:
        if self.open_key is None:
            return []
        self.open_key = None
        self.index += 1
        return [_sse({"type": "content_block_stop", "index": self.index - 1})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _sse({"type": "content_block_delta", "index": self.index, "delta": delta})

    def _message_delta(self, event: FinalEvent) -> bytes:
        matched = self.scan.matched if self.scan is not None else None
        reason = "stop_sequence" if matched else anthropic_stop_reason(event["finish_reason"])
        delta = {"stop_reason": reason, "stop_sequence": matched}
        return _sse({"type": "message_delta", "delta": delta, "usage": anthropic_usage(event["usage"])})


def routes() -> list[Route]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
