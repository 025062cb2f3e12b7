"""Loopback stand-in servers for every test folder: the one copy of the plumbing (a sibling of
``conftest.py``, like ``seed_testing.py``, so importable from every test folder).

- :class:`HttpStandIn`: a plain HTTP server on 127.0.0.1 (an OS-chosen port, a daemon thread) whose
  ``respond(handler)`` answers every request, whatever the method; it records each request's path.
- :func:`same_answer`: the ``respond`` of a stand-in that is there to record; :class:`Listener` is one
  (its ``hits`` are the proof of a fetch, if one happens).
- :class:`UvicornThread`: an ASGI app under uvicorn on its own thread and event loop, as a deployment runs it.
- :func:`started_for_the_test`: the fixture body that starts servers for a test and stops them after it.
- :func:`free_port` and :class:`ServerProcess`: a real server (vLLM, llama.cpp's servers, ``toolrun serve``)
  as a subprocess of the tests, in its own process group, healthy before the test goes on.
- :class:`LlamaServer`: llama.cpp's C++ ``llama-server`` on one GGUF, as ``bench/llama_server.py`` builds it.
- :class:`ForwardingProxy`: a reverse proxy on 127.0.0.1 in front of a real server, recording each request
  and answering any of them itself where the test says so (a 429/503 burst, a count per upstream).
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

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
        #: uvicorn's exit status when its startup failed (it calls sys.exit on its thread).
        self.exit_status: object = None
        self.thread = threading.Thread(target=self._serve, name="test-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30  # hang guard: starting takes milliseconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start (uvicorn's exit status: {self.exit_status})")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit as exit_:  # a startup that failed, which some tests want: __init__ reports it
            self.exit_status = exit_.code

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


def free_port() -> int:
    """A port nothing listens on now (the OS's choice; a server started right after takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server on 127.0.0.1 as a subprocess of the tests: started, killed, restarted on one port.

    Subclasses give :meth:`command` (and may change the class settings). The process gets its own process
    group (``start_new_session``), so a server that forks workers (vLLM's engine core) goes as one, and its
    output goes to a file: a pipe nobody reads fills up and blocks the server.
    """

    #: Names the server in errors and its log file.
    name = "server"
    #: GET here answers 200 once the server is ready.
    health_path = "/health"
    #: Hang guards, at least 10x the normal times; subclasses set their own.
    health_timeout_s = 180.0
    stop_timeout_s = 20.0
    #: Extra environment variables, and the working directory (None: the tests').
    env: Mapping[str, str] = {}
    cwd: str | None = None

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        #: The server's root, ``http://127.0.0.1:PORT``.
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)  # noqa: SIM115

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> Self:
        """Start it and wait until it is healthy; returns ``self``."""
        self.process = subprocess.Popen(
            list(self.command()),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env={**os.environ, **self.env} if self.env else None,
            start_new_session=True,
        )
        timeout = self.health_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.root + self.health_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash would: connections cut, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            return f.read()[-chars:]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


_BENCH_LLAMA_SERVER = Path(__file__).resolve().parents[1] / "bench" / "llama_server.py"


def cached_llama_server() -> Path | None:
    """llama.cpp's ``llama-server`` as ``bench/llama_server.py`` builds and caches it (from the llama.cpp that
    llama-cpp-python vendors); None until it is built (a long build on 2 cores: the tests skip meanwhile)."""
    spec = importlib.util.spec_from_file_location("bench_llama_server", _BENCH_LLAMA_SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    binary = Path(module.cache_dir(version("llama-cpp-python"))) / "llama-server"
    return binary if binary.is_file() else None


class LlamaServer(ServerProcess):
    """The C++ ``llama-server`` (``binary``) serving one GGUF on 127.0.0.1, one slot, as a subprocess."""

    name = "llama-server"

    def __init__(self, binary: Path, gguf: str, *, extra: Sequence[str] = ()) -> None:
        super().__init__()
        self.binary = binary
        self.gguf = gguf
        self.extra = list(extra)

    def command(self) -> Sequence[str]:
        return [str(self.binary), "--model", self.gguf, "--host", "127.0.0.1", "--port", str(self.port),
                "--ctx-size", "4096", "--parallel", "1", "--threads", "2", "--no-webui", *self.extra]  # fmt: skip


#: Answers a request itself (its number among those seen, from 0, and the request), or None to forward it.
Intercept = Callable[[int, Request], Response | None]
#: Hop-by-hop headers, and those httpx and starlette set again for the forwarded message.
_NOT_FORWARDED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})


class ForwardingProxy:
    """A reverse proxy on 127.0.0.1 in front of ``target`` (a real server's root): every request's path is
    recorded in ``paths`` (and each POST in ``posts``); ``intercept`` may answer one itself. Answers are
    streamed through as they come; a target that cannot be reached is a 502, as nginx in front of it says.
    """

    def __init__(self, target: str, intercept: Intercept | None = None) -> None:
        self.target = target.rstrip("/")
        self.paths: list[str] = []
        self.posts = 0
        self._lock = threading.Lock()
        self._intercept = intercept
        self._server = UvicornThread(Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])]))
        self._server.force_exit = True  # stopping cuts open streams, as an upstream going away does
        self.port = self._server.port
        self.root = self._server.url

    async def _handle(self, request: Request) -> Response:
        with self._lock:
            n = len(self.paths)
            self.paths.append(request.url.path)
            self.posts += request.method == "POST"
        if self._intercept is not None:
            answer = self._intercept(n, request)
            if answer is not None:
                return answer
        client = httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=5.0))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        url = self.target + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            forwarded = client.build_request(request.method, url, headers=headers, content=await request.body())
            answer_ = await client.send(forwarded, stream=True)
        except httpx.TransportError as exc:
            await client.aclose()
            return Response(f"proxy: {self.target} cannot be reached ({type(exc).__name__})", status_code=502)
        kept = {k: v for k, v in answer_.headers.items() if k.lower() not in _NOT_FORWARDED | {"content-encoding"}}

        async def close() -> None:
            await answer_.aclose()
            await client.aclose()

        return StreamingResponse(
            answer_.aiter_bytes(), status_code=answer_.status_code, headers=kept, background=BackgroundTask(close)
        )

    def stop(self) -> None:
        self._server.stop()
