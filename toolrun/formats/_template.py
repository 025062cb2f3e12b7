"""Render a model's own chat template (from its GGUF) in a sandboxed jinja2.

Chat templates are code shipped inside downloaded weights: they run in
jinja2's immutable sandbox with only the helpers HF's transformers gives them.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .._errors import InvalidInputError


def _raise_exception(message: str) -> None:
    raise InvalidInputError(f"the model's chat template refused the messages: {message}")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False) -> str:
    # transformers' tojson: no HTML escaping, unicode kept (what the model was trained on).
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(source: str) -> Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=Undefined)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat_template(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    **extra: Any,
) -> str:
    try:
        template = _compile(source)
        text: str = template.render(
            messages=messages,
            tools=tools or None,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
            **extra,
        )
        return text
    except InvalidInputError:
        raise
    except TemplateError as exc:
        raise InvalidInputError(f"the chat template failed to render: {exc}") from None


__all__ = ["StrictUndefined", "render_chat_template"]
