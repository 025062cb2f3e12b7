"""The engine contract: one request in, a stream of events out.

Events are the public streaming shape (the binding passes them straight on):
``{"response": "text delta"}``, ``{"tool_calls": [{"index", "id", "name", "arguments"}]}``
(``arguments`` a JSON string, as OpenAI streams it), and a last
``{"response": "", "usage": {...}, "finish_reason": "stop" | "tool_calls" | "length"}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from .._types import ToolSpec


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


@dataclass
class GenerationRequest:
    messages: list[dict[str, Any]]
    tools: list[ToolSpec] = field(default_factory=list)
    #: "auto", "none", "required", or the one tool's name that must be called.
    tool_choice: str = "auto"
    forced_tool: str | None = None
    parallel_tool_calls: bool = True
    sampling: SamplingParams = field(default_factory=SamplingParams)
    #: A JSON Schema the text answer must match (response_format), or None.
    response_schema: Mapping[str, Any] | None = None
    #: Raw prompt completion (Workers AI ``prompt`` + ``raw``): no chat template.
    raw_prompt: str | None = None


def final_event(prompt_tokens: int, completion_tokens: int, finish_reason: str) -> dict[str, Any]:
    return {
        "response": "",
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "finish_reason": finish_reason,
    }


class Engine(ABC):
    """Runs generation requests for one model."""

    #: The model's context window in tokens, when the engine knows it.
    context_window: int | None = None

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[dict[str, Any]]:
        """Stream events for ``request``. Closing the iterator early stops generation."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""
