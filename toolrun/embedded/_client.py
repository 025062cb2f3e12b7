"""What ``run_with_tools`` drives: anything with ``run(model, inputs)``, async or not."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol, TypeAlias, runtime_checkable

#: What ``run`` may return: a result dict, or (``stream``) events, async or not.
RunReturn: TypeAlias = Mapping[str, Any] | AsyncIterator[Any] | Iterator[Any]


@runtime_checkable
class ModelClient(Protocol):
    """``AsyncAI``, ``AI``, a remote engine's client, or your own: ``run(model, inputs)``.

    ``run`` may be a coroutine function or a plain one (a sync client runs in a worker thread).
    """

    def run(self, model: str, inputs: Mapping[str, Any], /) -> Any: ...


def is_async_client(ai: ModelClient) -> bool:
    run = ai.run
    return inspect.iscoroutinefunction(getattr(run, "__func__", run))


async def call_model(ai: ModelClient, model: str, request: Mapping[str, Any]) -> Any:
    """``ai.run(model, request)`` for async and sync clients alike."""
    if is_async_client(ai):
        return await ai.run(model, request)
    result = await asyncio.to_thread(ai.run, model, request)
    if inspect.isawaitable(result):
        result = await result
    return result
