"""Loopback stand-in servers for every test folder: the one copy of the plumbing (a sibling of
``conftest.py``, like ``seed_testing.py``, so importable from every test folder).

- :class:`HttpStandIn`: a plain HTTP server on 127.0.0.1 (an OS-chosen port, a daemon thread) whose
  ``respond(handler)`` answers every request, whatever the method; it records each request's path.
- :func:`same_answer`: the ``respond`` of a stand-in that is there to record; :class:`Listener` is one
  (its ``hits`` are the proof of a fetch, if one happens).
- :class:`UvicornThread`: an ASGI app under uvicorn on its own thread and event loop, as a deployment runs it.
- :func:`started_for_the_test`: the fixture body that starts servers for a test and stops them after it.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import uvicorn

Respond = Callable[[http.server.BaseHTTPRequestHandler], None]
P = ParamSpec("P")
S = TypeVar("S")


def send(
    handler: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """One whole answer with its Content-Length (no body where the status or HEAD forbids one)."""
    if status in (204, 304):
        body = b""  # these statuses have no body; sending one breaks the connection's next answer
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class HttpStandIn:
    """``respond(handler)`` answers every request on 127.0.0.1; ``paths`` records what was asked, in order.

    ``keep_alive`` speaks HTTP/1.1 (the answer must then carry its length: use :func:`send`).
    """

    def __init__(self, respond: Respond, *, keep_alive: bool = False) -> None:
        self.paths: list[str] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def _handle(self) -> None:
                stand_in.paths.append(self.path)
                respond(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (the timeout tests) is expected, not news

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, name="test-stand-in", daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HttpStandIn:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def same_answer(status: int = 200, body: bytes = b'{"type": "string"}') -> Respond:
    """Every request gets this answer (by default a small JSON Schema): for a stand-in that is there to
    record, as proof of a fetch if one happens."""
    return lambda handler: send(handler, status, body)


class UvicornThread:
    """An ASGI app under uvicorn on its own thread and event loop, on 127.0.0.1.

    ``config`` replaces the plain one (``toolrun serve``'s own, for the server tests);
    ``force_exit`` makes :meth:`stop` cut open connections instead of waiting for them.
    """

    force_exit = False

    def __init__(self, app: Any = None, port: int = 0, *, config: uvicorn.Config | None = None) -> None:
        config = config or uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30  # hang guard: starting takes milliseconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = self.force_exit
        self.thread.join(timeout=30)


def started_for_the_test(start: Callable[P, S], stop: Callable[[S], None]) -> Iterator[Callable[P, S]]:
    """The body of a fixture (``yield from``): ``start`` for the test to call, each server it started
    stopped after the test, in order."""
    started: list[S] = []

    def start_one(*args: P.args, **kwargs: P.kwargs) -> S:
        server = start(*args, **kwargs)
        started.append(server)
        return server

    yield start_one
    for server in started:
        stop(server)


#: A GitHub-like ``GET /users/{name}`` body for the users the stand-ins know.
GITHUB_USERS: dict[str, dict[str, Any]] = {
    "cloudflare": {
        "login": "cloudflare",
        "id": 314135,
        "type": "Organization",
        "name": "Cloudflare",
        "location": "San Francisco",
        "public_repos": 513,
        "followers": 9400,
        "blog": "https://www.cloudflare.com",
    },
    "torvalds": {
        "login": "torvalds",
        "id": 1024025,
        "type": "User",
        "name": "Linus Torvalds",
        "location": "Portland, OR",
        "public_repos": 8,
        "followers": 250000,
    },
}


class Listener(HttpStandIn):
    """A stand-in that records every request (``hits``): proof of a fetch, if one happens."""

    def __init__(self, status: int = 200, body: bytes = b'{"type": "string"}') -> None:
        super().__init__(same_answer(status, body))
        self.hits = self.paths
