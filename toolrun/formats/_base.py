"""What every tool-call format provides, and the lenient JSON scanning they share.

A format knows three things about a model family: how tools reach the prompt
(the model's chat template, or a fallback template of the family's), how the
model writes calls (``parse``, complete and streaming), and the grammar that
makes those calls well-formed (``grammar``). Parsers are lenient on purpose:
small models drift (a fenced ```json block instead of ``<tool_call>`` tags,
``parameters`` instead of ``arguments``, arguments as a JSON string), and a
parser that sees garbage returns text, never raises.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from .._types import ToolSpec, new_call_id

_DECODER = json.JSONDecoder()


@dataclass
class ParsedCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ParseResult:
    content: str
    calls: list[ParsedCall] = field(default_factory=list)


def scan_json(text: str, start: int = 0) -> Iterator[tuple[int, int, Any]]:
    """Every top-level JSON object or array in ``text``: ``(begin, end, value)``."""
    i = start
    n = len(text)
    while i < n:
        brace = text.find("{", i)
        bracket = text.find("[", i)
        candidates = [p for p in (brace, bracket) if p != -1]
        if not candidates:
            return
        pos = min(candidates)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            i = pos + 1
            continue
        yield pos, end, value
        i = end


def _as_arguments(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            return None
    return raw if isinstance(raw, dict) else None


def coerce_calls(value: Any) -> list[ParsedCall]:
    """Calls from a decoded JSON value in any of the shapes models write; [] when it is not a call."""
    items = value if isinstance(value, list) else [value]
    calls: list[ParsedCall] = []
    for item in items:
        if not isinstance(item, dict):
            return []
        body = item.get("function") if isinstance(item.get("function"), dict) else item
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return []
        raw_args = body.get("arguments", body.get("parameters", {}))
        args = _as_arguments(raw_args)
        if args is None:
            return []
        calls.append(ParsedCall(name, args))
    return calls


class ToolCallFormat(ABC):
    """One model family's way of writing tool calls."""

    name: ClassVar[str]
    #: Opens a call anywhere in the output (a model may write text first).
    inline_openers: ClassVar[tuple[str, ...]] = ()
    #: Opens a call only at the very start of the output (drift such as a ```json fence).
    start_openers: ClassVar[tuple[str, ...]] = ()
    #: A chat template for models whose GGUF has none that renders tools.
    fallback_template: ClassVar[str]
    #: Text that ends one call (or the whole call list), for streaming.
    call_closers: ClassVar[tuple[str, ...]] = ()
    #: Extra stop strings beyond the model's end-of-generation tokens.
    stop: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def parse(self, text: str) -> ParseResult:
        """Split a complete output into text and calls. Never raises."""

    @abstractmethod
    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> str:
        """GBNF for a whole call region, opener included."""

    def template_tools(self, tools: list[ToolSpec]) -> list[dict[str, Any]]:
        """Tools as the chat template expects them (OpenAI's shape, for most)."""
        return [t.as_openai() for t in tools]

    # -- detecting a call region while text streams -------------------------

    def find_opener(self, text: str, extra: tuple[str, ...] = ()) -> int | None:
        """Where a call region begins in ``text``, if one does (``extra``: more inline openers)."""
        stripped = len(text) - len(text.lstrip())
        for opener in self.start_openers:
            if text.startswith(opener, stripped):
                return stripped
        best = None
        for opener in self.inline_openers + extra:
            pos = text.find(opener)
            if pos != -1 and (best is None or pos < best):
                best = pos
        return best

    def pending_opener(self, text: str, extra: tuple[str, ...] = ()) -> int:
        """How many trailing characters of ``text`` might still grow into an opener (hold them back)."""
        held = 0
        if not text.strip():
            return len(text)
        stripped = len(text) - len(text.lstrip())
        rest = text[stripped:]
        for opener in self.start_openers:
            if len(rest) < len(opener) and opener.startswith(rest):
                return len(text)
        for opener in self.inline_openers + extra:
            for k in range(min(len(opener) - 1, len(text)), 0, -1):
                if text.endswith(opener[:k]):
                    held = max(held, k)
                    break
        return held

    def bare_call_openers(self, tool_names: list[str]) -> tuple[str, ...]:
        """Inline openers for a call written as bare JSON after some text (``{"name": "get_weather"``).

        Naming a real tool keeps prose that merely contains JSON from being taken for a call.
        """
        return tuple(f'{{"name": "{name}"' for name in tool_names)

    def stream_parser(self, tool_names: list[str] | None = None) -> "StreamParser":
        return StreamParser(self, self.bare_call_openers(tool_names or []))


