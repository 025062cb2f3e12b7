"""``as_tool``: a :class:`Tool` from any shape users put in ``tools`` (a Tool, an ai-utils dict, a function)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import InvalidInputError
from ._function import tool
from ._tool import Tool, tool_from_dict


def as_tool(obj: Any, where: str = "tool") -> Tool:
    """A :class:`Tool` from what users pass in ``tools``.

    Accepts a ``Tool``; ai-utils' plain object ``{"name", "description",
    "parameters", "function": callable}``; or a bare Python function (described
    by :func:`tool`). The OpenAI shape ``{"type": "function", "function": {...}}``
    holds no code to run, so it is refused with a pointer to the shapes that do.
    """
    if isinstance(obj, Tool):
        return obj
    if type(obj) is dict or isinstance(obj, Mapping):
        cached = _DICT_TOOLS.get(id(obj))
        if cached is not None and cached[0] is obj and _still_matches(obj, cached[1]):
            return cached[1]
        converted = tool_from_dict(obj, where)
        if len(_DICT_TOOLS) >= _DICT_TOOLS_MAX:
            _DICT_TOOLS.clear()
        _DICT_TOOLS[id(obj)] = (obj, converted)
        return converted
    if callable(obj):
        return tool(obj)
    raise InvalidInputError(f"a tool must be a dict, a Tool or a function, not {type(obj).__name__}", where=where)


# ai-utils-style dict tools come back on every run; converting them again (and
# building a new schema validator for strict_validation) would cost more than the
# rest of a round. The Tool is reused while the dict still holds the same objects.
_DICT_TOOLS: dict[int, tuple[Mapping[str, Any], Tool]] = {}
_DICT_TOOLS_MAX = 1024


def _still_matches(obj: Mapping[str, Any], converted: Tool) -> bool:
    return (
        obj.get("function") is converted.function
        and obj.get("parameters") is converted._parameters
        and obj.get("name") == converted.name
        and (obj.get("description") or "") == converted.description
        and obj.get("timeout") == converted.timeout
    )
