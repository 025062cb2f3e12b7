"""The shapes that cross toolrun's seams: tool calls, messages and stream events — and their conversions.

Inside toolrun a call's ``arguments`` is always a ``dict``. It becomes JSON text
only at the wire edges: the OpenAI endpoint, remote engines, the conversation
``run_with_tools`` hands back, and the argument fragments streamed while a call
is being decoded. Every converter between toolrun's shapes and a dialect lives
here (the "dialects" section: one function per direction per dialect): Workers
AI's flat ``{"name", "arguments"}`` and OpenAI's
``{"id", "type": "function", "function": {"name", "arguments": "<json>"}}``.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict, final

from ._errors import InvalidInputError

# --------------------------------------------------------------------- calls


class ToolCall(TypedDict):
    """A call as toolrun returns it (Workers AI's shape plus an id)."""

    id: str
    name: str
    arguments: dict[str, Any]


class IndexedToolCall(ToolCall):
    """A call in a stream event: ``index`` orders the calls of one turn."""

    index: int


class FunctionCall(TypedDict):
    name: str
    arguments: dict[str, Any]


class MessageToolCall(TypedDict):
    """A call inside a normalised assistant message (the nesting chat templates read)."""

    id: str
    type: Literal["function"]
    function: FunctionCall


_CALL_ID_PREFIX = "call_" + secrets.token_hex(6)
_call_numbers = itertools.count()


def new_call_id() -> str:
    """A process-unique call id in OpenAI's style: a random per-process prefix and a counter (cheap)."""
    return f"{_CALL_ID_PREFIX}{next(_call_numbers):012x}"


def function_body(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """``item["function"]`` when the item is OpenAI-shaped (tool or call), else the item itself."""
    function = item.get("function")
    return function if isinstance(function, Mapping) else item


def decode_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(arguments, None)`` or ``(None, what is wrong)``: a dict, JSON text of one, or nothing (= ``{}``)."""
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, f"are not valid JSON ({exc.msg} at character {exc.pos})"
        except RecursionError:
            return None, "are nested too deeply"
    if not isinstance(raw, Mapping):
        return None, f"must be a JSON object, not {type(raw).__name__}"
    return dict(raw), None


def require_arguments(raw: Any, where: str) -> dict[str, Any]:
    """:func:`decode_arguments`, raising :class:`InvalidInputError` at ``where`` when it fails."""
    arguments, problem = decode_arguments(raw)
    if arguments is None:
        raise InvalidInputError(f"arguments {problem}", where=where)
    return arguments


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def encode_arguments(arguments: Mapping[str, Any]) -> str:
    """Arguments as JSON text for a wire edge (OpenAI's ``function.arguments``)."""
    return _to_json(arguments)


def tool_call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> ToolCall:
    """A toolrun call; a fresh id where the caller has none."""
    return {"id": call_id or new_call_id(), "name": name, "arguments": arguments}


def indexed_call(call: FunctionCall, index: int, call_id: str) -> IndexedToolCall:
    """A parsed call as a stream event carries it: numbered within its turn."""
    return {"index": index, "id": call_id, "name": call["name"], "arguments": call["arguments"]}


def result_call(call: IndexedToolCall) -> ToolCall:
    """A stream event's call as ``AI.run`` returns it (the turn's numbering dropped)."""
    return {"name": call["name"], "arguments": call["arguments"], "id": call["id"]}  # Workers AI's order


def message_tool_call(call: ToolCall) -> MessageToolCall:
    """A toolrun call inside a normalised assistant message (arguments stay a dict)."""
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def read_message_call(item: Mapping[str, Any], where: str) -> MessageToolCall:
    """A call from a user's assistant turn, in either dialect (OpenAI's nesting or Workers AI's flat shape)."""
    body = function_body(item)
    if not isinstance(body.get("name"), str):
        raise InvalidInputError("a tool call needs a function name", where=where)
    arguments_at = f"{where}.function.arguments" if body is not item else f"{where}.arguments"
    arguments = require_arguments(body.get("arguments"), arguments_at)
    return message_tool_call(tool_call(body["name"], arguments, str(item.get("id") or "") or None))


# ------------------------------------------------------------------ messages


class Message(TypedDict):
    """A normalised message: what engines and chat templates receive."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: NotRequired[list[MessageToolCall]]
    name: NotRequired[str]
    tool_call_id: NotRequired[str]


# -------------------------------------------------------------------- events


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason: TypeAlias = Literal["stop", "tool_calls", "length"]


@final
class TextEvent(TypedDict):
    response: str


class CallDelta(TypedDict):
    """A fragment of a call's arguments, as decoded (JSON text; the fragments join to the arguments)."""

    index: int
    id: str
    name: str
    arguments: str


@final
class CallDeltaEvent(TypedDict):
    tool_call_delta: CallDelta


@final
class CallEvent(TypedDict):
    """Complete, checked calls. A call whose arguments streamed as deltas arrives here too, whole."""

    tool_calls: list[IndexedToolCall]


@final
class FinalEvent(TypedDict):
    # Literal[""], not str: a FinalEvent must not read as a TextEvent (TypedDicts are structural).
    response: Literal[""]
    usage: Usage
    finish_reason: FinishReason


Event: TypeAlias = TextEvent | CallDeltaEvent | CallEvent | FinalEvent


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def final_event(prompt_tokens: int, completion_tokens: int, finish_reason: FinishReason) -> FinalEvent:
    return {"response": "", "usage": usage(prompt_tokens, completion_tokens), "finish_reason": finish_reason}


class RunResult(TypedDict):
    """What ``AI.run`` returns without ``stream``."""

    response: str
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: FinishReason


# ------------------------------------------------------------------ dialects
# One converter per direction per dialect. Into toolrun, both chat dialects are read by the same code
# (read_message_call here, normalize_tool/normalize_messages in _types): OpenAI's nesting or Workers
# AI's flat shape, told apart by function_body. Out of toolrun, each dialect has its writers below;
# a new API (OpenAI Responses, Anthropic Messages) adds its own section of the same kind.


class ToolFields(Protocol):
    """What a tool description needs (``ToolSpec``, ``Tool``): never its function."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...


# toolrun -> OpenAI Chat Completions


def openai_tool(tool: ToolFields) -> dict[str, Any]:
    """A tool in OpenAI's nesting ``{"type": "function", "function": {...}}``."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)},
    }


def openai_tool_choice(name: str) -> dict[str, Any]:
    """``tool_choice`` naming one tool (Workers AI reads the same shape)."""
    return {"type": "function", "function": {"name": name}}


def openai_message_call(call: MessageToolCall) -> dict[str, Any]:
    """A call in OpenAI's wire shape: ``arguments`` as JSON text."""
    function = call["function"]
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": encode_arguments(function["arguments"])},
    }


def openai_tool_call(call: ToolCall) -> dict[str, Any]:
    """A toolrun call in OpenAI's wire shape."""
    return openai_message_call(message_tool_call(call))


def openai_message(message: Message) -> dict[str, Any]:
    """A normalised message as OpenAI's chat API takes it: each call's arguments as JSON text."""
    out: dict[str, Any] = {"role": message["role"], "content": message["content"]}
    if message.get("tool_calls"):
        out["tool_calls"] = [openai_message_call(c) for c in message["tool_calls"]]
    if message.get("name"):
        out["name"] = message["name"]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def openai_assistant_message(text: str, calls: list[ToolCall]) -> dict[str, Any]:
    """A whole answer as a ``chat.completion``'s message: ``content`` is null when only calls came back."""
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = [openai_tool_call(c) for c in calls]
    return message


def openai_call_opener(index: int, call_id: str, name: str) -> dict[str, Any]:
    """The first streamed delta of a call: its id and name, no arguments yet."""
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}


