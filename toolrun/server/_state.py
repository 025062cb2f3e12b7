"""What every endpoint shares: the binding, the limits, the metrics, and the request wrapper."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import time
from typing import Any, Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from .._errors import InvalidInputError, OverloadedError, ToolrunError
from ..ai import AsyncAI, RunInputs
from ._config import ServerConfig
from ._errors import AuthenticationError, as_toolrun_error
from ._limits import AdmissionControl, Ticket, read_json_object
from ._metrics import Metrics
from ._streaming import ClientDisconnected, EventStreamResponse, run_unless_disconnected

log = logging.getLogger("toolrun.server")

ErrorRenderer = Callable[[ToolrunError], Response]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerState:
    def __init__(self, ai: AsyncAI, config: ServerConfig) -> None:
        self.ai = ai
        self.config = config
        self.metrics = Metrics()
        self.admission = AdmissionControl(
            config.max_queue, on_change=lambda model, depth: self.metrics.queue_depth.labels(model).set(depth)
        )
        self.started_at = time.time()
        self._keys = tuple(k.encode() for k in config.api_keys)

    # ---------------------------------------------------------------- auth

    def authenticate(self, request: Request) -> None:
        if not self._keys:
            # Without keys the server must not be an open relay: answer loopback clients only,
            # even if someone mounts the app on 0.0.0.0 by hand.
            client = request.client.host if request.client else None
            if not is_loopback(client):
                raise AuthenticationError(
                    "this server has no API keys configured, so it only answers clients on this machine; "
                    "start it with --api-key to accept remote clients"
                )
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing API key: send the header 'Authorization: Bearer <key>'")
        given = token.strip().encode()
        # Compare against every key in constant time, so timing says nothing about which is close.
        if not any([hmac.compare_digest(given, key) for key in self._keys]):
            raise AuthenticationError("invalid API key")

    # ------------------------------------------------------------- inputs

    async def read_body(self, request: Request) -> dict[str, Any]:
        return await read_json_object(request, self.config.max_body_bytes)

    def cap_max_tokens(self, inputs: dict[str, Any], field: str = "max_tokens") -> None:
        """Refuse a ``max_tokens`` over the cap; when none is given, use min(binding default, cap)."""
        cap = self.config.max_tokens_cap
        value = inputs.get("max_tokens")
        if value is None:
            inputs.pop("max_tokens", None)  # null means "the default", as in OpenAI's API
            default = RunInputs.model_fields["max_tokens"].default
            if isinstance(default, int) and default > cap:
                inputs["max_tokens"] = cap
            return
        # Only an integer can be compared; anything else is the binding's to reject with its own message.
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise InvalidInputError(f"{field} is {value}, but this server allows at most {cap}", where=field)

    # ---------------------------------------------------------------- run

    async def run(self, request: Request, model: str, inputs: dict[str, Any]) -> tuple[Any, Ticket]:
        """Admit, then run on the binding; the caller owns the returned ticket (release it when done).

        Non-streaming: returns the result dict with the slot already released.
        Streaming: returns the binding's event iterator with the slot still held.
        """
        name = self.ai.catalog.get(model).name  # unknown model: 404 before taking a slot
        try:
            ticket = self.admission.admit(name)
        except OverloadedError:
            self.metrics.rejected.labels(name).inc()
            raise
        try:
            result = await run_unless_disconnected(request, self.ai.run(name, inputs))
        except BaseException:
            ticket.release()
            raise
        if isinstance(result, Mapping):
            ticket.release()
            self.metrics.observe_usage(name, result.get("usage"), ticket.held_seconds)
        return result, ticket


def endpoint(api: str, name: str, render_error: ErrorRenderer) -> Callable[..., Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with auth, error rendering in the API's dialect, and request metrics."""

    def decorate(handler: Callable[[Request, ServerState], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def route(request: Request) -> Response:
            state: ServerState = request.app.state.toolrun
            started = time.perf_counter()

            def record(status: int | str) -> None:
                state.metrics.requests.labels(api, name, str(status)).inc()
                state.metrics.latency.labels(api, name).observe(time.perf_counter() - started)

            try:
                state.authenticate(request)
                response = await handler(request, state)
            except ClientDisconnected:
                state.metrics.disconnects.labels(api).inc()
                record("disconnected")
                return Response(status_code=499)  # nobody is there to read it
            except Exception as exc:  # noqa: BLE001 - every failure becomes an answer in the API's shape
                error = as_toolrun_error(exc)
                if error is not exc:
                    log.exception("unexpected error in %s %s", request.method, request.url.path)
                elif error.status_code >= 500:
                    log.warning("%s %s: %s", request.method, request.url.path, error)
                response = render_error(error)
            if isinstance(response, EventStreamResponse):
                # A stream is measured when it ends, not when its headers go out.
                def record_stream(disconnected: bool) -> None:
                    if disconnected:
                        state.metrics.disconnects.labels(api).inc()
                    record("disconnected" if disconnected else response.status_code)

                response.add_finish_hook(record_stream)
            else:
                record(response.status_code)
            return response

        return route

    return decorate
