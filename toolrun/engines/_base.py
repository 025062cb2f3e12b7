"""The engine contract: one request in, a stream of events out.

Events are the shapes of :mod:`toolrun._wire`: ``{"response": "text delta"}``;
``{"tool_call_delta": {...}}`` fragments of a call's arguments as they are
decoded (optional: an engine that cannot promise the call will validate sends
none); ``{"tool_calls": [{"index", "id", "name", "arguments": dict}]}`` once a
call is complete; and a last ``{"response": "", "usage", "finish_reason"}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from .._types import ToolSpec
from .._wire import Event, Message
from ..formats import PlainTextParser, StreamParser, ToolCallFormat


@dataclass(frozen=True)
class NamedTool:
    """``tool_choice`` that names the one tool the model must call."""

    name: str


#: "auto": the model decides; "none": no calls; "required": at least one call; a NamedTool: that one.
ToolChoice: TypeAlias = Literal["auto", "none", "required"] | NamedTool


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def for_calls(self, call_temperature: float | None) -> SamplingParams:
        """The sampling a call's arguments are written with: at ``call_temperature`` when that is lower
        (a catalog setting; None keeps the request's)."""
        if call_temperature is not None and call_temperature < self.temperature:
            return replace(self, temperature=call_temperature)
        return self


@dataclass
class GenerationRequest:
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    sampling: SamplingParams = field(default_factory=SamplingParams)
    #: A JSON Schema the text answer must match (response_format), or None.
    response_schema: Mapping[str, Any] | None = None
    #: Raw prompt completion (Workers AI ``prompt`` + ``raw``): no chat template.
    raw_prompt: str | None = None

    @property
    def uses_tools(self) -> bool:
        """Tools are offered and may be called."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def must_call(self) -> bool:
        """A call is required from the first token (``required`` or a named tool)."""
        return self.uses_tools and self.tool_choice != "auto"

    def answer_parser(self, tool_format: ToolCallFormat) -> StreamParser | PlainTextParser:
        """What reads the model's answer: ``tool_format``'s call parser for the tools offered, or, with no
        tools in use, a parser that passes the text through."""
        return tool_format.stream_parser([t.name for t in self.tools]) if self.uses_tools else PlainTextParser()

    @property
    def may_add_calls(self) -> bool:
        """Several calls may be written in one turn: tools in use, parallel calls allowed, no named tool
        (a named tool_choice asks for that one call, as OpenAI's models answer it)."""
        return self.uses_tools and self.parallel_tool_calls and not isinstance(self.tool_choice, NamedTool)

    @property
    def callable_tools(self) -> list[ToolSpec]:
        """The tools a call may name: all of them, or the one ``tool_choice`` names."""
        if isinstance(self.tool_choice, NamedTool):
            return [t for t in self.tools if t.name == self.tool_choice.name]
        return self.tools


class Engine(ABC):
    """Runs generation requests for one model."""

    #: The model's context window in tokens, when the engine knows it.
    context_window: int | None = None

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Stream events for ``request``. Closing the iterator early stops generation."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""
