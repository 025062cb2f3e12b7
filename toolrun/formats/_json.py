"""Lenient JSON scanning shared by the parsers: find JSON in prose, read calls in any shape models write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .._wire import FunctionCall, decode_arguments, function_body

_DECODER = json.JSONDecoder()


def scan_json(text: str, start: int = 0) -> Iterator[tuple[int, int, Any]]:
    """Every top-level JSON object or array in ``text``: ``(begin, end, value)``."""
    i = start
    n = len(text)
    while i < n:
        brace = text.find("{", i)
        bracket = text.find("[", i)
        candidates = [p for p in (brace, bracket) if p != -1]
        if not candidates:
            return
        pos = min(candidates)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            i = pos + 1
            continue
        yield pos, end, value
        i = end


def coerce_calls(value: Any) -> list[FunctionCall]:
    """Calls from a decoded JSON value in any of the shapes models write; [] when it is not a call."""
    items = value if isinstance(value, list) else [value]
    calls: list[FunctionCall] = []
    for item in items:
        if not isinstance(item, dict):
            return []
        body = function_body(item)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return []
        raw_args = body.get("arguments", body.get("parameters", {}))
        args, _ = decode_arguments(raw_args.strip() if isinstance(raw_args, str) else raw_args)
        if args is None:
            return []
        calls.append({"name": name, "arguments": args})
    return calls