def openai_arguments_delta(index: int, arguments: str) -> dict[str, Any]:
    """A streamed delta carrying (a fragment of) a call's arguments, as JSON text."""
    return {"index": index, "function": {"arguments": arguments}}


# toolrun -> Workers AI


def workers_ai_tool(tool: ToolFields) -> dict[str, Any]:
    """A tool in Workers AI's flat shape ``{"name", "description", "parameters"}``."""
    return {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)}


def workers_ai_message(message: Message) -> dict[str, Any]:
    """A normalised message for ``ai/run``: Workers AI reads assistant calls in OpenAI's nesting."""
    return openai_message(message)


def workers_ai_event(event: Event) -> dict[str, Any] | None:
    """A stream event as Workers AI's SSE sends it, or None: it streams each call whole, never as deltas."""
    if "tool_call_delta" in event:
        return None
    # Every Workers AI stream event has "response"; tool-call events carry an empty one.
    return {"response": "", **event}


# OpenAI Responses <-> toolrun (/v1/responses: input items in, output items out)

_RESPONSES_TEXT_PARTS = ("input_text", "output_text", "text")
_RESPONSES_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def _responses_text(content: Any, where: str) -> str:
    """A Responses message's or tool output's content: a string, or text parts (``input_text``...)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidInputError("content must be a string or a list of text parts", where=where)
    texts: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
        if isinstance(part, Mapping) and kind in _RESPONSES_TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, Mapping) and kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise InvalidInputError(
                f"only text content parts (input_text, output_text) are supported, not {kind!r}", where=f"{where}[{i}]"
            )
    return "".join(texts)


def _responses_string(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{key} must be a non-empty string", where=f"{where}.{key}")
    return value


def _responses_item(item: Any, where: str, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One input item as a chat message, or None where it joined the assistant turn before it."""
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"an input item must be an object, not {type(item).__name__}", where=where)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _RESPONSES_ROLES:
            raise InvalidInputError(
                f"role must be one of {', '.join(_RESPONSES_ROLES)}; got {role!r}", where=f"{where}.role"
            )
        return {"role": _RESPONSES_ROLES[role], "content": _responses_text(item.get("content"), f"{where}.content")}
    if kind == "function_call":
        arguments = require_arguments(item.get("arguments"), f"{where}.arguments")
        name = _responses_string(item, "name", where)
        call_id = _responses_string(item, "call_id", where)
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        previous = messages[-1] if messages else None
        if previous is not None and previous["role"] == "assistant":  # one turn: its text, then its calls
            previous.setdefault("tool_calls", []).append(call)
            return None
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    if kind == "function_call_output":
        output = _responses_text(item.get("output"), f"{where}.output")
        return {"role": "tool", "tool_call_id": _responses_string(item, "call_id", where), "content": output}
    raise InvalidInputError(
        f"unsupported input item type {kind!r}; this server reads message, function_call and "
        "function_call_output items (it keeps no state: item_reference cannot be resolved)",
        where=f"{where}.type",
    )


