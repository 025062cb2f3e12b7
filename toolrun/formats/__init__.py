"""Tool-call formats, one module per model family, behind a registry (like vLLM's tool parsers).

A format renders tools into the prompt (through the model's own chat template,
or its family's fallback), parses the calls the model writes (complete or
streaming, leniently: small models drift), and builds the grammar that keeps
those calls well-formed.
"""

from __future__ import annotations

from .._errors import InvalidInputError
from ._base import CallGrammar, ParseResult, ToolCallFormat
from ._grammar import schema_grammar
from ._json import coerce_calls, scan_json
from ._prompt import fold_tool_results
from ._shield import ControlTokens, ShieldedPrompt
from ._stream import PlainTextParser, StreamParser
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
    "CallGrammar",
    "ControlTokens",
    "HermesFormat",
    "Llama3JsonFormat",
    "MistralFormat",
    "ParseResult",
    "PlainTextParser",
    "ShieldedPrompt",
    "StreamParser",
    "ToolCallFormat",
    "coerce_calls",
    "fold_tool_results",
    "format_names",
    "get_format",
    "register_format",
    "render_chat_template",
    "scan_json",
    "schema_grammar",
]
