"""The playground: a page at ``/playground`` where a person pastes tools, chats, and watches the calls stream.

The page is static (``static/``: HTML, CSS and JavaScript, no build step, nothing
from a CDN) and talks to the server's own ``POST /v1/chat/completions``. Two
small JSON routes serve it: ``settings`` (the default model, and whether the
page must ask for an API key) and ``openapi``, which turns an OpenAPI
document's text into tools with the same converter ``run_with_tools`` uses.
That route only ever reads the text it is sent: a URL is the browser's to
fetch (the page does, with ``fetch``), never the server's because a request
named it, and a one-line text is not taken for a file path.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .._errors import InvalidInputError
from ..ai import DEFAULT_MODEL
from ._endpoint import endpoint
from ._errors import openai_error
from ._state import ServerState

API = "playground"
STATIC = Path(__file__).parent / "static"
_URL = re.compile(r"^\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)

#: The page loads only its own files; it may fetch an OpenAPI document from any http(s) URL the user types
#: (the browser's request, under CORS), and no other site may frame it.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self' http: https:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _root(request: Request) -> Response:
    return RedirectResponse("/playground", status_code=307)


async def _page(request: Request) -> Response:
    # Unauthenticated, like /health: the page holds no data; what it asks for goes through the API's auth.
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


async def _settings(request: Request) -> Response:
    state: ServerState = request.app.state.toolrun
    catalog = state.ai.catalog
    default = DEFAULT_MODEL if DEFAULT_MODEL in catalog else next((e.name for e in catalog), None)
    return JSONResponse({"default_model": default, "api_key_required": bool(state.config.api_keys)})


@endpoint(API, "openapi", openai_error)
async def openapi_tools(request: Request, state: ServerState) -> Response:
    """``{"document": "<OpenAPI JSON or YAML text>"}`` → ``{"tools": [{name, description, parameters}]}``."""
    body = await state.read_body(request)
    document = body.get("document")
    if not isinstance(document, str) or not document.strip():
        raise InvalidInputError("'document' must be the OpenAPI document's text (JSON or YAML)", where="document")
    if _URL.match(document) and "\n" not in document.strip():
        raise InvalidInputError(
            "the server does not fetch URLs a request names; send the document's text "
            "(the playground fetches a URL from your browser)",
            where="document",
        )
    # Parsing a large document is CPU work: off the event loop, so other requests keep streaming.
    tools = await anyio.to_thread.run_sync(_convert, document.encode())
    return JSONResponse({"tools": tools})


def _convert(document: bytes) -> list[dict[str, Any]]:
    # Imported here: the converter pulls in the tools package (and its MCP client), which only this route needs.
    from ..tools.openapi import create_tools_from_openapi_spec

    # Bytes are always the document itself: never a URL to fetch or a path to read.
    tools = asyncio.run(create_tools_from_openapi_spec(document))
    return [{"name": t.name, "description": t.description, "parameters": dict(t.parameters)} for t in tools]


def routes() -> list[BaseRoute]:
    return [
        Route("/", _root, methods=["GET"]),
        Route("/playground", _page, methods=["GET"]),
        Route("/playground/settings", _settings, methods=["GET"]),
        Route("/playground/openapi", openapi_tools, methods=["POST"]),
        Mount("/playground/static", StaticFiles(directory=STATIC), name="playground-static"),
    ]