class StreamParser:
    """Turns text deltas into events: text pieces, and each call once it is complete.

    Text that might be the start of a call opener is held back until it is
    clear; once a call region opens, everything after it is call text.
    """

    def __init__(self, fmt: ToolCallFormat, extra_openers: tuple[str, ...] = ()) -> None:
        self.format = fmt
        self._extra = extra_openers
        self._text = ""          # all text before the call region
        self._emitted = 0        # how much of _text went out as text events
        self._region: str | None = None
        self._calls_out = 0

    @property
    def in_call_region(self) -> bool:
        return self._region is not None

    @property
    def extra_openers(self) -> tuple[str, ...]:
        return self._extra

    @property
    def calls_emitted(self) -> int:
        return self._calls_out

    def reset_region(self) -> None:
        """Forget the call region's text so far (the engine rewound it to write the call again, constrained)."""
        if self._region is not None:
            self._region = ""

    def feed(self, delta: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._region is None:
            self._text += delta
            pos = self.format.find_opener(self._text, self._extra)
            if pos is None:
                safe = len(self._text) - self.format.pending_opener(self._text, self._extra)
                if safe > self._emitted:
                    events.append({"response": self._text[self._emitted:safe]})
                    self._emitted = safe
                return events
            if pos > self._emitted:
                events.append({"response": self._text[self._emitted:pos]})
            self._region = self._text[pos:]
            self._text = self._text[:pos]
            self._emitted = pos
        else:
            self._region += delta
        events.extend(self._new_calls(final=False))
        return events

    def _new_calls(self, *, final: bool) -> list[dict[str, Any]]:
        region = self._region or ""
        calls = self.format.parse(region).calls
        # A prefix like '{"name": "f", "arguments": {"a": 1}}' already parses while the model may
        # still be writing that call; the last call counts once its closer is out or the output ends.
        closed = final or region.rstrip().endswith(self.format.call_closers or ("\x00",))
        ready = calls if closed else calls[:-1]
        events = []
        for call in ready[self._calls_out:]:
            events.append({"tool_calls": [{"index": self._calls_out, "id": new_call_id(), "name": call.name,
                                           "arguments": json.dumps(call.arguments)}]})
            self._calls_out += 1
        return events

    def finish(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._region is None:
            if len(self._text) > self._emitted:
                events.append({"response": self._text[self._emitted:]})
                self._emitted = len(self._text)
            return events
        events.extend(self._new_calls(final=True))
        if self._calls_out == 0 and self._region:
            # The region never held a valid call: it was text after all.
            events.append({"response": self._region})
        return events


def fold_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite the last user turn and the tool calls/results after it as one plain user message.

    Small models (the 0.5B default) asked to answer from ``<tool_response>`` blocks
    tend to repeat the call or echo the JSON; the same facts as a short
    "question, then what the tool returned" message get a real answer. Used only
    when the model must answer in text after tool results.
    """
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None or not any(m["role"] == "tool" for m in messages[last_user + 1:]):
        return messages
    lines = [messages[last_user]["content"], ""]
    for msg in messages[last_user + 1:]:
        if msg["role"] == "tool":
            lines.append(f"Here is what {msg.get('name') or 'the tool'} returned:")
            lines.append(_readable(msg["content"]))
            lines.append("")
        elif msg["role"] == "assistant" and msg.get("content"):
            lines.append(msg["content"])
    lines.append("Write a short answer that states these facts.")
    return messages[:last_user] + [{"role": "user", "content": "\n".join(lines)}]


def _readable(content: str) -> str:
    try:
        value = json.loads(content)
    except (json.JSONDecodeError, RecursionError, TypeError):
        return content
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v if isinstance(v, (str, int, float)) else json.dumps(v)}" for k, v in value.items())
    return content
