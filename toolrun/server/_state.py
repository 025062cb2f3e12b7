"""What every endpoint shares: the binding, auth, the limits and the metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, NamedTuple

from starlette.requests import Request

from .._errors import InvalidInputError, ModelFetchError, ModelUnavailableError, OverloadedError
from .._wire import Event, RunResult
from ..ai import AsyncAI, RunInputs, parse_inputs
from ._auth import Authenticator
from ._config import ServerConfig
from ._limits import AdmissionControl, Ticket, read_json_object
from ._metrics import Metrics
from ._streaming import run_unless_disconnected, stream_unless_disconnected

log = logging.getLogger("toolrun.server")


class Admitted(NamedTuple):
    """A request the server admitted and ran: the whole result (its slot already released), or the events
    of a stream, which hold the slot until the caller releases ``ticket``."""

    result: RunResult | AsyncGenerator[Event, None]
    ticket: Ticket


class ServerState:
    def __init__(self, ai: AsyncAI, config: ServerConfig) -> None:
        self.ai = ai
        self.config = config
        self.metrics = Metrics()
        self.metrics.watch_engines(ai.loaded_engines)
        self.admission = AdmissionControl(
            config.max_queue, on_change=lambda model, depth: self.metrics.queue_depth.labels(model).set(depth)
        )
        self.started_at = time.time()
        self.authenticator = Authenticator(config.api_keys)

    def authenticate(self, request: Request) -> None:
        self.authenticator.check(request)

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

    async def run(self, request: Request, model: str, inputs: dict[str, Any]) -> Admitted:
        """Admit, then hand the binding the checked inputs (a :class:`RunInputs`); the caller owns the
        returned ticket (release it when done).

        Non-streaming: the result with the slot already released.
        Streaming: the binding's event generator with the slot still held.
        """
        name = self.ai.catalog.get(model).name  # unknown model: 404 before taking a slot
        try:
            ticket = self.admission.admit(name)
        except OverloadedError:
            self.metrics.rejected.labels(name).inc()
            raise
        try:
            await self.load(name)
            parsed = parse_inputs(inputs)
            result: RunResult | AsyncGenerator[Event, None]
            if parsed.stream:  # a slow first event starts the response anyway, to keep it alive meanwhile
                result = await stream_unless_disconnected(
                    request, self.ai.run(name, parsed), self.config.keepalive_interval
                )
            else:
                result = await run_unless_disconnected(request, self.ai.run(name, parsed))
        except BaseException:
            ticket.release()
            raise
        if isinstance(result, dict):
            ticket.release()
            self.metrics.observe_usage(name, result["usage"], ticket.held_seconds)
        return Admitted(result, ticket)

    async def load(self, name: str) -> None:
        """Load the model from weights already on this machine; download them only if the operator allowed it.

        The error says what the client can know: never the index's URL or a local path (those go to the log).
        """
        try:
            await self.ai.engine(name, download=self.config.allow_download)
        except ModelUnavailableError as exc:
            log.warning("cannot load %s: %s", name, exc)
            if isinstance(exc, ModelFetchError):
                raise ModelFetchError(
                    f"{name}: downloading its weights failed; the server's log has the details"
                ) from None
            if self.ai.catalog.get(name).remote is None:
                message = (
                    f"the weights of {name} are not on this server, and a request cannot make it download them; "
                    f"its operator can run `toolrun pull {name}`, or start the server with --model {name} "
                    "or --allow-download"
                )
            else:
                message = f"{name} cannot be reached from this server; the server's log has the details"
            raise ModelUnavailableError(message) from None
