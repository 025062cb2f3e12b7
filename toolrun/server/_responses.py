"""OpenAI's Responses API (``POST /v1/responses``, the Open Responses shape) over the same binding.

The request's ``input`` (a string, or ``message`` / ``function_call`` /
``function_call_output`` items) and ``instructions`` become chat messages
(``_wire.responses_messages``); flat function ``tools``, ``tool_choice``,
``parallel_tool_calls``, ``max_output_tokens``, ``temperature``, ``top_p`` and
``text.format`` map onto the binding's inputs, which checks them and enforces
the tool choice with its grammar, as for chat completions. The answer comes
back as ``message`` and ``function_call`` output items, whole or as the API's
event stream (``response.created`` ... ``response.completed``, each event with
its ``sequence_number``).

Stateless: this server stores no responses, so ``previous_response_id``,
``conversation``, ``prompt`` and ``store: true`` are refused with a 400 naming
the field (send the whole conversation as ``input`` items instead); so are
tool types other than ``function`` (``web_search``, ``file_search``... are
OpenAI's hosted tools) and ``background`` runs.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import InvalidInputError, ToolrunError
from .._wire import (
    Event,
    FinishReason,
    ToolCall,
    Usage,
    encode_arguments,
    openai_tool_choice,
    responses_function_call_item,
    responses_message_item,
    responses_messages,
    responses_text_part,
    responses_usage,
)
from ..ai import RunInputs
from ._body import reject_unknown_fields, required_model
from ._endpoint import endpoint
from ._errors import openai_error
from ._state import ServerState
from ._streaming import EventStreamResponse, event_frames, sse_event

API = "openai"

#: Accepted and without effect here (no reasoning, no caching tiers, nothing stored to label).
_IGNORED = (
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "truncation",
    "include",
    "reasoning",
    "stream_options",
)
#: Refused unless empty: what needs state this server does not keep, or features it lacks.
_STATEFUL = {
    "previous_response_id": "this server is stateless and stores no responses; send the whole conversation "
    "as input items (function_call and function_call_output included) instead of previous_response_id",
    "conversation": "this server is stateless and keeps no conversations; send the whole conversation as input items",
    "prompt": "stored prompt templates are not supported; send instructions and input",
    "background": "background responses are not supported (nothing is stored to poll); stream instead",
    "max_tool_calls": "max_tool_calls is not supported; parallel_tool_calls: false allows one call",
    "top_logprobs": "logprobs are not supported",
}
_HANDLED = (
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "stream",
    "store",
)
_KNOWN = frozenset(_IGNORED + _HANDLED + tuple(_STATEFUL))


@dataclass
class ResponsesRequest:
    """A checked Responses request: the binding's inputs and what the Response object echoes back."""

    model: str
    inputs: dict[str, Any]
    stream: bool
    origins: list[str]  # the request field each message came from, for the binding's errors
    echo: dict[str, Any]


