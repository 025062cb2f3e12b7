"""The grammars a request decodes under, built once per tool list and kept within a byte budget.

Building one runs llama.cpp's schema converter over schemas that whoever sent the request wrote: it is
done before the request reaches a decode loop (``asyncio.to_thread``), never on the thread that decodes
for everyone, and the result is cached by a digest of what it was built from — not by object identity,
which Python reuses, and not by the schemas' text, which may be megabytes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...formats import CallGrammar, ToolCallFormat, schema_grammar
from .._base import GenerationRequest

#: Grammar text kept across requests, per engine. A grammar is bounded by the formats layer; the budget
#: bounds how many are kept (a typical tool list's grammar is a few KB).
DEFAULT_BUDGET_BYTES = 16 * 2**20


@dataclass(frozen=True)
class RequestGrammars:
    """What one request may decode under: its tools' call grammar, its ``response_format`` schema's."""

    call: CallGrammar | None = None
    schema: str | None = None


class GrammarCache:
    """Least-recently-used grammars by digest, within ``budget_bytes`` of grammar text; thread-safe."""

    def __init__(self, tool_format: ToolCallFormat, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.format = tool_format
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, CallGrammar] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._items)

    def for_request(self, request: GenerationRequest) -> RequestGrammars:
        """The request's grammars (blocking: run it off the event loop and off the decode thread)."""
        call = self.call(request) if request.uses_tools else None
        schema = None
        if request.response_schema is not None:
            wanted = request.response_schema
            schema = self._get(_digest("schema", wanted), lambda: CallGrammar(schema_grammar(wanted), exact=True)).text
        return RequestGrammars(call, schema)

    def call(self, request: GenerationRequest) -> CallGrammar:
        """The grammar for a call of one of the request's callable tools."""
        tools = request.callable_tools
        parallel = request.parallel_tool_calls
        key = _digest("call", self.format.name, [[t.name, t.parameters] for t in tools], parallel)
        return self._get(key, lambda: self.format.grammar(tools, parallel=parallel))

    def _get(self, key: str, build: Callable[[], CallGrammar]) -> CallGrammar:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        made: CallGrammar = build()  # outside the lock: another request's lookup need not wait for this one
        size = len(made.text.encode())
        if size > self.budget_bytes:
            return made
        with self._lock:
            if key not in self._items:
                self._items[key] = made
                self._held += size
                while self._held > self.budget_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._held -= len(dropped.text.encode())
        return made


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


__all__ = ["DEFAULT_BUDGET_BYTES", "GrammarCache", "RequestGrammars"]
