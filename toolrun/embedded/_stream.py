"""The final answer as a stream: ``AI.run``'s events, with the run's history filled in as they are read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any


class ToolRunStream:
    """The final answer as ``AI.run`` stream events; the run's history fills in as they are read.

    ``messages`` ends with the answer, and ``total_usage`` includes the final
    call, once the stream has been read to the end.
    """

    def __init__(
        self,
        events: AsyncIterator[Any],
        messages: list[dict[str, Any]],
        total_usage: dict[str, int],
        on_done: Callable[[dict[str, int]], None] | None = None,
        *,
        count_usage: bool = True,
    ) -> None:
        self._events = events
        self._count_usage = count_usage
        self._parts: list[str] = []
        self._done = False
        self._on_done = on_done
        self.messages = messages
        self.total_usage = total_usage

    def __aiter__(self) -> ToolRunStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._events.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        if isinstance(event, Mapping):
            text = event.get("response")
            if isinstance(text, str):
                self._parts.append(text)
            if self._count_usage and isinstance(event.get("usage"), Mapping):
                _add_usage(self.total_usage, event["usage"])
        return event

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.messages.append({"role": "assistant", "content": "".join(self._parts)})
            if self._on_done:
                self._on_done(self.total_usage)

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


async def events_of(response: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """An already generated answer as the stream events ``AI.run`` would have sent."""
    text = response.get("response") or ""
    if text:
        yield {"response": text}
    last: dict[str, Any] = {"response": "", "finish_reason": "stop"}
    if isinstance(response.get("usage"), Mapping):
        last["usage"] = dict(response["usage"])
    yield last


async def async_events(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """A sync client's stream, read without blocking the event loop."""
    done = object()
    while (item := await asyncio.to_thread(next, iterator, done)) is not done:
        yield item


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the exact-type test spares an ABC check


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if _is_mapping(usage):
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if type(value) is int:
                total[key] += value


def sum_usage(usages: list[Any]) -> dict[str, int]:
    total = dict.fromkeys(_USAGE_KEYS, 0)
    for usage in usages:
        if usage:
            _add_usage(total, usage)
    return total
