"""Calling a user's ``ai`` object, whatever its flavour."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


async def call_model(ai: Any, model: str, request: dict[str, Any]) -> Any:
    """``ai.run(model, request)`` for async and sync clients alike (a sync one runs in a worker thread)."""
    run = ai.run
    if inspect.iscoroutinefunction(run):
        return await run(model, request)
    result = await asyncio.to_thread(run, model, request)
    if inspect.isawaitable(result):
        result = await result
    return result
