"""Prompt rewrites for small models."""

from __future__ import annotations

import json

from .._wire import Message


def fold_tool_results(messages: list[Message]) -> list[Message]:
    """Rewrite the last user turn and the tool calls/results after it as one plain user message.

    Small models (the 0.5B default) asked to answer from ``<tool_response>`` blocks
    tend to repeat the call or echo the JSON; the same facts as a short
    "question, then what the tool returned" message get a real answer. Used only
    when the model must answer in text after tool results.
    """
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None or not any(m["role"] == "tool" for m in messages[last_user + 1 :]):
        return messages
    lines = [messages[last_user]["content"], ""]
    for msg in messages[last_user + 1 :]:
        if msg["role"] == "tool":
            lines.append(f"Here is what {msg.get('name') or 'the tool'} returned:")
            lines.append(_readable(msg["content"]))
            lines.append("")
        elif msg["role"] == "assistant" and msg.get("content"):
            lines.append(msg["content"])
    lines.append("Write a short answer that states these facts.")
    return [*messages[:last_user], {"role": "user", "content": "\n".join(lines)}]


def _readable(content: str) -> str:
    try:
        value = json.loads(content)
    except (json.JSONDecodeError, RecursionError, TypeError):
        return content
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v if isinstance(v, (str, int, float)) else json.dumps(v)}" for k, v in value.items())
    return content
