"""Tool and message shapes shared by every layer, and their normalisation.

Users hand toolrun tools and messages in two dialects — Workers AI's
(flat ``{name, description, parameters}`` tools, ``tool_call`` / JSON-content
assistant turns) and OpenAI's (``{"type": "function", "function": {...}}``,
``tool_calls`` + ``tool_call_id``). Everything below the binding sees one
normalised form: :class:`ToolSpec` and OpenAI-style message dicts whose
``arguments`` are already decoded to dicts (what chat templates expect).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidInputError
from ._json import check_json
from ._schema import check_tool_schema
from ._wire import (
    Message,
    MessageToolCall,
    function_body,
    message_tool_call,
    openai_tool,
    read_message_call,
    require_arguments,
    tool_call,
)

TOOL_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.:-]{1,128}")  # use fullmatch: "$" would let a trailing newline through


@dataclass(frozen=True)
class ToolSpec:
    """What a model needs to know about a tool: never its function."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_openai(self) -> dict[str, Any]:
        return openai_tool(self)


# --------------------------------------------------------------------- tools


def check_tool_fields(name: Any, description: Any, where: str) -> tuple[str, str]:
    """A tool's name and description, checked; ``where`` names the tool (``tools[0]``)."""
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"tool name {name!r} must be 1-128 characters of letters, digits, '_', '-', '.' or ':'",
            where=f"{where}.name",
        )
    description = description or ""
    if not isinstance(description, str):
        raise InvalidInputError("description must be a string", where=f"{where}.description")
    check_json(description, f"{where}.description")
    return name, description


def check_unique_names(names: Iterable[str], where: str) -> None:
    """Two tools with one name would make calls ambiguous; ``where`` is the list (``tools``)."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInputError(f"two tools are named {name!r}", where=f"{where}[{i}].name")
        seen.add(name)


def normalize_tool(tool: Any, index: int) -> ToolSpec:
    """Accept a Workers AI flat tool, an OpenAI function tool, or an object with the three fields."""
    where = f"tools[{index}]"
    if isinstance(tool, ToolSpec):
        spec = tool
    else:
        if not isinstance(tool, Mapping):
            # Objects that describe a tool by attributes (ToolSpec-like classes of other libraries).
            if all(hasattr(tool, a) for a in ("name", "description", "parameters")):
                tool = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            else:
                raise InvalidInputError(f"a tool must be an object, not {type(tool).__name__}", where=where)
        if "type" in tool and tool["type"] != "function":
            raise InvalidInputError(
                f"unsupported tool type {tool['type']!r}; only 'function' is supported", where=f"{where}.type"
            )
        if "function" in tool and not isinstance(tool["function"], Mapping) and tool.get("type") == "function":
            raise InvalidInputError("'function' must be an object", where=f"{where}.function")
        body = function_body(tool)
        if body is not tool:
            where = f"{where}.function"
        name, description = check_tool_fields(body.get("name"), body.get("description"), where)
        parameters = body.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        spec = ToolSpec(name=name, description=description, parameters=parameters)
    check_tool_schema(spec.parameters, f"{where}.parameters", spec.name)
    return spec


def normalize_tools(tools: Iterable[Any] | None) -> list[ToolSpec]:
    if tools is None:
        return []
    if isinstance(tools, (str, bytes, Mapping)):
        raise InvalidInputError("tools must be a list", where="tools")
    specs = [normalize_tool(t, i) for i, t in enumerate(tools)]
    check_unique_names((spec.name for spec in specs), "tools")
    return specs


# ------------------------------------------------------------------ messages

ROLES = ("system", "user", "assistant", "tool")


def _text_content(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise InvalidInputError("only text content parts are supported", where=f"{where}[{i}]")
        return "".join(parts)
    if isinstance(content, (Mapping, int, float, bool)):
        # Workers AI callers often pass a tool result object straight through.
        return json.dumps(content)
    raise InvalidInputError(f"content must be a string, not {type(content).__name__}", where=where)


def _as_call_json(content: str) -> dict[str, Any] | None:
    """A Workers AI assistant turn whose content is a JSON tool call (what ai-utils writes)."""
    text = content.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and "arguments" in value:
        return dict(value)
    return None


def message_list(messages: Any, where: str = "messages") -> Sequence[Mapping[str, Any]]:
    """``messages`` as a non-empty list of objects (the shape check both the binding and the loop need)."""
    if not isinstance(messages, list):
        raise InvalidInputError("messages must be a list of message objects", where=where)
    if not messages:
        raise InvalidInputError("messages must not be empty", where=where)
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InvalidInputError(f"a message must be an object, not {type(msg).__name__}", where=f"{where}[{i}]")
    return messages


def _assistant_calls(msg: Mapping[str, Any], content: str, where: str) -> tuple[list[MessageToolCall], str]:
    """The calls an assistant turn made, in either dialect, and the content left once they are taken out."""
    raw_calls = msg.get("tool_calls")
    if raw_calls is not None:
        if not isinstance(raw_calls, list):
            raise InvalidInputError("tool_calls must be a list", where=f"{where}.tool_calls")
        calls: list[MessageToolCall] = []
        for j, call in enumerate(raw_calls):
            cwhere = f"{where}.tool_calls[{j}]"
            if not isinstance(call, Mapping):
                raise InvalidInputError("a tool call must be an object", where=cwhere)
            calls.append(read_message_call(call, cwhere))
        return calls, content
    parsed = _as_call_json(content)
    if isinstance(msg.get("tool_call"), str):
        # Workers AI's short form: {"role": "assistant", "content": "" or the call's JSON, "tool_call": "name"}.
        name = msg["tool_call"]
        args = parsed["arguments"] if parsed and parsed["name"] == name else {}
        return [message_tool_call(tool_call(name, require_arguments(args, f"{where}.content")))], ""
    if parsed is not None:
        arguments = require_arguments(parsed["arguments"], f"{where}.content")
        return [message_tool_call(tool_call(parsed["name"], arguments, str(parsed.get("id") or "") or None))], ""
    return [], content


def normalize_messages(messages: Any) -> list[Message]:
    out: list[Message] = []
    for i, msg in enumerate(message_list(messages)):
        where = f"messages[{i}]"
        role = msg.get("role")
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}", where=f"{where}.role")
        content = _text_content(msg.get("content"), f"{where}.content")
        if role == "assistant":
            calls, content = _assistant_calls(msg, content, where)
            entry: Message = {"role": "assistant", "content": content}
            if calls:
                entry["tool_calls"] = calls
        elif role == "tool":
            entry = {"role": "tool", "content": content}
            if msg.get("name") is not None:
                entry["name"] = str(msg["name"])
            if msg.get("tool_call_id") is not None:
                entry["tool_call_id"] = str(msg["tool_call_id"])
        else:
            entry = {"role": role, "content": content}
        out.append(entry)
    _attach_tool_names(out)
    return out


def _attach_tool_names(messages: list[Message]) -> None:
    """Give each tool result the name of the call it answers (templates and parsers want both)."""
    by_id: dict[str, str] = {}
    pending: list[str] = []
    for msg in messages:
        if msg["role"] == "assistant":
            pending = []
            for call in msg.get("tool_calls", []):
                by_id[call["id"]] = call["function"]["name"]
                pending.append(call["id"])
        elif msg["role"] == "tool":
            if "name" not in msg:
                call_id = msg.get("tool_call_id")
                if call_id is not None and call_id in by_id:
                    msg["name"] = by_id[call_id]
            if "tool_call_id" not in msg and pending:
                msg["tool_call_id"] = pending.pop(0)
