"""What every tool-call format provides.

A format knows three things about a model family: how tools reach the prompt
(the model's chat template, or a fallback template of the family's), how the
model writes calls (``parse``, complete and streaming), and the grammar that
makes those calls well-formed (``grammar``). Parsers are lenient on purpose:
small models drift (a fenced ```json block instead of ``<tool_call>`` tags,
``parameters`` instead of ``arguments``, arguments as a JSON string), and a
parser that sees garbage returns text, never raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._types import ToolSpec
from .._wire import FunctionCall
from ._stream import StreamParser


@dataclass
class ParseResult:
    content: str
    calls: list[FunctionCall] = field(default_factory=list)


@dataclass(frozen=True)
class CallGrammar:
    """GBNF for a call region, and whether it enforces the tools' schemas completely.

    Only an ``exact`` grammar lets a call's arguments stream while they are decoded:
    otherwise the call may still fail validation once complete, and what was streamed
    could not be taken back.
    """

    text: str
    exact: bool


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
    #: What the grammar puts between two calls of one turn.
    call_separator: ClassVar[str] = "\n"
    #: Extra stop strings beyond the model's end-of-generation tokens.
    stop: ClassVar[tuple[str, ...]] = ()
    #: What closes the tool list in a rendered prompt, and what then ends that turn: instructions of
    #: toolrun's own (:meth:`add_instructions`) go between them. None: the format does not place any.
    tools_turn: ClassVar[tuple[str, str] | None] = None
    #: A regex for the family's control-token texts, for engines that do not hold the model's vocabulary
    #: (remote ones): such text in a request is broken up before the prompt is sent (see ``_shield``).
    control_pattern: ClassVar[str] = r"<\|[^|\s<>]{1,64}\|>"

    @abstractmethod
    def parse(self, text: str) -> ParseResult:
        """Split a complete output into text and calls. Never raises."""

    @abstractmethod
    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> CallGrammar:
        """GBNF for a whole call region, opener included."""

    def add_instructions(self, prompt: str, instructions: str) -> str:
        """``prompt`` with ``instructions`` at the end of the turn that lists the tools, where the model
        reads them last before the conversation; unchanged if the format places none or lists no tools."""
        if not instructions or self.tools_turn is None:
            return prompt
        closer, turn_end = self.tools_turn
        listed = prompt.find(closer)
        end = prompt.find(turn_end, listed) if listed != -1 else -1
        if end == -1:
            return prompt
        return f"{prompt[:end]}\n\n{instructions}{prompt[end:]}"

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

    def stream_parser(self, tool_names: list[str] | None = None) -> StreamParser:
        return StreamParser(self, self.bare_call_openers(tool_names or []))
