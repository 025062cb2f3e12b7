"""Hugging Face downloads through huggingface_hub, against a loopback stand-in of the hub's file API.

The stand-in answers what huggingface_hub asks (read in its ``file_download.py``): ``HEAD
/{repo}/resolve/{revision}/{filename}`` for the metadata (``X-Repo-Commit``, ``ETag``, the size), then
``GET`` on the same path, with ``Range: bytes=N-`` when it resumes a download that was cut.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _servers import HttpStandIn, send
from huggingface_hub import constants

from toolrun import ModelFetchError
from toolrun.ai import HuggingFaceFile
from toolrun.ai._catalog import BUILTIN_MODELS
from toolrun.ai._fetch import fetch_huggingface, hf_cached_path, hf_hub_cache

REPO = "someone/tiny-GGUF"
FILENAME = "tiny.Q4_K_M.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: Two and a half of huggingface_hub's read chunks: it resumes from the last whole chunk it wrote (a chunk cut
#: short is lost with the connection), so a cut past the first chunk leaves something to resume from.
CONTENT = b"GGUF" + bytes(range(256)) * (constants.DOWNLOAD_CHUNK_SIZE * 5 // 2 // 256)
DROPPED_AT = len(CONTENT) * 3 // 4
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()


@dataclass
class HubFileAPI:
    """Serves CONTENT at /{REPO}/resolve/{revision}/{FILENAME}; ``drop_first_get`` cuts the first GET halfway.

    ``requests`` records the file requests; huggingface_hub's other calls (its once-a-day telemetry registry,
    ``/api/agent-harnesses``) get a 404 and go to ``others``.
    """

    drop_first_get: bool = False
    requests: list[dict[str, str | None]] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    def gets(self) -> list[dict[str, str | None]]:
        return [r for r in self.requests if r["method"] == "GET"]

    def __call__(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if f"/{REPO}/resolve/" not in handler.path:
            self.others.append(handler.path)
            send(handler, 404, b'{"error": "not here"}')
            return
        self.requests.append(
            {
                "method": handler.command,
                "path": handler.path,
                "range": handler.headers.get("Range"),
                "authorization": handler.headers.get("Authorization"),
            }
        )
        if not re.fullmatch(rf"/{REPO}/resolve/[^/]+/{re.escape(FILENAME)}", handler.path):
            send(handler, 404, b'{"error": "Entry not found"}', headers={"X-Error-Code": "EntryNotFound"})
            return
        start = int(m.group(1)) if (m := re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range") or "")) else 0
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{CONTENT_SHA256}"')
        handler.send_header("Content-Length", str(len(CONTENT) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}")
        handler.end_headers()
        if handler.command == "HEAD":
            return
        body = CONTENT[start:]
        if self.drop_first_get and len(self.gets()) == 1:
            body = body[:DROPPED_AT]  # then the handler returns and HTTP/1.0 closes the connection mid-file
        handler.wfile.write(body)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    api = HubFileAPI()
    with HttpStandIn(api) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("TOOLRUN_CACHE_DIR", str(tmp_path / "toolrun-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield api


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock" and p.name != "CACHEDIR.TAG"]


def test_an_interrupted_download_resumes_with_a_range_request_and_is_verified(hub: HubFileAPI) -> None:
    hub.drop_first_get = True
    spec = HuggingFaceFile(REPO, FILENAME, revision=COMMIT, sha256=CONTENT_SHA256)
    reports: list[tuple[int, int]] = []

    path = fetch_huggingface(spec, progress=lambda done, total: reports.append((done, total)))

    first, second = hub.gets()
    assert first["range"] is None and first["path"] == f"/{REPO}/resolve/{COMMIT}/{FILENAME}"
    resumed_at = re.fullmatch(r"bytes=(\d+)-", second["range"] or "")
    assert resumed_at and 0 < int(resumed_at.group(1)) <= DROPPED_AT  # what it had is not asked for again
    assert path.read_bytes() == CONTENT
    assert path.is_relative_to(hf_hub_cache())  # the shared Hugging Face cache, not a toolrun-only folder
    assert reports[-1] == (len(CONTENT), len(CONTENT))
    assert hf_cached_path(spec) == path  # found next time without a request
    asked = len(hub.requests)
    assert fetch_huggingface(spec) == path and len(hub.requests) == asked


def test_a_wrong_sha256_is_refused_and_the_file_removed(hub: HubFileAPI) -> None:
    spec = HuggingFaceFile(REPO, FILENAME, revision=COMMIT, sha256=hashlib.sha256(b"other bytes").hexdigest())

    with pytest.raises(ModelFetchError, match="not the file the catalog names") as caught:
        fetch_huggingface(spec)

    assert CONTENT_SHA256 in caught.value.message
    assert _files_in(hf_hub_cache()) == []  # neither the snapshot link nor the blob is left to be used later
    assert not hf_cached_path(spec).exists()


def test_offline_mode_uses_the_cache_and_never_fetches(hub: HubFileAPI, monkeypatch) -> None:
    spec = HuggingFaceFile(REPO, FILENAME, revision=COMMIT, sha256=CONTENT_SHA256)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFetchError, match="HF_HUB_OFFLINE"):
        fetch_huggingface(spec)
    assert hub.requests == []

    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = fetch_huggingface(spec)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    assert fetch_huggingface(spec) == path and len(hub.requests) == asked


def test_a_file_the_old_code_downloaded_is_still_found(hub: HubFileAPI, tmp_path) -> None:
    old = tmp_path / "toolrun-cache" / "models" / "hf" / REPO.replace("/", "--") / FILENAME
    old.parent.mkdir(parents=True)
    old.write_bytes(CONTENT)
    spec = HuggingFaceFile(REPO, FILENAME, revision=COMMIT, sha256=CONTENT_SHA256)

    assert hf_cached_path(spec) == old
    assert fetch_huggingface(spec) == old and hub.requests == []


def test_an_unpinned_file_is_said_unverified_and_the_token_is_sent(hub: HubFileAPI, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    spec = HuggingFaceFile(REPO, FILENAME)

    with caplog.at_level(logging.WARNING, logger="toolrun.ai._fetch"):
        path = fetch_huggingface(spec)

    assert path.read_bytes() == CONTENT
    assert hub.gets()[0]["path"] == f"/{REPO}/resolve/main/{FILENAME}"
    assert all(r["authorization"] == "Bearer hf_test_token" for r in hub.requests)
    assert any("unverified" in r.getMessage() for r in caplog.records)


def test_a_missing_file_is_a_fetch_error(hub: HubFileAPI) -> None:
    with pytest.raises(ModelFetchError, match=r"downloading someone/tiny-GGUF/absent\.gguf"):
        fetch_huggingface(HuggingFaceFile(REPO, "absent.gguf", revision=COMMIT))


def test_the_builtin_pins_are_well_formed() -> None:
    pinned = [e.huggingface for e in BUILTIN_MODELS if e.huggingface is not None]
    assert pinned
    for spec in pinned:
        assert spec.revision is None or re.fullmatch(r"[0-9a-f]{40}", spec.revision), spec
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec


def test_pull_help_says_what_is_verified() -> None:
    from typer.testing import CliRunner

    from toolrun.cli import app

    result = CliRunner().invoke(app, ["pull", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})

    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "checked once against the catalog's SHA-256 where it has one" in text
    assert "unverified" in text and "HF_HUB_OFFLINE=1" in text
