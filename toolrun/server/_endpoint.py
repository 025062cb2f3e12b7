"""The wrapper every endpoint shares: auth, errors rendered in the API's dialect, request metrics."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from .._errors import ToolrunError
from ._errors import as_toolrun_error
from ._state import ServerState
from ._streaming import ClientDisconnected, EventStreamResponse

log = logging.getLogger("toolrun.server")

ErrorRenderer = Callable[[ToolrunError], Response]
Handler = Callable[[Request, ServerState], Awaitable[Response]]


def endpoint(
    api: str, name: str, render_error: ErrorRenderer
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with auth, error rendering in the API's dialect, and request metrics."""

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
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
            except Exception as exc:
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
