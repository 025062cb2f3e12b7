"""The sync face of ``run_with_tools``, for code that has no event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Unpack

from ._client import ModelClient
from ._loop import ToolLoop
from ._options import RunOptions, RunOptionsArgs
from ._stream import ToolRunStream

# One event loop per thread, kept between calls: an AsyncAI (or any client
# holding loop-bound locks and connections) can then be reused across sync calls.
_local = threading.local()


def _runner() -> asyncio.Runner:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_with_tools_sync cannot run inside an event loop; use `await run_with_tools(...)`")
    runner = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = asyncio.Runner()
    return runner


def run_with_tools_sync(
    ai: ModelClient, model: str, inputs: Mapping[str, Any], **options: Unpack[RunOptionsArgs]
) -> dict[str, Any] | ToolRunSyncStream:
    """:func:`run_with_tools` without ``await``; ``ai`` may be sync (toolrun's ``AI``) or async.

    Same options (:class:`RunOptions`). With ``stream_final_response=True`` it returns a
    :class:`ToolRunSyncStream` (a plain iterator of events). Tool functions may still be ``async def``.
    """
    settings = RunOptions(**options)
    runner = _runner()
    result = runner.run(ToolLoop(ai, model, inputs, settings).run())
    if isinstance(result, ToolRunStream):
        return ToolRunSyncStream(result, runner)
    return result


_END = object()


async def _next_event(stream: ToolRunStream) -> Any:
    # A coroutine that returns a sentinel: StopAsyncIteration must not cross Runner.run.
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _END


class ToolRunSyncStream:
    """:class:`ToolRunStream` as a plain iterator; ``messages`` and ``total_usage`` as there."""

    def __init__(self, stream: ToolRunStream, runner: asyncio.Runner) -> None:
        self._stream = stream
        self._runner: asyncio.Runner | None = runner

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._stream.messages

    @property
    def total_usage(self) -> dict[str, int]:
        return self._stream.total_usage

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._runner is None:
            raise StopIteration
        try:
            event = self._runner.run(_next_event(self._stream))
        except BaseException:
            self.close()
            raise
        if event is _END:
            self._runner = None
            raise StopIteration
        return event

    def close(self) -> None:
        """Stop reading early and release the model's stream."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.run(self._stream.aclose())

    def __enter__(self) -> ToolRunSyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
