"""The shapes that cross toolrun's seams: tool calls, messages and stream events — and their conversions.

Inside toolrun a call's ``arguments`` is always a ``dict``. It becomes JSON text
only at the wire edges: the OpenAI endpoint, remote engines, and the argument
fragments streamed while a call is being decoded. Both dialects users speak
are read here and nowhere else: Workers AI's flat ``{"name", "arguments"}``
and OpenAI's ``{"id", "type": "function", "function": {"name", "arguments": "<json>"}}``.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, final

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


def message_tool_call(call: ToolCall) -> MessageToolCall:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def openai_tool_call(call: ToolCall) -> dict[str, Any]:
    """OpenAI's wire shape: ``arguments`` as JSON text."""
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": encode_arguments(call["arguments"])},
    }


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
    "Usage",
    "decode_arguments",
    "encode_arguments",
    "final_event",
    "function_body",
    "message_tool_call",
    "new_call_id",
    "openai_tool_call",
    "require_arguments",
    "usage",
]
