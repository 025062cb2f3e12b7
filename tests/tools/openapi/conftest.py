"""Fixtures for the OpenAPI tests: the example corpus, GitHub's description, loopback API servers."""

from __future__ import annotations

import functools
import gzip
import json
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
from _servers import GITHUB_USERS, HttpStandIn, send

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oas-examples")
    with tarfile.open(FIXTURES / "oas-examples-8.2.2.tgz") as tar:
        tar.extractall(out, filter="data")
    return out / "package"


@pytest.fixture(scope="session")
def corpus_files(corpus_dir: Path) -> list[Path]:
    files = sorted(
        p for v in ("2.0", "3.0", "3.1") for p in (corpus_dir / v).rglob("*") if p.suffix in (".json", ".yaml")
    )
    assert len(files) == 129  # what @readme/oas-examples 8.2.2 ships
    return files


@pytest.fixture(scope="session")
def github_spec() -> bytes:
    return gzip.decompress((FIXTURES / "api.github.com.json.gz").read_bytes())


# ------------------------------------------------------------------ servers


class ApiServer:
    """A loopback HTTP server standing in for an API; it records every request.

    Routes (any method):
      /echo/...              200, JSON of what it got (method, raw path, query, headers, body)
      /status/CODE           that status, a JSON body
      /redirect?to=U&code=C  a redirect to U (default 302)
      /big?n=N               N bytes of text
      /slow?s=S              answers after S seconds
      /drip?n=N&s=S          headers at once, then N bytes one per S seconds
      /users/NAME            a GitHub-like user (cloudflare, torvalds) or 404
      /gzip-bomb?mb=N        N MB of zeros, gzip-compressed (about 1 KB per MB on the wire)
      /encoded?as=E          a body said to be in Content-Encoding E
      /answer?code=C&type=T&body=B&times=N   status C, Content-Type T, B repeated N times
      /spec.json, /spec.yaml the document set with ``serve_spec``
    """

    # The OpenAPI tests were written against this one location; the stand-in of tests/conftest.py says
    # "San Francisco" (a real model reads both answers: their greedy outputs stay as they were).
    USERS: ClassVar[dict[str, dict[str, Any]]] = {
        **GITHUB_USERS,
        "cloudflare": {**GITHUB_USERS["cloudflare"], "location": "San Francisco, CA"},
    }

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.specs: dict[str, tuple[bytes, str]] = {}
        self._stand_in = HttpStandIn(self._handle, keep_alive=True)
        self.port = self._stand_in.port
        self.url = self._stand_in.url

    def _handle(self, handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        record = {
            "method": handler.command,
            "raw_path": split.path,
            "raw_query": split.query,
            "query": parse_qsl(split.query, keep_blank_values=True),
            "headers": {k.lower(): v for k, v in handler.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.requests.append(record)
        self.route(handler, split.path, dict(parse_qsl(split.query)), record)

    def serve_spec(self, name: str, content: bytes | str, content_type: str = "application/json") -> str:
        self.specs[name] = (content.encode() if isinstance(content, str) else content, content_type)
        return f"{self.url}/{name}"

    send = staticmethod(send)

    def route(self, h: Any, path: str, q: dict[str, str], record: dict[str, Any]) -> None:
        if path.startswith("/echo"):
            self.send(h, 200, json.dumps(record).encode())
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self.send(h, code, json.dumps({"message": f"status {code}"}).encode())
        elif path.startswith("/redirect"):
            self.send(h, int(q.get("code", 302)), b"", headers={"Location": q.get("to", "/redirect")})
        elif path.startswith("/big"):
            self.send(h, 200, ("é" + "x" * (int(q["n"]) - 2)).encode(), "text/plain; charset=utf-8")
        elif path.startswith("/slow"):
            time.sleep(float(q["s"]))
            self.send(h, 200, b'{"slow": true}')
        elif path.startswith("/drip"):
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", q["n"])
            h.end_headers()
            try:
                for _ in range(int(q["n"])):
                    h.wfile.write(b"x")
                    h.wfile.flush()
                    time.sleep(float(q["s"]))
            except OSError:
                pass
        elif path.startswith("/users/"):
            user = self.USERS.get(path.split("/")[2].lower())
            self.send(h, 200 if user else 404, json.dumps(user or {"message": "Not Found"}).encode())
        elif path.startswith("/gzip-bomb"):
            self.send(
                h, 200, _zeros_gzip(int(q.get("mb", 200))), "application/json", headers={"Content-Encoding": "gzip"}
            )
        elif path.startswith("/answer"):
            self.send(
                h,
                int(q.get("code", 200)),
                q.get("body", "").encode("latin-1") * int(q.get("times", 1)),
                q.get("type", "application/json"),
            )
        elif path.startswith("/encoded"):
            self.send(h, 200, b"\x00not really encoded", "text/plain", headers={"Content-Encoding": q["as"]})
        elif path.lstrip("/") in self.specs:
            content, kind = self.specs[path.lstrip("/")]
            self.send(h, 200, content, kind)
        else:
            self.send(h, 404, b'{"message": "no such route"}')

    def close(self) -> None:
        self._stand_in.close()


@functools.lru_cache(maxsize=4)
def _zeros_gzip(mb: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)  # gzip, a megabyte at a time
    megabyte = b"\0" * (1 << 20)
    return b"".join([*(packer.compress(megabyte) for _ in range(mb)), packer.flush()])


@pytest.fixture(scope="session")
def api_server():
    server = ApiServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def other_server():
    """A second origin (another port): requests must never reach it."""
    server = ApiServer()
    yield server
    server.close()


@pytest.fixture
def api(api_server: ApiServer) -> ApiServer:
    api_server.requests.clear()
    return api_server


@pytest.fixture
def other(other_server: ApiServer) -> ApiServer:
    other_server.requests.clear()
    return other_server
