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
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ._errors import InvalidInputError
from ._json import check_json
from ._schema import check_tool_schema

TOOL_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.:-]{1,128}")  # use fullmatch: "$" would let a trailing newline through


@dataclass(frozen=True)
class ToolSpec:
    """What a model needs to know about a tool: never its function."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: new_call_id())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "id": self.id}


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


# --------------------------------------------------------------------- tools


def normalize_tool(tool: Any, index: int) -> ToolSpec:
    """Accept a Workers AI flat tool, an OpenAI function tool, or a ``ToolSpec``-like object."""
    where = f"tools[{index}]"
    if isinstance(tool, ToolSpec):
        spec = tool
    else:
        if not isinstance(tool, Mapping):
            # Tool objects (toolrun.Tool, OpenAPI tools) carry the three fields as attributes.
            if all(hasattr(tool, a) for a in ("name", "description", "parameters")):
                tool = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            else:
                raise InvalidInputError(f"a tool must be an object, not {type(tool).__name__}", where=where)
        body: Mapping[str, Any] = tool
        if tool.get("type") == "function" or "function" in tool and isinstance(tool.get("function"), Mapping):
            body = tool.get("function")  # type: ignore[assignment]
            where = f"{where}.function"
            if not isinstance(body, Mapping):
                raise InvalidInputError("'function' must be an object", where=where)
        elif "type" in tool and tool["type"] != "function":
            raise InvalidInputError(f"unsupported tool type {tool['type']!r}; only 'function' is supported", where=where)
        name = body.get("name")
        if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
            raise InvalidInputError(
                f"tool name {name!r} must be 1-128 characters of letters, digits, '_', '-', '.' or ':'",
                where=f"{where}.name",
            )
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise InvalidInputError("description must be a string", where=f"{where}.description")
        check_json(description, f"{where}.description")
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
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise InvalidInputError(f"two tools are named {spec.name!r}", where=f"tools[{i}].name")
        seen.add(spec.name)
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


def _decode_arguments(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"arguments is not valid JSON: {exc.msg}", where=where) from None
    if not isinstance(raw, Mapping):
        raise InvalidInputError("arguments must be a JSON object", where=where)
    return dict(raw)


def _as_call_json(content: str) -> dict[str, Any] | None:
    """A Workers AI assistant turn whose content is a JSON tool call (what ai-utils writes)."""
    text = content.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and "arguments" in value:
        return dict(value)
    return None


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise InvalidInputError("messages must be a list of message objects", where="messages")
    if not messages:
        raise InvalidInputError("messages must not be empty", where="messages")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise InvalidInputError(f"a message must be an object, not {type(msg).__name__}", where=where)
        role = msg.get("role")
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}", where=f"{where}.role")
        content = _text_content(msg.get("content"), f"{where}.content")
        if role == "assistant":
            calls = []
            raw_calls = msg.get("tool_calls")
            if raw_calls is not None:
                if not isinstance(raw_calls, list):
                    raise InvalidInputError("tool_calls must be a list", where=f"{where}.tool_calls")
                for j, call in enumerate(raw_calls):
                    cwhere = f"{where}.tool_calls[{j}]"
                    if not isinstance(call, Mapping):
                        raise InvalidInputError("a tool call must be an object", where=cwhere)
                    fn = call.get("function", call)
                    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                        raise InvalidInputError("a tool call needs a function name", where=cwhere)
                    calls.append(
                        {
                            "id": str(call.get("id") or new_call_id()),
                            "type": "function",
                            "function": {
                                "name": fn["name"],
                                "arguments": _decode_arguments(fn.get("arguments"), f"{cwhere}.arguments"),
                            },
                        }
                    )
            elif isinstance(msg.get("tool_call"), str):
                # Workers AI's short form: {"role": "assistant", "content": "", "tool_call": "name"}.
                parsed = _as_call_json(content)
                args = parsed["arguments"] if parsed and parsed["name"] == msg["tool_call"] else {}
                calls.append(
                    {"id": new_call_id(), "type": "function",
                     "function": {"name": msg["tool_call"], "arguments": _decode_arguments(args, f"{where}.content")}}
                )
                content = ""
            else:
                parsed = _as_call_json(content)
                if parsed is not None:
                    calls.append(
                        {"id": str(parsed.get("id") or new_call_id()), "type": "function",
                         "function": {"name": parsed["name"],
                                      "arguments": _decode_arguments(parsed["arguments"], f"{where}.content")}}
                    )
                    content = ""
            entry: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif role == "tool":
            entry = {"role": "tool", "content": content}
            if msg.get("name") is not None:
                entry["name"] = str(msg["name"])
            if msg.get("tool_call_id") is not None:
                entry["tool_call_id"] = str(msg["tool_call_id"])
            out.append(entry)
        else:
            out.append({"role": role, "content": content})
    _attach_tool_names(out)
    return out


def _attach_tool_names(messages: list[dict[str, Any]]) -> None:
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
                if call_id in by_id:
                    msg["name"] = by_id[call_id]
            if "tool_call_id" not in msg and pending:
                msg["tool_call_id"] = pending.pop(0)
