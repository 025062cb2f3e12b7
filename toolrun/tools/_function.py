"""``tool``: a :class:`Tool` from a Python function's signature, type hints and docstring.

The JSON Schema comes from pydantic (so nested models, ``Literal``, ``Optional``,
``Annotated[..., Field(...)]`` all work) and the descriptions from griffe, which
reads Google, NumPy and Sphinx docstrings. The same pydantic model validates and
coerces the model's arguments before the function runs.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from typing import Any, overload

import griffe
import pydantic
from pydantic.fields import FieldInfo

from .._errors import InvalidInputError, ToolSchemaError
from .._types import TOOL_NAME_PATTERN, normalize_tool
from ._tool import Tool, ToolFunction, tool_from_dict

# griffe warns about docstrings that name no types; a tool's types come from its hints.
_QUIET = {"warnings": False, "warn_unknown_params": False, "warn_missing_types": False}
_PER_STYLE_OPTIONS: Any = {"google": _QUIET, "numpy": _QUIET, "sphinx": _QUIET}


@overload
def tool(
    function: ToolFunction | Mapping[str, Any],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | Mapping[str, Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Make a tool from a function (sync or async), as ``@tool``, ``@tool(...)`` or ``tool(f, ...)``.

    - ``name`` defaults to the function's name; ``description`` to its
      docstring's text before the first section (``Args:``, ``Parameters``, ``:param``).
    - ``parameters`` defaults to a JSON Schema built from the type hints, with
      each argument described by the docstring. Given explicitly, it is used as
      is, and the arguments reach the function without coercion.
    - ``timeout`` (seconds) overrides ``run_with_tools``' per-call timeout.
    - ai-utils' form works too: ``tool({"name", "description", "parameters", "function"})``.

    The result is a :class:`Tool`; calling it calls the original function.
    """
    if function is None:
        return lambda f: tool(f, name=name, description=description, parameters=parameters, timeout=timeout)
    if isinstance(function, Tool):  # a Tool is a Mapping too: rebuild it from its function
        function = function.function
    elif isinstance(function, Mapping):
        spec = dict(function)
        spec.update(
            {
                k: v
                for k, v in (
                    ("name", name),
                    ("description", description),
                    ("parameters", parameters),
                    ("timeout", timeout),
                )
                if v is not None
            }
        )
        result = tool_from_dict(spec, "tool")
        _check(result)
        return result
    if not callable(function):
        raise TypeError(f"tool() takes a function or a dict, not {type(function).__name__}")

    tool_name = str(name or getattr(function, "__name__", ""))
    if not TOOL_NAME_PATTERN.fullmatch(tool_name):
        raise ToolSchemaError(
            f"{tool_name!r} cannot be a tool name (1-128 letters, digits, '_', '-', '.', ':'); pass name=...",
            where="tool",
        )
    summary, argument_docs = _read_docstring(function)
    coerce = None
    if parameters is None:
        parameters, coerce = _schema_from_signature(function, tool_name, argument_docs)
    result = Tool(
        tool_name,
        summary if description is None else description,
        parameters,
        function,
        timeout=timeout,
        coerce_arguments=coerce,
    )
    _check(result)
    return result


def _check(made: Tool) -> None:
    """Name and schema checks now, at definition, rather than on the first model call."""
    try:
        normalize_tool(made, 0)
    except InvalidInputError as exc:
        where = (exc.where or "").replace("tools[0]", "tool", 1)
        raise type(exc)(exc.message, where=where) from None


# ------------------------------------------------------------ docstrings


