"""Engines: where tokens come from — local llama.cpp, or an engine that already exists elsewhere.

``LlamaCppEngine`` runs a GGUF on this machine; ``OpenAICompatibleEngine`` talks
to vLLM, SGLang, llama.cpp's server or any OpenAI-compatible endpoint, and
``WorkersAIEngine`` to Cloudflare Workers AI (both in :mod:`toolrun.engines.remote`).
They load their dependencies only when asked for. ``ScriptedEngine`` (in
:mod:`toolrun.engines.scripted`) answers from a script, for tests and benchmarks.
"""

from typing import TYPE_CHECKING, Any

from ._base import Engine, GenerationRequest, NamedTool, SamplingParams, ToolChoice

if TYPE_CHECKING:
    from .llamacpp import LlamaCppEngine
    from .remote import OpenAICompatibleEngine, WorkersAIEngine

__all__ = [
    "Engine",
    "GenerationRequest",
    "LlamaCppEngine",
    "NamedTool",
    "OpenAICompatibleEngine",
    "SamplingParams",
    "ToolChoice",
    "WorkersAIEngine",
]


def __getattr__(name: str) -> Any:
    if name == "LlamaCppEngine":
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine
    if name in ("OpenAICompatibleEngine", "WorkersAIEngine"):
        from . import remote

        return getattr(remote, name)
    raise AttributeError(name)
