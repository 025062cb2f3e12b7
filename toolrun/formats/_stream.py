"""Turning a model's text, as it is decoded, into events: text, argument fragments, complete calls."""

from __future__ import annotations

import copy
import re
from typing import Protocol

from .._wire import CallDeltaEvent, CallEvent, Event, FunctionCall, TextEvent, indexed_call, new_call_id


class _Parsed(Protocol):
    @property
    def calls(self) -> list[FunctionCall]: ...


class CallSyntax(Protocol):
    """What the stream parser needs of a format (:class:`~toolrun.formats.ToolCallFormat` has it)."""

    @property
    def call_closers(self) -> tuple[str, ...]: ...

    def find_opener(self, text: str, extra: tuple[str, ...] = ()) -> int | None: ...

    def pending_opener(self, text: str, extra: tuple[str, ...] = ()) -> int: ...

    def parse(self, text: str) -> _Parsed: ...


_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')


class _ArgumentScanner:
    """Finds each call's arguments object in a call region as it grows, for streaming its fragments.

    It relies on the order a grammar imposes — ``"name"`` before ``"arguments"`` —
    and on the arguments being a JSON object, whose end it finds by counting braces
    outside strings.
    """

    def __init__(self) -> None:
        self.index = 0  # the call being read
        self.name: str | None = None
        self._pos = 0  # where the next search starts
        self._start: int | None = None  # where this call's arguments begin
        self._sent = 0  # how far its fragments went out
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, region: str) -> list[tuple[int, str, str]]:
        """New fragments as ``(call index, call name, text)``."""
        out: list[tuple[int, str, str]] = []
        while True:
            if self.name is None:
                found = _NAME.search(region, self._pos)
                if found is None:
                    return out
                self.name = found.group(1)
                self._pos = found.end()
            if self._start is None:
                found = _ARGUMENTS.search(region, self._pos)
                if found is None or found.end() >= len(region):
                    return out
                if region[found.end()] != "{":
                    self.name = None  # not an object: no streaming for this call
                    self._pos = found.end()
                    continue
                self._start = self._sent = self._pos = found.end()
            end = self._scan(region)
            upto = end if end is not None else len(region)
            if upto > self._sent:
                out.append((self.index, self.name, region[self._sent : upto]))
                self._sent = upto
            if end is None:
                return out
            self.index += 1
            self.name = None
            self._start = None

    def _scan(self, region: str) -> int | None:
        """Advance over the arguments; the offset just past their closing brace, once it is there."""
        pos = self._pos
        while pos < len(region):
            ch = region[pos]
            pos += 1
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch == "{":
                self._depth += 1
            elif ch == "}":
                self._depth -= 1
                if self._depth == 0:
                    self._pos = pos
                    return pos
        self._pos = pos
        return None


class StreamParser:
    """Turns text deltas into events: text pieces, argument fragments (optional), each call once complete.

    Text that might be the start of a call opener is held back until it is
    clear; once a call region opens, everything after it is call text. With
    ``stream_arguments`` set (the engine does so only under an exact grammar),
    each call's arguments also go out as ``tool_call_delta`` fragments while
    they are decoded; the complete call follows with the same id.
    """

    def __init__(self, fmt: CallSyntax, extra_openers: tuple[str, ...] = ()) -> None:
        self.format = fmt
        self.stream_arguments = False
        self._extra = extra_openers
        self._text = ""  # all text before the call region
        self._emitted = 0  # how much of _text went out as text events
        self._region: str | None = None
        self._calls_out = 0
        self._ids: dict[int, str] = {}
        self._arguments = _ArgumentScanner()

    @property
    def in_call_region(self) -> bool:
        return self._region is not None

    @property
    def extra_openers(self) -> tuple[str, ...]:
        return self._extra

    @property
    def calls_emitted(self) -> int:
        return self._calls_out

    def snapshot(self) -> object:
        """The parser's state, to :meth:`restore` if what follows is taken back (a call tried and dropped)."""
        return copy.deepcopy((self._text, self._emitted, self._region, self._calls_out, self._ids, self._arguments))

    def restore(self, state: object) -> None:
        (self._text, self._emitted, self._region, self._calls_out, self._ids, self._arguments) = copy.deepcopy(state)  # type: ignore[misc]

    def reset_region(self) -> None:
        """Forget the call region's text so far (the engine rewound it to write the call again, constrained)."""
        if self._region is not None:
            self._region = ""
            self._arguments = _ArgumentScanner()

    def feed(self, delta: str) -> list[Event]:
        events: list[Event] = []
        if self._region is None:
            self._text += delta
            pos = self.format.find_opener(self._text, self._extra)
            if pos is None:
                safe = len(self._text) - self.format.pending_opener(self._text, self._extra)
                if safe > self._emitted:
                    events.append(TextEvent(response=self._text[self._emitted : safe]))
                    self._emitted = safe
                return events
            if pos > self._emitted:
                events.append(TextEvent(response=self._text[self._emitted : pos]))
            self._region = self._text[pos:]
            self._text = self._text[:pos]
            self._emitted = pos
        else:
            self._region += delta
        if self.stream_arguments:
            for index, name, fragment in self._arguments.feed(self._region):
                delta_event: CallDeltaEvent = {
                    "tool_call_delta": {"index": index, "id": self._call_id(index), "name": name, "arguments": fragment}
                }
                events.append(delta_event)
        events.extend(self._new_calls(final=False))
        return events

    def _call_id(self, index: int) -> str:
        if index not in self._ids:
            self._ids[index] = new_call_id()
        return self._ids[index]

    def _new_calls(self, *, final: bool) -> list[Event]:
        region = self._region or ""
        calls = self.format.parse(region).calls
        # A prefix like '{"name": "f", "arguments": {"a": 1}}' already parses while the model may
        # still be writing that call; the last call counts once its closer is out or the output ends.
        closed = final or region.rstrip().endswith(self.format.call_closers or ("\x00",))
        ready = calls if closed else calls[:-1]
        events: list[Event] = []
        for call in ready[self._calls_out :]:
            index = self._calls_out
            event: CallEvent = {"tool_calls": [indexed_call(call, index, self._call_id(index))]}
            events.append(event)
            self._calls_out += 1
        return events

    def finish(self, *, cut: bool = False) -> list[Event]:
        """What is left to say at the end of the output; ``cut``: it ended at ``max_tokens``, so a call
        region that holds no whole call is a call cut short, never text to show."""
        events: list[Event] = []
        if self._region is None:
            if len(self._text) > self._emitted:
                events.append(TextEvent(response=self._text[self._emitted :]))
                self._emitted = len(self._text)
            return events
        events.extend(self._new_calls(final=True))
        if self._calls_out == 0 and self._region and not cut:
            # The region never held a valid call: it was text after all.
            events.append(TextEvent(response=self._region))
        return events


class PlainTextParser:
    """The stream parser for requests without tools: everything is text."""

    in_call_region = False
    calls_emitted = 0
    stream_arguments = False

    def feed(self, delta: str) -> list[Event]:
        return [TextEvent(response=delta)] if delta else []

    def finish(self, *, cut: bool = False) -> list[Event]:
        return []
