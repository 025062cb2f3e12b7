"""A call that only asks again what the turn already has an answer to.

A small model that was just given a tool's result often asks for the same call again — the same
values, or the tool's own answer fed back in (``sum`` of the sum). A call of a tool already answered
in this turn that brings no value the conversation says beyond what earlier calls used (that tool's own
whole results not counting) is such a repeat: the turn drops it, and if nothing else is left the model
answers without tools instead of looping. A value a result points to ("the code is on page 4") is new.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from ..._grounding import asks_something_new, conversation_text
from ..._wire import Event, Message
from .._base import GenerationRequest

log = logging.getLogger("toolrun.engines")


class RepeatCheck:
    """What this turn already asked (since the last user message), and whether a call asks it again."""

    def __init__(self, request: GenerationRequest) -> None:
        self.answered: list[tuple[str, Mapping[str, Any] | None]] = []
        self.results: dict[str, list[str]] = {}
        if request.tool_choice == "auto":
            self.answered, self.results = _this_turn(request.messages)
        self._said = conversation_text(request.messages) if self.answered else ""

    def __bool__(self) -> bool:
        """Whether any call of this turn can be a repeat (some call was answered since the user spoke)."""
        return bool(self.answered)

    def is_repeat(self, call: Mapping[str, Any]) -> bool:
        earlier = [arguments for name, arguments in self.answered if name == call["name"]]
        if not earlier:
            return False
        if any(arguments is None for arguments in earlier):
            return True
        return not asks_something_new(
            call["arguments"],
            (args for args in earlier if args is not None),
            self._said,
            not_from=self.results.get(call["name"], ()),
        )


def _this_turn(messages: list[Message]) -> tuple[list[tuple[str, Mapping[str, Any] | None]], dict[str, list[str]]]:
    """Since the last user turn: the calls made, as (name, arguments), and each tool's results.

    The arguments are ``None`` where unknown: Workers AI's short form (``{"role": "assistant",
    "tool_call": "name"}``) records none, so any call of that tool counts as a repeat.
    """
    answered: list[tuple[str, Mapping[str, Any] | None]] = []
    results: dict[str, list[str]] = {}
    for msg in reversed(messages):
        if msg["role"] == "user":
            break
        if msg["role"] == "tool" and msg.get("name"):
            results.setdefault(msg["name"], []).append(msg["content"])
        for call in msg.get("tool_calls", ()):
            fn = call["function"]
            answered.append((fn["name"], fn["arguments"] or None))
    return answered, results


async def without_repeats(
    generate: Callable[[GenerationRequest], AsyncGenerator[Event, None]], request: GenerationRequest
) -> AsyncGenerator[Event, None]:
    """``generate(request)``'s events with repeated calls dropped, for engines whose calls come whole from
    elsewhere (a server's own parser, a script): if every call was a repeat, the turn is asked again with
    ``tool_choice: "none"`` — of the same engine, which answers without tools."""
    repeats = RepeatCheck(request)
    final: Event | None = None
    sent = dropped = 0
    async with aclosing(generate(request)) as events:
        async for event in events:
            if not repeats:
                yield event
            elif "usage" in event:
                final = event
            elif "tool_calls" in event:
                kept = [call for call in event["tool_calls"] if not repeats.is_repeat(call)]
                sent, dropped = sent + len(kept), dropped + len(event["tool_calls"]) - len(kept)
                if kept:
                    yield {"tool_calls": kept}
            elif "tool_call_delta" not in event:  # fragments of a call that may be a repeat wait for it whole
                yield event
    if dropped and not sent:
        log.info("the model only repeated calls it has results for; answering without tools")
        async with aclosing(generate(replace(request, tool_choice="none"))) as again:
            async for event in again:
                yield event
    elif final is not None:
        yield final


__all__ = ["RepeatCheck", "without_repeats"]
