"""Engines: where tokens come from. Local llama.cpp, any OpenAI-compatible server, or a script."""

from ._base import Engine, GenerationRequest, SamplingParams, final_event
from .scripted import ScriptedEngine, ScriptedReply

__all__ = ["Engine", "GenerationRequest", "SamplingParams", "final_event", "ScriptedEngine", "ScriptedReply",
           "LlamaCppEngine", "OpenAICompatibleEngine"]


def __getattr__(name: str):
    # The heavy engines load their dependencies only when asked for.
    if name == "LlamaCppEngine":
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine
    if name == "OpenAICompatibleEngine":
        from .openai_compat import OpenAICompatibleEngine

        return OpenAICompatibleEngine
    raise AttributeError(name)