def responses_messages(items: Any, instructions: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Responses' ``instructions`` and ``input`` (a string or items) as chat messages in OpenAI's shape,
    which the binding reads, and the field each came from (``instructions``, ``input[2]``) for its errors.

    A ``function_call`` item joins the assistant turn before it (its text, then its calls), as chat
    templates expect; a ``function_call_output`` item becomes a tool message.
    """
    messages: list[dict[str, Any]] = []
    origins: list[str] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidInputError("instructions must be a string", where="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
            origins.append("instructions")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}], [*origins, "input"]
    if not isinstance(items, list) or not items:
        raise InvalidInputError("input must be a string or a non-empty list of items", where="input")
    for i, item in enumerate(items):
        message = _responses_item(item, f"input[{i}]", messages)
        if message is not None:
            messages.append(message)
            origins.append(f"input[{i}]")
    return messages, origins


def responses_text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def responses_message_item(item_id: str, parts: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item (``parts`` empty while it is being streamed)."""
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": parts}


def responses_function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    """A ``function_call`` output item: ``arguments`` as JSON text, ``call_id`` the id its output answers."""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def responses_usage(used: Usage) -> dict[str, Any]:
    """Usage in the Responses API's names (no cached or reasoning tokens here)."""
    return {
        "input_tokens": used["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": used["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used["total_tokens"],
    }


__all__ = [
    "CallDelta",
    "CallDeltaEvent",
    "CallEvent",
    "Event",
    "FinalEvent",
    "FinishReason",
    "FunctionCall",
    "IndexedToolCall",
    "Message",
    "MessageToolCall",
    "RunResult",
    "TextEvent",
    "ToolCall",
    "ToolFields",
    "Usage",
    "decode_arguments",
    "encode_arguments",
    "final_event",
    "function_body",
    "indexed_call",
    "message_tool_call",
    "new_call_id",
    "openai_arguments_delta",
    "openai_assistant_message",
    "openai_call_opener",
    "openai_message",
    "openai_message_call",
    "openai_tool",
    "openai_tool_call",
    "openai_tool_choice",
    "read_message_call",
    "require_arguments",
    "responses_function_call_item",
    "responses_message_item",
    "responses_messages",
    "responses_text_part",
    "responses_usage",
    "result_call",
    "tool_call",
    "usage",
    "workers_ai_event",
    "workers_ai_message",
    "workers_ai_tool",
]
