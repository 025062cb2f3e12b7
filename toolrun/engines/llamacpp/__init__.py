"""The local engine: llama.cpp through llama-cpp-python, on the CPU."""

from ...formats import get_format
from .._registry import EngineSpec, register_engine
from ._engine import LlamaCppEngine


def _local_engine(spec: EngineSpec) -> LlamaCppEngine:
    engine = LlamaCppEngine(
        spec.require_weights(),
        get_format(spec.tool_format),
        context_window=spec.context_window,
        n_threads=spec.n_threads,
        policy=spec.policy,
    )
    engine.load()
    return engine


register_engine("local", _local_engine, source="weights")

__all__ = ["LlamaCppEngine"]
