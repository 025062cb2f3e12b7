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
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict, final

from ._errors import InvalidInputError, ToolChoiceError

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


def _string_or_parts(content: Any, where: str, part_text: Callable[[Any, str], str], *, joiner: str, wrong: str) -> str:
    """Text as Responses and Anthropic both allow it: a string, or a list of parts whose texts are joined
    (``part_text`` reads one part, or raises at its place); ``wrong`` is the error for anything else."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidInputError(wrong, where=where)
    return joiner.join(part_text(part, f"{where}[{i}]") for i, part in enumerate(content))


def _responses_part_text(part: Any, where: str) -> str:
    kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
    if isinstance(part, Mapping) and kind in _RESPONSES_TEXT_PARTS and isinstance(part.get("text"), str):
        return str(part["text"])
    if isinstance(part, Mapping) and kind == "refusal" and isinstance(part.get("refusal"), str):
        return str(part["refusal"])
    raise InvalidInputError(
        f"only text content parts (input_text, output_text) are supported, not {kind!r}", where=where
    )


def _responses_text(content: Any, where: str) -> str:
    """A Responses message's or tool output's content: a string, or text parts (``input_text``...)."""
    wrong = "content must be a string or a list of text parts"
    return _string_or_parts(content, where, _responses_part_text, joiner="", wrong=wrong)


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


# Anthropic Messages <-> toolrun (/v1/messages: content blocks in, content blocks out)
# Into toolrun: the request's system, messages, tools and tool_choice as the binding's inputs, each block
# checked here so that a fault names the client's own field (messages[2].content[1].input).

AnthropicStopReason: TypeAlias = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence"]

_ANTHROPIC_STOP_REASONS: dict[str, AnthropicStopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
}
_ANTHROPIC_BLOCKS = ("text", "tool_use", "tool_result")


def _anthropic_block_type(block: Any, where: str, allowed: tuple[str, ...], place: str) -> str:
    """A content block's ``type``, when it is one of ``allowed`` here (``place`` says where that is)."""
    if not isinstance(block, Mapping):
        raise InvalidInputError(f"a content block must be an object, not {type(block).__name__}", where=where)
    kind = block.get("type")
    if kind in allowed:
        return str(kind)
    if kind in _ANTHROPIC_BLOCKS:
        raise InvalidInputError(f"a {kind} block cannot be in {place}; it takes {', '.join(allowed)}", where=where)
    raise InvalidInputError(
        f"unsupported content block type {kind!r}; this server reads text, tool_use and tool_result blocks "
        "(no images, documents or thinking)",
        where=f"{where}.type",
    )


def _anthropic_block_text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidInputError("a text block's text must be a string", where=f"{where}.text")
    return text


def _anthropic_text(content: Any, where: str, place: str) -> str:
    """A string, or text blocks joined by newlines: what Anthropic allows in ``system`` and a tool_result."""

    def block_text(block: Any, at: str) -> str:
        _anthropic_block_type(block, at, ("text",), place)
        return _anthropic_block_text(block, at)

    return _string_or_parts(content, where, block_text, joiner="\n", wrong="must be a string or a list of text blocks")


def _anthropic_tool_result(block: Mapping[str, Any], where: str) -> Message:
    """A tool_result as a tool message; one with ``is_error`` reads ``{"error": ...}``, as run_with_tools
    reports a failed tool to the model."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidInputError(
            "a tool_result needs the tool_use_id of the call it answers", where=f"{where}.tool_use_id"
        )
    content = block.get("content")
    text = "" if content is None else _anthropic_text(content, f"{where}.content", "a tool_result")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise InvalidInputError("is_error must be true or false", where=f"{where}.is_error")
    return {"role": "tool", "content": _to_json({"error": text}) if is_error else text, "tool_call_id": call_id}


def _anthropic_tool_use(block: Mapping[str, Any], where: str) -> MessageToolCall:
    for key in ("id", "name"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise InvalidInputError(f"a tool_use block needs a non-empty string {key}", where=f"{where}.{key}")
    arguments = block.get("input")
    if not isinstance(arguments, Mapping):
        raise InvalidInputError(
            "a tool_use block's input must be an object (the call's arguments)", where=f"{where}.input"
        )
    return message_tool_call(tool_call(block["name"], dict(arguments), block["id"]))


def _anthropic_user_turn(blocks: list[Any], where: str) -> list[tuple[Message, str]]:
    """A user turn's blocks, in order: runs of text as user messages, each tool_result as a tool message."""
    turn: list[tuple[Message, str]] = []
    texts: list[str] = []
    for j, block in enumerate(blocks):
        at = f"{where}[{j}]"
        if _anthropic_block_type(block, at, ("text", "tool_result"), "a user message") == "text":
            texts.append(_anthropic_block_text(block, at))
            continue
        if texts:
            turn.append(({"role": "user", "content": "\n".join(texts)}, where))
            texts = []
        turn.append((_anthropic_tool_result(block, at), at))
    if texts or not turn:
        turn.append(({"role": "user", "content": "\n".join(texts)}, where))
    return turn


