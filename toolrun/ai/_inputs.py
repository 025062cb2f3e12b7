"""Workers AI's text-generation inputs: validated once, turned into a ``GenerationRequest``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Required, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import InvalidInputError, ToolChoiceError
from .._json import check_json
from .._suggest import did_you_mean
from .._types import ToolSpec, normalize_messages, normalize_tool, normalize_tools
from .._wire import Message, function_body
from ..engines import GenerationRequest, NamedTool, SamplingParams, ToolChoice


class RunInputs(BaseModel):
    """The fields ``AI.run`` accepts (Workers AI's schema, plus OpenAI's ``parallel_tool_calls``)."""

    # Strict: JSON's true is not the integer 1 and "yes" is not true. Numbers must be finite.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    messages: list[Any] | None = None
    prompt: str | None = None
    raw: bool = False
    tools: list[Any] | None = None
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    stream: bool = False
    max_tokens: int = Field(256, ge=1, le=131072)
    temperature: float = Field(0.6, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, le=1000)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    repetition_penalty: float = Field(1.0, ge=0.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    response_format: dict[str, Any] | None = None


#: The inputs that are sampling settings: every field of SamplingParams, which RunInputs has by the same name
#: (tests/core/test_binding.py holds them to it).
_SAMPLING_FIELDS = {field.name for field in dataclasses.fields(SamplingParams)}


class _InputFields(TypedDict, total=False):
    """:class:`RunInputs` as a dict literal's type: lets ``AI.run`` tell its two answers apart by ``stream``.

    Its fields hold no ``Any``: an argument whose type holds one matches every overload, and mypy then
    gives up on the answer's type.
    """

    messages: Sequence[Mapping[str, object]]
    prompt: str
    raw: bool
    #: JSON Schema tool definitions (Workers AI's or OpenAI's shape), ToolSpecs, or Python callables.
    tools: Sequence[object]
    tool_choice: str | Mapping[str, object]
    parallel_tool_calls: bool
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    repetition_penalty: float
    frequency_penalty: float
    presence_penalty: float
    response_format: Mapping[str, object] | None


class StreamInputs(_InputFields, total=False):
    """Inputs with ``"stream": True``: ``AI.run`` returns the events as they come."""

    stream: Required[Literal[True]]


class ResultInputs(_InputFields, total=False):
    """Inputs without ``stream`` (or with ``"stream": False``): ``AI.run`` returns the whole result."""

    stream: Literal[False]


def parse_inputs(inputs: object) -> RunInputs:
    """The inputs checked and typed; a :class:`RunInputs` (checked by pydantic when it was built) as it is."""
    parsed = inputs if isinstance(inputs, RunInputs) else _validate(inputs)
    if (parsed.messages is None) == (parsed.prompt is None):
        raise InvalidInputError("give exactly one of 'messages' or 'prompt'", where="inputs")
    return parsed


def _validate(inputs: object) -> RunInputs:
    if not isinstance(inputs, Mapping):
        raise InvalidInputError(f"inputs must be an object, not {type(inputs).__name__}", where="inputs")
    # Everything but the tools (which may be objects carrying code) must be plain, bounded JSON.
    check_json({k: v for k, v in inputs.items() if k != "tools"}, "")
    try:
        return RunInputs.model_validate(dict(inputs))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "inputs"
        message = err["msg"]
        if err["type"] != "missing" and "input" in err and not isinstance(err["input"], (dict, list)):
            message += f", not {json.dumps(err['input'])}"
        if err["type"] == "extra_forbidden":
            message = f"unknown input field; accepted fields are {', '.join(RunInputs.model_fields)}"
        raise InvalidInputError(message, where=where) from None


def _tool_choice(raw: Any, tool_names: list[str]) -> ToolChoice:
    if raw is None:
        return "auto"
    if isinstance(raw, str):
        if raw in ("auto", "none", "required"):
            return raw  # type: ignore[return-value]  # checked just above
        if raw == "any":  # Mistral's and Anthropic's word for required
            return "required"
        raise ToolChoiceError(
            f"tool_choice must be 'auto', 'none', 'required' or a function object, not {raw!r}", where="tool_choice"
        )
    if isinstance(raw, Mapping):
        fn = function_body(raw)
        name = fn.get("name")
        if not isinstance(name, str):
            raise ToolChoiceError('expected {"type": "function", "function": {"name": ...}}', where="tool_choice")
        if name not in tool_names:
            known = ", ".join(tool_names) or "no tools were given"
            raise ToolChoiceError(
                f"tool_choice names {name!r}, which is not among the tools ({known}){did_you_mean(name, tool_names)}",
                where="tool_choice.function.name",
            )
        return NamedTool(name)
    raise ToolChoiceError("tool_choice must be a string or an object", where="tool_choice")


def _response_schema(fmt: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not fmt:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        body = fmt.get("json_schema")
        if not isinstance(body, Mapping):
            raise InvalidInputError("json_schema must be an object", where="response_format.json_schema")
        # OpenAI nests the schema under "schema"; Workers AI passes the schema itself.
        schema: Mapping[str, Any] = body["schema"] if isinstance(body.get("schema"), Mapping) else body
        try:
            normalize_tool(ToolSpec("response_format", "", schema), 0)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, where="response_format.json_schema") from None
        return schema
    raise InvalidInputError(f"unsupported response_format type {kind!r}", where="response_format.type")


def build_request(inputs: RunInputs, *, function_calling: bool) -> GenerationRequest:
    tools = normalize_tools(inputs.tools)
    choice = _tool_choice(inputs.tool_choice, [t.name for t in tools])
    if choice == "required" and not tools:
        raise ToolChoiceError("tool_choice requires a tool call but no tools were given", where="tool_choice")
    if tools and choice != "none" and not function_calling:
        raise InvalidInputError(
            "this model does not support function calling; `toolrun models --function-calling` lists those that do",
            where="tools",
        )
    sampling = SamplingParams(**inputs.model_dump(include=_SAMPLING_FIELDS))
    messages: list[Message] = normalize_messages(inputs.messages) if inputs.messages is not None else []
    raw_prompt = None
    if inputs.prompt is not None:
        if inputs.raw:
            raw_prompt = inputs.prompt
        else:
            messages = [{"role": "user", "content": inputs.prompt}]
    return GenerationRequest(
        messages=messages,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=inputs.parallel_tool_calls,
        sampling=sampling,
        response_schema=_response_schema(inputs.response_format),
        raw_prompt=raw_prompt,
    )


__all__ = ["ResultInputs", "RunInputs", "StreamInputs", "build_request", "parse_inputs"]
