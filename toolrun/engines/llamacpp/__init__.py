"""The local engine: llama.cpp through llama-cpp-python, on the CPU."""

from ._engine import LlamaCppEngine

__all__ = ["LlamaCppEngine"]
