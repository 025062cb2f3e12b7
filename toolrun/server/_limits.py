"""Admission control and request-body limits.

The local engine decodes one request at a time; anything beyond that waits in
its FIFO. Left unbounded, a burst would queue for minutes and clients would
time out against a server that looks hung. So the server admits at most
``max_queue`` requests per model (running plus waiting) and answers the rest
with 429 and a ``Retry-After`` estimated from how long recent requests took.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from .._errors import OverloadedError
from ._errors import InvalidJSONError, PayloadTooLargeError


@dataclass
class _ModelQueue:
    in_flight: int = 0
    #: Exponentially weighted mean of how long an admitted request held its slot.
    mean_service_s: float = 1.0
    completed: int = 0


class Ticket:
    """One admitted request's slot; ``release`` is idempotent so every exit path may call it."""

    __slots__ = ("_ahead", "_control", "_released", "_started", "model")

    def __init__(self, control: AdmissionControl, model: str, ahead: int) -> None:
        self._control = control
        self.model = model
        self._ahead = ahead
        self._started = time.perf_counter()
        self._released = False

    @property
    def held_seconds(self) -> float:
        return time.perf_counter() - self._started

    def release(self) -> None:
        if not self._released:
            self._released = True
            # The slot was held through the wait behind ``ahead`` others plus the run itself.
            self._control._release(self.model, (time.perf_counter() - self._started) / (self._ahead + 1))


@dataclass
class AdmissionControl:
    max_queue: int
    on_change: Callable[[str, int], None] = lambda model, depth: None
    _queues: dict[str, _ModelQueue] = field(default_factory=dict)

    def admit(self, model: str) -> Ticket:
        """A slot for ``model`` or :class:`OverloadedError`. Synchronous: no await between check and take."""
        queue = self._queues.setdefault(model, _ModelQueue())
        if queue.in_flight >= self.max_queue:
            raise OverloadedError(
                f"model {model!r} already has {queue.in_flight} requests running or queued "
                f"(this server's limit is {self.max_queue}); retry later",
                retry_after=self.retry_after(model),
            )
        ticket = Ticket(self, model, ahead=queue.in_flight)
        queue.in_flight += 1
        self.on_change(model, queue.in_flight)
        return ticket

    def retry_after(self, model: str) -> float:
        """Seconds until a slot is likely free: one mean service time, at least 1 s, at most 60 s."""
        queue = self._queues.get(model)
        if queue is None:
            return 1.0
        return float(min(60, max(1, math.ceil(queue.mean_service_s))))

    def depth(self, model: str) -> int:
        queue = self._queues.get(model)
        return queue.in_flight if queue else 0

    def _release(self, model: str, service_s: float) -> None:
        queue = self._queues[model]
        queue.in_flight -= 1
        queue.completed += 1
        alpha = 0.2
        queue.mean_service_s = (1 - alpha) * queue.mean_service_s + alpha * service_s
        self.on_change(model, queue.in_flight)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing bodies over ``max_bytes`` before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(
            f"the request body is {int(declared)} bytes; this server accepts at most {max_bytes}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # chunked uploads declare no length: count as they arrive
            raise PayloadTooLargeError(f"the request body exceeds this server's limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise InvalidJSONError("the request body is empty; send a JSON object")
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidJSONError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJSONError("the request body is nested too deeply to be a real request") from None
    except ValueError as exc:  # an integer of more than 4300 digits, and the like
        raise InvalidJSONError(f"the request body holds a value Python cannot read: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJSONError(f"the request body must be a JSON object, not {type(value).__name__}")
    return value
