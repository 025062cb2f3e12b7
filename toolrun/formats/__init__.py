"""Tool-call formats, one module per model family, behind a registry (like vLLM's tool parsers)."""

from __future__ import annotations

from .._errors import InvalidInputError
from ._base import ParseResult, ParsedCall, StreamParser, ToolCallFormat, coerce_calls, scan_json
from ._template import render_chat_template
from .hermes import HermesFormat
from .llama3 import Llama3JsonFormat
from .mistral import MistralFormat

_REGISTRY: dict[str, type[ToolCallFormat]] = {}


def register_format(cls: type[ToolCallFormat]) -> type[ToolCallFormat]:
    """Add a format under ``cls.name`` (usable as a class decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def get_format(name: str) -> ToolCallFormat:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise InvalidInputError(
            f"unknown tool-call format {name!r}; known formats: {', '.join(sorted(_REGISTRY))}"
        ) from None


def format_names() -> list[str]:
    return sorted(_REGISTRY)


for _cls in (HermesFormat, Llama3JsonFormat, MistralFormat):
    register_format(_cls)

__all__ = [
    "ParseResult", "ParsedCall", "StreamParser", "ToolCallFormat", "coerce_calls", "scan_json",
    "render_chat_template", "register_format", "get_format", "format_names",
    "HermesFormat", "Llama3JsonFormat", "MistralFormat",
]
