"""``toolrun serve``: the AI binding over HTTP, in Workers AI's, OpenAI's and Anthropic's dialects.

>>> from toolrun.server import create_app
>>> app = create_app(api_keys=["secret"])          # any ASGI server can run it
>>> # or: toolrun serve --host 0.0.0.0 --api-key secret

Endpoints
  POST /client/v4/accounts/{account_id}/ai/run/{model}        Workers AI REST (``stream`` → SSE)
  GET  /client/v4/accounts/{account_id}/ai/models/search      Cloudflare's model search (+ ``function_calling``)
  POST /client/v4/accounts/{account_id}/ai/v1/chat/completions
  POST /v1/chat/completions                                   OpenAI Chat Completions (tools, streaming)
  POST /v1/responses                                          OpenAI Responses (stateless; tools, streaming)
  POST /v1/messages, /v1/messages/count_tokens                Anthropic Messages (tools, streaming; x-api-key)
  GET  /v1/models, /v1/models/{model}
  GET  /health, /metrics (Prometheus text)

Every endpoint is a thin adapter over :class:`toolrun.AsyncAI`: the binding
validates and runs; the server adds auth, limits and the wire formats.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import InvalidInputError, ToolrunError
from ..ai import AsyncAI
from . import _anthropic, _openai, _playground, _responses, _workers_ai
from ._auth import is_loopback
from ._browser import BrowserGuard
from ._config import ServerConfig, read_server_section
from ._errors import MethodNotAllowedError, RouteNotFoundError, error_renderer
from ._malloc import ReleaseAfterLargeBodies, limit_malloc_arenas
from ._state import ServerState

log = logging.getLogger("toolrun.server")

DEFAULT_PORT = 8787  # wrangler dev's port: where Workers developers expect a local AI


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: ToolrunError
    if exc.status_code == 405:
        error = MethodNotAllowedError(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = RouteNotFoundError(f"no endpoint at {request.method} {request.url.path}")
    return error_renderer(request.url.path)(error)


async def _metrics(request: Request) -> Response:
    # Unauthenticated, like vLLM's and llama-server's: Prometheus scrapers rarely carry an API key,
    # and the page holds counts, latencies and model names — never a prompt or an answer.
    state: ServerState = request.app.state.toolrun
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


async def _health(request: Request) -> Response:
    # Unauthenticated on purpose (load balancers, `curl` in a shell): it reveals no model output.
    state: ServerState = request.app.state.toolrun
    queues = {model: state.admission.depth(model) for model in state.admission._queues}
    return JSONResponse(
        {
            "status": "ok",
            "uptime_s": round(time.time() - state.started_at, 3),
            "max_queue": state.config.max_queue,
            "queue_depth": queues,
        }
    )


def create_app(
    ai: AsyncAI | None = None,
    *,
    api_keys: Iterable[str] = (),
    max_queue: int = ServerConfig.max_queue,
    max_body_bytes: int = ServerConfig.max_body_bytes,
    max_tokens_cap: int = ServerConfig.max_tokens_cap,
    preload: Iterable[str] = (),
    allow_download: bool = ServerConfig.allow_download,
    cors_origins: Iterable[str] = (),
    header_timeout: float = ServerConfig.header_timeout,
    body_timeout: float = ServerConfig.body_timeout,
    keepalive_interval: float = ServerConfig.keepalive_interval,
) -> Starlette:
    """The ASGI app. ``ai`` defaults to a new :class:`AsyncAI` that the app closes on shutdown.

    Without ``api_keys`` the app answers only loopback clients, addressed by a
    loopback name, and no other origin's web page (unless ``cors_origins``
    names it). ``preload`` names models to load at startup, downloading their
    weights if needed, so the first request does not pay for it; a request
    loads only weights that are here, unless ``allow_download``.
    ``header_timeout`` and ``body_timeout`` apply under :func:`uvicorn_config`;
    a stream silent for ``keepalive_interval`` seconds gets an SSE comment.
    """
    owns_ai = ai is None
    binding = ai if ai is not None else AsyncAI()
    config = ServerConfig(
        api_keys=tuple(k for k in api_keys if k),
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        max_tokens_cap=max_tokens_cap,
        allow_download=allow_download,
        cors_origins=tuple(cors_origins),
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keepalive_interval=keepalive_interval,
    )
    state = ServerState(binding, config)
    to_preload = list(preload)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for model in to_preload:
            started = time.perf_counter()
            await binding.engine(model, download=True)  # the operator named it: fetching is theirs to allow
            log.info("loaded %s in %.1f s", model, time.perf_counter() - started)
        try:
            yield
        finally:
            if owns_ai:
                await binding.aclose()

    routes: list[Any] = [
        *_workers_ai.routes(),
        *_openai.routes(),
        *_responses.routes(),  # OpenAI's Responses API (stateless)
        *_anthropic.routes(),  # Anthropic's Messages API
        *_playground.routes(),  # the page at /playground, and / redirecting there
        Route("/health", _health, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
    ]
    middleware = [
        Middleware(ReleaseAfterLargeBodies),
        Middleware(BrowserGuard, keyless=not config.api_keys, cors_origins=config.cors_origins),
    ]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["*"],  # the SDKs send their own x-stainless-* headers besides Authorization
                max_age=600,
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.toolrun = state
    return app


def uvicorn_config(
    app: Starlette, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "info"
) -> Any:
    """How toolrun runs an app under uvicorn: its h11 protocol, with malformed requests answered in JSON
    and deadlines for reading a request (the app's ``header_timeout`` and ``body_timeout``)."""
    import uvicorn

    from ._http import EnvelopeH11Protocol

    state: ServerState | None = getattr(app.state, "toolrun", None)
    config = state.config if state is not None else ServerConfig()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http=EnvelopeH11Protocol.with_timeouts(config.header_timeout, config.body_timeout),
        timeout_graceful_shutdown=5,
    )


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    ai: AsyncAI | None = None,
    api_keys: Iterable[str] = (),
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Run the server with uvicorn until interrupted. Refuses a non-loopback host without API keys."""
    import uvicorn

    keys = list(api_keys)
    if any(not k.strip() for k in keys):
        raise InvalidInputError("an API key must not be empty", where="api_keys")
    if not is_loopback(host) and not keys:
        raise InvalidInputError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could use it. "
            "Pass --api-key (or set TOOLRUN_API_KEYS), or listen on 127.0.0.1",
            where="host",
        )
    limit_malloc_arenas()  # before the server's threads exist (see ._malloc)
    app = create_app(ai, api_keys=keys, **app_options)
    uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level)).run()


__all__ = [
    "DEFAULT_PORT",
    "ServerConfig",
    "create_app",
    "is_loopback",
    "read_server_section",
    "serve",
    "uvicorn_config",
]
