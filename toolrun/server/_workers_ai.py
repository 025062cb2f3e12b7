"""Cloudflare's Workers AI REST API: ``/client/v4/accounts/{account_id}/ai/...``.

The body of ``ai/run/{model}`` is the model's inputs, exactly what
``env.AI.run(model, inputs)`` takes, so it goes to the binding unchanged
(apart from the server's ``max_tokens`` cap). The account id is accepted and
ignored: there is one "account" per server.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import InvalidInputError
from .._wire import Event, workers_ai_event
from ._endpoint import endpoint
from ._errors import cloudflare_error, cloudflare_error_body
from ._state import ServerState
from ._streaming import EventStreamResponse, event_frames, sse_frame

API = "workers_ai"
PREFIX = "/client/v4/accounts/{account_id}/ai"


def envelope(result: Any, **extra: Any) -> dict[str, Any]:
    return {"result": result, "success": True, "errors": [], "messages": [], **extra}


@endpoint(API, "run", cloudflare_error)
async def run_model(request: Request, state: ServerState) -> Response:
    model = request.path_params["model"]
    inputs = await state.read_body(request)
    state.cap_max_tokens(inputs)
    result, ticket = await state.run(request, model, inputs)
    if isinstance(result, dict):
        return JSONResponse(envelope(result))
    frames = event_frames(
        result,
        _frames,
        on_usage=lambda used: state.metrics.observe_usage(ticket.model, used, ticket.held_seconds),
        error_body=cloudflare_error_body,
    )
    return EventStreamResponse(frames, on_finish=lambda _: ticket.release())


def _frames(event: Event) -> list[bytes]:
    """Workers AI's SSE: one ``data: {"response": ...}`` per event."""
    payload = workers_ai_event(event)
    return [] if payload is None else [sse_frame(json.dumps(payload, ensure_ascii=False))]


# ------------------------------------------------------------------ models


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInputError(f"{name} must be true or false, not {raw!r}", where=name)


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be an integer, not {raw!r}", where=name) from None
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, not {value}", where=name)
    return value


def cloudflare_model(entry: Any, ready: bool) -> dict[str, Any]:
    """A catalog entry in Cloudflare's model-search shape, with a stable id derived from the name.

    ``ready`` is toolrun's addition: the model answers without a download (a remote entry, or weights here).
    """
    model: dict[str, Any] = {**entry.as_dict(), "ready": ready}
    model["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "toolrun:" + entry.name))
    model["task"] = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "toolrun-task:" + entry.task)), **model["task"]}
    model.setdefault("tags", [])
    return model


@endpoint(API, "models_search", cloudflare_error)
async def search_models(request: Request, state: ServerState) -> Response:
    """``GET .../ai/models/search?search=&task=&function_calling=&page=&per_page=``.

    ``function_calling`` is toolrun's addition: Cloudflare's API has no query
    parameter for it, only the property on each model.
    """
    found = state.ai.catalog.search(
        request.query_params.get("search") or None,
        task=request.query_params.get("task") or None,
        function_calling=_bool_param(request, "function_calling"),
    )
    page = _int_param(request, "page", 1, low=1, high=10_000)
    per_page = _int_param(request, "per_page", 50, low=1, high=1000)
    window = found[(page - 1) * per_page : page * per_page]
    return JSONResponse(
        envelope(
            [cloudflare_model(e, state.ai.ready(e.name)) for e in window],
            result_info={"page": page, "per_page": per_page, "count": len(window), "total_count": len(found)},
        )
    )


def routes() -> list[Route]:
    return [
        Route(PREFIX + "/run/{model:path}", run_model, methods=["POST"]),
        Route(PREFIX + "/models/search", search_models, methods=["GET"]),
    ]
