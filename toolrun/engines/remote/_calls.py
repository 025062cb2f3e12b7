"""Tool calls read from an upstream's answer, in whichever shape it sends them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..._wire import Event, decode_arguments, function_body, new_call_id

log = logging.getLogger("toolrun.engines.remote")


class CallAccumulator:
    """Tool calls from a chat stream: OpenAI's indexed deltas, or whole calls, in either dialect.

    Fragments of one call share an ``index``; their ``arguments`` strings join. Some
    servers repeat the name in every fragment (llama-cpp-python), so a name is
    taken once. An ``arguments`` object (Workers AI's flat shape) is complete.
    """

    def __init__(self) -> None:
        self._slots: dict[int, dict[str, Any]] = {}

    @property
    def count(self) -> int:
        return len(self._slots)

    def add(self, items: Any) -> None:
        if not isinstance(items, list):
            return
        for item in items:
            if not isinstance(item, Mapping):
                continue
            index = item.get("index")
            if not isinstance(index, int):
                index = len(self._slots)
            slot = self._slots.setdefault(index, {"id": None, "name": "", "text": "", "object": None})
            if isinstance(item.get("id"), str) and item["id"]:
                slot["id"] = slot["id"] or item["id"]
            body = function_body(item)
            name = body.get("name")
            if isinstance(name, str) and name and not slot["name"]:
                slot["name"] = name
            arguments = body.get("arguments", body.get("parameters"))
            if isinstance(arguments, str):
                slot["text"] += arguments
            elif isinstance(arguments, Mapping):
                slot["object"] = dict(arguments)

    def events(self, upstream: str) -> list[Event]:
        out: list[Event] = []
        for index in sorted(self._slots):
            slot = self._slots[index]
            raw = slot["object"] if slot["object"] is not None else slot["text"]
            arguments, problem = decode_arguments(raw)
            if arguments is None or not slot["name"]:
                log.warning(
                    "dropping a call from %s: %s",
                    upstream,
                    f"its arguments {problem}" if arguments is None else "it has no name",
                )
                continue
            out.append(
                {
                    "tool_calls": [
                        {
                            "index": len(out),
                            "id": slot["id"] or new_call_id(),
                            "name": slot["name"],
                            "arguments": arguments,
                        }
                    ]
                }
            )
        return out


__all__ = ["CallAccumulator"]