def _read_docstring(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The docstring's leading text and each documented argument's description."""
    doc = inspect.getdoc(function)
    if not doc:
        return "", {}
    griffe_logger = logging.getLogger("griffe")
    previous = griffe_logger.disabled
    griffe_logger.disabled = True  # the auto-detector itself may still warn about ambiguous styles
    try:
        sections = griffe.parse_auto(griffe.Docstring(doc), per_style_options=_PER_STYLE_OPTIONS)
    finally:
        griffe_logger.disabled = previous
    texts: list[str] = []
    arguments: dict[str, str] = {}
    seen_section = False
    for section in sections:
        kind = section.kind.value
        if kind == "text":
            if not seen_section:
                texts.append(section.value)
        else:
            seen_section = True
            if kind in ("parameters", "other parameters"):
                for param in section.value:
                    arguments[param.name.lstrip("*")] = " ".join(param.description.split())
    return "\n\n".join(t.strip() for t in texts if t.strip()), arguments


# --------------------------------------------------------------- schemas


def _schema_from_signature(
    function: Callable[..., Any], tool_name: str, argument_docs: Mapping[str, str]
) -> tuple[dict[str, Any], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(
            f"tool {tool_name!r}: cannot read the function's signature ({exc}); pass parameters=...", where="tool"
        ) from None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - NameError for a forward reference that does not resolve, and the like
        raise ToolSchemaError(f"tool {tool_name!r}: cannot resolve the type hints ({exc})", where="tool") from None

    # Fields are named p0, p1, ... with the real name as alias: parameter names
    # like `schema`, `json`, `model_id` or `_x` would clash with BaseModel's own.
    fields: dict[str, Any] = {}
    field_names: list[tuple[str, str, bool]] = []  # (field, parameter, pass the validated default)
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            kinds: dict[inspect._ParameterKind, str] = {param.VAR_POSITIONAL: "*args", param.VAR_KEYWORD: "**kwargs"}
            kind = kinds.get(param.kind, "positional-only")
            raise ToolSchemaError(
                f"tool {tool_name!r}: parameter {param.name!r} is {kind}, which a model cannot name; "
                "use ordinary parameters or pass parameters=...",
                where=f"tool.{param.name}",
            )
        if param.name not in hints:
            raise ToolSchemaError(
                f"tool {tool_name!r}: parameter {param.name!r} has no type hint, so the model would not know what "
                f"to pass; annotate it (e.g. `{param.name}: str`, or `{param.name}: Any` to accept any JSON value), "
                "or pass parameters=...",
                where=f"tool.{param.name}",
            )
        annotation = hints[param.name]
        doc = None if _described_by_hint(annotation) else argument_docs.get(param.name)
        explicit = param.default if isinstance(param.default, FieldInfo) else None
        if explicit is not None:
            # description=None would still count as set, and hide the explicit Field's own.
            extra: dict[str, Any] = {"alias": param.name}
            if doc and explicit.description is None:
                extra["description"] = doc
            field = FieldInfo.merge_field_infos(explicit, pydantic.Field(**extra))
        else:
            default = ... if param.default is inspect.Parameter.empty else param.default
            # description=None would still count as set and hide an Annotated[..., Field(description=...)].
            described: dict[str, Any] = {"description": doc} if doc else {}
            field = pydantic.Field(default, alias=param.name, **described)
        field_name = f"p{index}"
        fields[field_name] = (annotation, field)
        field_names.append((field_name, param.name, explicit is not None))
    try:
        model = pydantic.create_model(
            f"{tool_name.replace('.', '_').replace('-', '_').replace(':', '_')}_arguments",
            __config__=pydantic.ConfigDict(extra="ignore", arbitrary_types_allowed=False),
            **fields,
        )
        schema = model.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise _unschematic_parameter(tool_name, fields, field_names) or ToolSchemaError(
            f"tool {tool_name!r}: cannot build a JSON Schema from the type hints: {exc}", where="tool"
        ) from None

    def coerce(arguments: Mapping[str, Any]) -> dict[str, Any]:
        validated = model.model_validate(arguments)
        given = validated.model_fields_set
        # Unset arguments are left out so the function's own defaults apply,
        # except `x = Field(...)` defaults, which the function would see as a FieldInfo.
        return {
            param: getattr(validated, field) for field, param, explicit in field_names if field in given or explicit
        }

    return _tidy_schema(schema), coerce


def _unschematic_parameter(
    tool_name: str, fields: Mapping[str, Any], field_names: list[tuple[str, str, bool]]
) -> ToolSchemaError | None:
    """The first parameter whose type has no JSON Schema (a plain class), explained in toolrun's terms."""
    for field_name, param_name, _ in field_names:
        culprit = _without_schema(fields[field_name][0])
        if culprit is not None:
            shown = getattr(culprit, "__name__", None) or repr(culprit)
            return ToolSchemaError(
                f"tool {tool_name!r}: parameter {param_name!r} uses {shown}, a class with no JSON form a model could "
                "write; use a pydantic BaseModel, a dataclass or a TypedDict with typed fields in its place, take "
                "its fields as separate parameters, or pass parameters=... with a JSON Schema",
                where=f"tool.{param_name}",
            )
    return None


def _without_schema(annotation: Any) -> Any:
    """The innermost type in ``annotation`` (``list[Point]``: ``Point``) that has no JSON Schema, or None."""
    try:
        pydantic.TypeAdapter(annotation).json_schema()
        return None
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        pass
    for argument in typing.get_args(annotation):
        if isinstance(argument, type) or typing.get_origin(argument) is not None:
            inner = _without_schema(argument)
            if inner is not None:
                return inner
    return annotation


def _described_by_hint(annotation: Any) -> bool:
    """``Annotated[int, Field(description=...)]``: the explicit description wins over the docstring."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in annotation.__metadata__)


def _tidy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles and inline non-recursive ``$defs``: fewer tokens for the model."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any, trail: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, trail) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref[len("#/$defs/") :]
            if key in trail or key not in definitions:
                return node  # recursive type: keep the reference (and its $defs below)
            inlined = resolve(definitions[key], (*trail, key))
            siblings = {k: resolve(v, trail) for k, v in node.items() if k != "$ref"}
            return {**inlined, **siblings}
        out = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
                out[key] = {name: resolve(sub, trail) for name, sub in value.items()}
            else:
                out[key] = resolve(value, trail)
        return out

    tidy: dict[str, Any] = resolve(schema, ())
    kept = _referenced_definitions(tidy, definitions)
    if kept:
        tidy["$defs"] = {key: resolve(definitions[key], (key,)) for key in kept}
    return tidy


def _referenced_definitions(node: Any, definitions: Mapping[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref[len("#/$defs/") :]
                if key in definitions and key not in found:
                    found.append(key)
                    walk(definitions[key])
            for sub in value.values():
                walk(sub)
        elif isinstance(value, list):
            for sub in value:
                walk(sub)

    walk(node)
    return found