def read_request(body: dict[str, Any]) -> ResponsesRequest:
    """The binding's inputs from a Responses request body; a 400 naming the field for what it cannot do."""
    reject_unknown_fields(body, _KNOWN)
    for field, why in _STATEFUL.items():
        if body.get(field) not in (None, False, 0):
            raise InvalidInputError(why, where=field)
    if body.get("store") not in (None, False):
        raise InvalidInputError(
            "store must be false: this server is stateless and stores no responses (omit it, or send false)",
            where="store",
        )
    model = required_model(body)
    if body.get("input") is None:
        raise InvalidInputError("'input' is required: a string or a list of input items", where="input")
    stream = body.get("stream", False) or False
    if not isinstance(stream, bool):
        raise InvalidInputError(f"stream must be true or false, not {stream!r}", where="stream")
    messages, origins = responses_messages(body["input"], body.get("instructions"))
    inputs: dict[str, Any] = {"messages": messages, "stream": stream}
    tools = _function_tools(body.get("tools"))
    if tools:
        inputs["tools"] = tools
    for field in ("parallel_tool_calls", "temperature", "top_p"):
        if body.get(field) is not None:
            inputs[field] = body[field]
    if body.get("tool_choice") is not None:
        inputs["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("max_output_tokens") is not None:
        inputs["max_tokens"] = body["max_output_tokens"]
    text = _text_config(body.get("text"))
    if text["format"]["type"] != "text":
        inputs["response_format"] = _response_format(text["format"])
    echo = {
        "instructions": body.get("instructions"),
        "tools": tools,
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature", RunInputs.model_fields["temperature"].default),
        "top_p": body.get("top_p", RunInputs.model_fields["top_p"].default),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "text": text,
        "user": body.get("user"),
    }
    return ResponsesRequest(model, inputs, stream, origins, echo)


def _function_tools(tools: Any) -> list[Any]:
    """The tools as they are (Responses' flat function shape is one the binding reads), once every one is a
    function tool: a 400 names every other type (hosted tools run on OpenAI's side, not here)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidInputError("tools must be a list", where="tools")
    foreign = [(i, t.get("type") if isinstance(t, dict) else None) for i, t in enumerate(tools)]
    foreign = [(i, kind) for i, kind in foreign if kind != "function"]
    if foreign:
        kinds = ", ".join(repr(kind) for _, kind in foreign)
        raise InvalidInputError(
            f"unsupported tool type(s) {kinds}: this server runs function tools only "
            '({"type": "function", "name", "description", "parameters"}); hosted tools such as web_search '
            "and file_search are not available",
            where=f"tools[{foreign[0][0]}].type",
        )
    for i, tool in enumerate(tools):
        if "function" in tool:
            raise InvalidInputError(
                "Responses function tools are flat: name, description and parameters beside type, "
                "not inside 'function' (that is the Chat Completions shape)",
                where=f"tools[{i}].function",
            )
    return tools


def _tool_choice(choice: Any) -> Any:
    """``auto`` / ``none`` / ``required`` as they are; ``{"type": "function", "name"}`` in the binding's shape."""
    if not isinstance(choice, dict):
        return choice  # the binding says what is wrong with a string it does not know
    if choice.get("type") != "function":
        raise InvalidInputError(
            f"unsupported tool_choice type {choice.get('type')!r}; send 'auto', 'none', 'required' "
            'or {"type": "function", "name": ...}',
            where="tool_choice.type",
        )
    if not isinstance(choice.get("name"), str):
        raise InvalidInputError("tool_choice of type function needs the tool's name", where="tool_choice.name")
    return openai_tool_choice(choice["name"])


def _text_config(text: Any) -> dict[str, Any]:
    if text is None:
        return {"format": {"type": "text"}}
    if not isinstance(text, dict):
        raise InvalidInputError("text must be an object", where="text")
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidInputError(
            "text.format.type must be 'text', 'json_object' or 'json_schema'", where="text.format.type"
        )
    return {**text, "format": fmt}


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    """``text.format`` as the binding's (Chat Completions') ``response_format``."""
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if not isinstance(fmt.get("schema"), dict):
        raise InvalidInputError("a json_schema format needs its schema (an object)", where="text.format.schema")
    nested = {"name": fmt.get("name", "response"), "schema": fmt["schema"], "strict": fmt.get("strict")}
    return {"type": "json_schema", "json_schema": nested}


_MESSAGE_WHERE = re.compile(r"messages\[(\d+)\](.*)")


def responses_where(where: str | None, origins: list[str]) -> str | None:
    """A binding error's field (named as in its inputs) as the Responses request names it."""
    if where is None:
        return None
    found = _MESSAGE_WHERE.fullmatch(where)
    if found:
        index = int(found[1])
        origin = origins[index] if index < len(origins) else "input"
        return origin if origin in ("input", "instructions") else origin + found[2]
    for theirs, ours in (
        ("messages", "input"),
        ("tool_choice.function", "tool_choice"),
        ("response_format.json_schema", "text.format.schema"),
        ("response_format", "text.format"),
        ("max_tokens", "max_output_tokens"),
    ):
        if where == theirs or where.startswith(theirs + "."):
            return ours + where[len(theirs) :]
    return where


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class _ResponseWriter:
    """The Response object of one request, as it stands at each point of its life."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.response_id = _item_id("resp")
        self.created_at = int(time.time())
        self.model = request.model
        self.echo = request.echo

    def response(
        self, output: list[dict[str, Any]], used: Usage | None = None, finish: FinishReason | None = None
    ) -> dict[str, Any]:
        """``finish`` None: still in progress; ``length``: incomplete (out of output tokens)."""
        status = "in_progress" if finish is None else "incomplete" if finish == "length" else "completed"
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": None if finish is None else int(time.time()),
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": self.model,
            "output": output,
            "previous_response_id": None,
            "reasoning": None,
            "store": False,
            "truncation": "disabled",
            "usage": None if used is None else responses_usage(used),
            **self.echo,
        }


def whole_output(text: str, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """A whole answer's output items: its text as one message, then one function_call per call."""
    output = [responses_message_item(_item_id("msg"), [responses_text_part(text)])] if text else []
    for call in calls:
        arguments = encode_arguments(call["arguments"])
        output.append(responses_function_call_item(_item_id("fc"), call["id"], call["name"], arguments))
    return output


@endpoint(API, "responses", openai_error)
async def create_response(request: Request, state: ServerState) -> Response:
    body = await state.read_body(request)
    parsed = read_request(body)
    state.cap_max_tokens(parsed.inputs, field="max_output_tokens")
    try:
        result, ticket = await state.run(request, parsed.model, parsed.inputs)
    except InvalidInputError as exc:
        exc.where = responses_where(exc.where, parsed.origins)
        raise
    writer = _ResponseWriter(parsed)
    if isinstance(result, dict):  # the whole result: the request did not ask to stream
        output = whole_output(result["response"], result["tool_calls"])
        return JSONResponse(writer.response(output, result["usage"], result["finish_reason"]))
    renderer = _EventRenderer(writer, parsed.origins)
    frames = event_frames(
        result,
        renderer.render,
        opening=renderer.opening(),
        on_usage=lambda used: state.metrics.observe_usage(ticket.model, used, ticket.held_seconds),
        error_frame=renderer.error_frames,
        done=False,  # the Responses stream ends with response.completed, no [DONE]
    )
    return EventStreamResponse(frames, on_finish=lambda _: ticket.release())


@dataclass
class _OpenItem:
    """An output item being streamed: where it sits, and the text or argument fragments sent so far."""

    output_index: int
    item_id: str
    fragments: list[str]
    call_id: str = ""
    name: str = ""


class _EventRenderer:
    """Binding events as the Responses stream: each output item opened, filled by deltas, then closed.

    Text opens a ``message`` item and its ``output_text`` part; a call opens a
    ``function_call`` item whose arguments stream as deltas where the engine
    decoded them under its grammar (else in one delta when the checked call
    arrives). The ``.done`` events repeat the whole text or arguments, as
    OpenAI's do; ``response.completed`` carries every item and the usage.
    """

    def __init__(self, writer: _ResponseWriter, origins: list[str]) -> None:
        self.writer = writer
        self.origins = origins
        self.sequence = 0
        self.output: dict[int, dict[str, Any]] = {}  # finished items by output_index
        self.text: _OpenItem | None = None
        self.calls: dict[int, _OpenItem] = {}  # open calls by the binding's call index
        self.next_index = 0

    def _frame(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return sse_event(kind, json.dumps(payload, ensure_ascii=False))

    def _item_frame(self, kind: str, item: _OpenItem, **fields: Any) -> bytes:
        """An event about an item's content, which names the item and its place in the output."""
        return self._frame(kind, item_id=item.item_id, output_index=item.output_index, **fields)

    def _output_item_frame(self, kind: str, item: _OpenItem, body: dict[str, Any]) -> bytes:
        """``response.output_item.added`` / ``.done``: the item itself at its place in the output."""
        return self._frame(kind, output_index=item.output_index, item=body)

    def _new_item(self, prefix: str) -> _OpenItem:
        item = _OpenItem(self.next_index, _item_id(prefix), [])
        self.next_index += 1
        return item

    def opening(self) -> list[bytes]:
        response = self.writer.response([])
        return [
            self._frame("response.created", response=response),
            self._frame("response.in_progress", response=response),
        ]

    def render(self, event: Event) -> list[bytes]:
        if "tool_call_delta" in event:
            part = event["tool_call_delta"]
            frames = [*self._close_text(), *self._open_call(part["index"], part["id"], part["name"])]
            return frames + self._arguments_delta(self.calls[part["index"]], part["arguments"])
        if "tool_calls" in event:
            frames = self._close_text()
            for call in event["tool_calls"]:
                if call["index"] not in self.calls:
                    frames += self._open_call(call["index"], call["id"], call["name"])
                    frames += self._arguments_delta(self.calls[call["index"]], encode_arguments(call["arguments"]))
                frames += self._close_call(self.calls.pop(call["index"]), "completed")
            return frames
        if "usage" in event:
            frames = self._close_text()
            for index in list(self.calls):  # a call that never arrived checked (the engine dropped it)
                frames += self._close_call(self.calls.pop(index), "incomplete")
            output = [self.output[i] for i in sorted(self.output)]
            response = self.writer.response(output, event["usage"], event["finish_reason"])
            kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
            return [*frames, self._frame(kind, response=response)]
        return self._text_delta(event["response"]) if event["response"] else []

    def _text_delta(self, delta: str) -> list[bytes]:
        frames: list[bytes] = []
        if self.text is None:
            self.text = item = self._new_item("msg")
            opened = responses_message_item(item.item_id, [], "in_progress")
            frames.append(self._output_item_frame("response.output_item.added", item, opened))
            part = responses_text_part("")
            frames.append(self._item_frame("response.content_part.added", item, content_index=0, part=part))
        item = self.text
        item.fragments.append(delta)
        frames.append(self._item_frame("response.output_text.delta", item, content_index=0, delta=delta, logprobs=[]))
        return frames

    def _close_text(self) -> list[bytes]:
        item, self.text = self.text, None
        if item is None:
            return []
        part = responses_text_part("".join(item.fragments))
        done = responses_message_item(item.item_id, [part])
        self.output[item.output_index] = done
        return [
            self._item_frame("response.output_text.done", item, content_index=0, text=part["text"], logprobs=[]),
            self._item_frame("response.content_part.done", item, content_index=0, part=part),
            self._output_item_frame("response.output_item.done", item, done),
        ]

    def _open_call(self, index: int, call_id: str, name: str) -> list[bytes]:
        if index in self.calls:
            return []
        item = self.calls[index] = self._new_item("fc")
        item.call_id, item.name = call_id, name
        opened = responses_function_call_item(item.item_id, call_id, name, "", "in_progress")
        return [self._output_item_frame("response.output_item.added", item, opened)]

    def _arguments_delta(self, item: _OpenItem, delta: str) -> list[bytes]:
        item.fragments.append(delta)
        return [self._item_frame("response.function_call_arguments.delta", item, delta=delta)]

    def _close_call(self, item: _OpenItem, status: str) -> list[bytes]:
        # The fragments sent are the arguments (JSON the grammar held to the schema); done repeats them whole.
        arguments = "".join(item.fragments)
        done = responses_function_call_item(item.item_id, item.call_id, item.name, arguments, status)
        self.output[item.output_index] = done
        return [
            self._item_frame("response.function_call_arguments.done", item, arguments=arguments),
            self._output_item_frame("response.output_item.done", item, done),
        ]

    def error_frames(self, error: ToolrunError) -> bytes:
        """A failure after the stream began: an ``error`` event, then ``response.failed``, as OpenAI sends."""
        where = responses_where(error.where, self.origins)
        failed = {**self.writer.response([self.output[i] for i in sorted(self.output)]), "status": "failed"}
        failed["error"] = {"code": error.code, "message": str(error)}
        return self._frame("error", code=error.code, message=str(error), param=where) + self._frame(
            "response.failed", response=failed
        )


def routes() -> list[Route]:
    return [
        Route("/v1/responses", create_response, methods=["POST"]),
        # Workers AI's OpenAI-compatible prefix, as for chat completions.
        Route("/client/v4/accounts/{account_id}/ai/v1/responses", create_response, methods=["POST"]),
    ]
