"""BFCL's function documents as tools: its Python-flavoured types (``dict``, ``float``, ``any``) in JSON Schema."""

from __future__ import annotations

from typing import Any

_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "bool": "boolean",
    "str": "string",
    "String": "string",
}
_SUBSCHEMAS = ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not")


def to_json_schema(node: Any) -> Any:
    """BFCL's parameter schema, recursively, with its types in JSON Schema's words (``any`` = no type)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS:
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [_TYPES.get(k, k) for k in kind if k != "any"]
        if kinds:
            out["type"] = kinds
    elif isinstance(kind, str) and kind != "any":
        out["type"] = _TYPES.get(kind, kind)
    return out


def to_tool(function: dict[str, Any]) -> dict[str, Any]:
    """One BFCL function as a Workers AI tool (name kept exactly, dots included: the checker compares it)."""
    parameters = to_json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return {"name": function["name"], "description": function.get("description", ""), "parameters": parameters}