def _anthropic_assistant_turn(blocks: list[Any], where: str) -> Message:
    """An assistant turn's text and tool_use blocks as one assistant message (its text, then its calls)."""
    texts: list[str] = []
    calls: list[MessageToolCall] = []
    for j, block in enumerate(blocks):
        at = f"{where}[{j}]"
        if _anthropic_block_type(block, at, ("text", "tool_use"), "an assistant message") == "text":
            texts.append(_anthropic_block_text(block, at))
        else:
            calls.append(_anthropic_tool_use(block, at))
    message: Message = {"role": "assistant", "content": "\n".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def anthropic_messages(system: Any, messages: Any) -> tuple[list[Message], list[str]]:
    """Anthropic's ``system`` and ``messages`` as the binding's messages, and the field each came from
    (``system``, ``messages[1].content[2]``) for the binding's errors.

    A user turn's tool_result blocks become tool messages, its text a user message; an assistant turn's
    tool_use blocks become its calls. The last message must be the user's: this server does not continue
    a partial assistant turn (Anthropic's prefill).
    """
    out: list[Message] = []
    origins: list[str] = []
    if system is not None:
        text = _anthropic_text(system, "system", "system")
        if text:
            out.append({"role": "system", "content": text})
            origins.append("system")
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages must be a non-empty list of messages", where="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"a message must be an object, not {type(message).__name__}", where=where)
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise InvalidInputError(f"role must be 'user' or 'assistant', not {role!r}", where=f"{where}.role")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise InvalidInputError("content must be a string or a list of content blocks", where=f"{where}.content")
        if role == "user":
            for converted, origin in _anthropic_user_turn(blocks, f"{where}.content"):
                out.append(converted)
                origins.append(origin)
        else:
            out.append(_anthropic_assistant_turn(blocks, f"{where}.content"))
            origins.append(f"{where}.content")
    if messages[-1].get("role") != "user":
        raise InvalidInputError(
            "the last message must be the user's: continuing an assistant turn (prefill) is not supported",
            where=f"messages[{len(messages) - 1}].role",
        )
    return out, origins


def anthropic_tool(tool: Any, index: int) -> dict[str, Any]:
    """A client tool ``{"name", "description", "input_schema"}`` in Workers AI's flat shape; the binding
    checks its name and schema. Anthropic's server tools (``web_search_…``, ``bash_…``) are refused by type."""
    where = f"tools[{index}]"
    if not isinstance(tool, Mapping):
        raise InvalidInputError(f"a tool must be an object, not {type(tool).__name__}", where=where)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise InvalidInputError(
            f"tool type {kind!r} is one of Anthropic's server tools, which this server does not run; "
            "describe a client tool with name, description and input_schema",
            where=f"{where}.type",
        )
    schema = tool.get("input_schema")
    if not isinstance(schema, Mapping):
        raise InvalidInputError(
            "a tool needs an input_schema: the JSON Schema object of its input", where=f"{where}.input_schema"
        )
    return {"name": tool.get("name"), "description": tool.get("description"), "parameters": dict(schema)}


def anthropic_tool_choice(choice: Any) -> tuple[str | dict[str, Any], bool]:
    """``(the binding's tool_choice, parallel_tool_calls)`` from Anthropic's ``{"type": "auto" | "any" |
    "tool" | "none", "name", "disable_parallel_tool_use"}``: ``any`` is required, ``tool`` a named tool."""
    if choice is None:
        return "auto", True
    if not isinstance(choice, Mapping):
        raise ToolChoiceError('tool_choice must be an object such as {"type": "auto"}', where="tool_choice")
    single = choice.get("disable_parallel_tool_use", False)
    if not isinstance(single, bool):
        raise ToolChoiceError("must be true or false", where="tool_choice.disable_parallel_tool_use")
    kind = choice.get("type")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise ToolChoiceError('a "tool" tool_choice needs the name of the tool', where="tool_choice.name")
        return openai_tool_choice(name), not single
    if kind in ("auto", "any", "none"):
        return ("required" if kind == "any" else str(kind)), not single
    raise ToolChoiceError(f"tool_choice type must be auto, any, tool or none, not {kind!r}", where="tool_choice.type")


# toolrun -> Anthropic Messages


def anthropic_tool_use(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` content block (``arguments`` empty in a stream's ``content_block_start``)."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": dict(arguments)}


def anthropic_text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def anthropic_content(text: str, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """A whole answer's content blocks: its text (if any), then one tool_use per call."""
    blocks = [anthropic_text_block(text)] if text else []
    blocks.extend(anthropic_tool_use(call["id"], call["name"], call["arguments"]) for call in calls)
    return blocks


def anthropic_stop_reason(finish: FinishReason) -> AnthropicStopReason:
    return _ANTHROPIC_STOP_REASONS[finish]


def anthropic_usage(used: Usage) -> dict[str, int]:
    return {"input_tokens": used["prompt_tokens"], "output_tokens": used["completion_tokens"]}


def anthropic_text_delta(text: str) -> dict[str, Any]:
    return {"type": "text_delta", "text": text}


def anthropic_input_json_delta(fragment: str) -> dict[str, Any]:
    """A fragment of a tool_use's input as JSON text (the fragments join to the whole input)."""
    return {"type": "input_json_delta", "partial_json": fragment}


__all__ = [
    "AnthropicStopReason",
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
    "anthropic_content",
    "anthropic_input_json_delta",
    "anthropic_messages",
    "anthropic_stop_reason",
    "anthropic_text_block",
    "anthropic_text_delta",
    "anthropic_tool",
    "anthropic_tool_choice",
    "anthropic_tool_use",
    "anthropic_usage",
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
