"""Engines: where tokens come from — local llama.cpp, or an engine that already exists elsewhere.

``LlamaCppEngine`` runs a GGUF on this machine; ``OpenAICompatibleEngine`` talks
to vLLM, SGLang, llama.cpp's server or any OpenAI-compatible endpoint, and
``WorkersAIEngine`` to Cloudflare Workers AI (both in :mod:`toolrun.engines.remote`).
They load their dependencies only when asked for. ``ScriptedEngine`` (in
:mod:`toolrun.engines.scripted`) answers from a script, for tests and benchmarks.

Each engine module registers its kinds in the engine registry (:func:`register_engine`);
:func:`engine_kind` finds one by name, loading the built-in engine modules on the first
name not yet registered.
"""

from typing import TYPE_CHECKING, Any

from .._errors import InvalidInputError
from ._base import Engine, GenerationRequest, NamedTool, SamplingParams, ToolChoice
from ._registry import (
    EngineFactory,
    EngineKind,
    EngineSource,
    EngineSpec,
    HostedAccount,
    RemoteEndpoint,
    register_engine,
    registered_kind,
    registered_names,
)

if TYPE_CHECKING:
    from .llamacpp import LlamaCppEngine
    from .remote import OpenAICompatibleEngine, WorkersAIEngine

__all__ = [
    "Engine",
    "EngineFactory",
    "EngineKind",
    "EngineSource",
    "EngineSpec",
    "GenerationRequest",
    "HostedAccount",
    "LlamaCppEngine",
    "NamedTool",
    "OpenAICompatibleEngine",
    "RemoteEndpoint",
    "SamplingParams",
    "ToolChoice",
    "WorkersAIEngine",
    "engine_kind",
    "engine_names",
    "register_engine",
]


def _load_builtin_engines() -> None:
    """Import the built-in engine modules, which register their kinds (the remote ones first: no numpy)."""
    from . import (
        llamacpp,  # noqa: F401  - "local"
        remote,  # noqa: F401  - OpenAI-compatible flavours and Workers AI
    )


def engine_kind(name: str, *sources: "EngineSource", where: str = "engine") -> EngineKind:
    """The registered engine kind ``name`` (of one of ``sources``, when given); InvalidInputError at ``where``."""
    kind = registered_kind(name) if isinstance(name, str) else None
    if kind is None or (sources and kind.source not in sources):
        _load_builtin_engines()
        kind = registered_kind(name) if isinstance(name, str) else None
    if kind is None or (sources and kind.source not in sources):
        field = where.rpartition(".")[2]
        raise InvalidInputError(
            f"{field} must be one of {', '.join(engine_names(*sources))}, not {name!r}", where=where
        )
    return kind


def engine_names(*sources: "EngineSource") -> list[str]:
    """Every engine kind's name (aliases included), of the given sources or all, the built-ins loaded."""
    _load_builtin_engines()
    return registered_names(*sources)


def __getattr__(name: str) -> Any:
    if name == "LlamaCppEngine":
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine
    if name in ("OpenAICompatibleEngine", "WorkersAIEngine"):
        from . import remote

        return getattr(remote, name)
    raise AttributeError(name)
