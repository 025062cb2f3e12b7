"""Warm prefixes kept on disk, so that a new process does not evaluate a known tool list again.

The RAM cache (:mod:`._prefix_cache`) dies with its process, and every ``toolrun run`` is a new
process: its first request evaluated the ~1,500 tokens of system prompt and tool list that the
last one evaluated too. The store here keeps the KV state of such a prefix
(``llama_state_seq_get_data``) in a file, and a later process restores it
(``llama_state_seq_set_data``) instead of evaluating it.

A file is never trusted. Its name is a hash (nothing a request carries chooses a path); its
header repeats the whole key — the model file's identity, the llama-cpp-python version, the
CPU features llama.cpp was built for, the context's layout — and the exact tokens; a length and
a sha256 of header and payload guard the rest. A file that is corrupt, truncated, written for
another model or configuration, or for other tokens, is deleted and never loaded; the prefix is
then evaluated and written again. Files are written whole to a temporary name and renamed
(``os.replace``), by a thread of their own, so the thread that decodes for every slot only
copies the state out of llama.cpp (milliseconds). Within a byte budget for the whole
directory, the least recently used files go first.

Reading happens on the decoding thread, and only where it spares at least ``min_gain`` tokens of
prompt evaluation that would run on that same thread: an 18 MB state (1,500 tokens of the 0.5B
model) reads and hashes in tens of milliseconds, against seconds to evaluate it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._prefix_cache import CacheStats, common_prefix

log = logging.getLogger("toolrun.engines.llamacpp")

MAGIC = b"TRKVPFX\x00"
FORMAT_VERSION = 1
#: magic, format version, header length, payload length, sha256 of header + payload.
_FIXED = struct.Struct("<8sIIQ32s")
#: A header is the key and a token list: even 128k tokens as JSON stay far below this.
MAX_HEADER_BYTES = 4 << 20
SUFFIX = ".kvp"
_TEMP_PREFIX = ".tmp-"
#: A temporary file this old was left by a process that died while writing it.
_STALE_TEMP_SECONDS = 600.0
#: Writes waiting for the writer thread at most (each holds a state of tens of MB): more are dropped.
MAX_PENDING_WRITES = 2


class RejectedFile(Exception):
    """A prefix file that must not be loaded (the message says why)."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def tokens_digest(config_digest: str, tokens: Sequence[int]) -> str:
    return hashlib.sha256(config_digest.encode() + b"\x00" + canonical_json(list(tokens))).hexdigest()


def encode(key: Mapping[str, Any], tokens: Sequence[int], state: bytes) -> bytes:
    """A prefix file's bytes: the fixed header, the JSON header (key and tokens), the state."""
    header = canonical_json({"key": key, "tokens": list(tokens), "state_bytes": len(state)})
    digest = hashlib.sha256(header)
    digest.update(state)
    return _FIXED.pack(MAGIC, FORMAT_VERSION, len(header), len(state), digest.digest()) + header + state


def _read_header(handle: Any, size: int, max_payload: int) -> tuple[bytes, dict[str, Any], int, bytes]:
    """The JSON header's bytes and value, the payload's length and the expected checksum (RejectedFile if wrong)."""
    fixed = handle.read(_FIXED.size)
    if len(fixed) != _FIXED.size:
        raise RejectedFile("shorter than its fixed header")
    magic, version, header_len, payload_len, checksum = _FIXED.unpack(fixed)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise RejectedFile("not a prefix file of this format version")
    if header_len > MAX_HEADER_BYTES or payload_len > max_payload:
        raise RejectedFile("larger than any file this store writes")
    if size != _FIXED.size + header_len + payload_len:
        raise RejectedFile(f"{size} bytes where its header says {_FIXED.size + header_len + payload_len}")
    raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except ValueError:
        raise RejectedFile("header is not JSON") from None
    if not isinstance(header, dict) or header.get("state_bytes") != payload_len:
        raise RejectedFile("header does not describe its payload")
    tokens = header.get("tokens")
    if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
        raise RejectedFile("header holds no token list")
    return raw, header, payload_len, checksum


def decode(
    data_path: Path, key: Mapping[str, Any], tokens: Sequence[int] | None, max_payload: int
) -> tuple[list[int], bytes | None]:
    """Read and check a prefix file: its tokens, and its state unless ``tokens`` is None (header only).

    Raises :class:`RejectedFile` unless the file is whole, of this format, written for ``key`` (and
    ``tokens``), under the name those give, and its checksum matches."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(data_path, flags)
    except FileNotFoundError:
        raise  # evicted by another process meanwhile: gone, not bad
    except OSError as exc:
        raise RejectedFile(f"cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not _is_regular(info.st_mode):
            raise RejectedFile("not a regular file")
        raw, header, payload_len, checksum = _read_header(handle, info.st_size, max_payload)
        if header.get("key") != json.loads(canonical_json(key)):
            raise RejectedFile("written for another model or configuration")
        found = list(header["tokens"])
        config = hashlib.sha256(canonical_json(key)).hexdigest()
        if data_path.name != file_name(config, found):
            raise RejectedFile("its name is not the hash of its key and tokens")
        if tokens is not None and found != list(tokens):
            raise RejectedFile("holds other tokens")
        if tokens is None:
            return found, None
        state = handle.read(payload_len)
    digest = hashlib.sha256(raw)
    digest.update(state)
    if len(state) != payload_len or digest.digest() != checksum:
        raise RejectedFile("checksum mismatch")
    return found, state


def file_name(config_digest: str, tokens: Sequence[int]) -> str:
    """``<configuration>-<tokens>.kvp``: both hashes (the first lets a store list its own files)."""
    return f"{config_digest[:16]}-{tokens_digest(config_digest, tokens)[:40]}{SUFFIX}"


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def model_identity(path: str) -> dict[str, Any]:
    """The model file as a key: where it is, its size and mtime, and a hash of its first and last MiB.

    A full sha256 of a 1 GB GGUF would take seconds, more than the prefix spares; a file rewritten in
    place changes its mtime, and one swapped under the same mtime (a copy keeping it) almost surely
    changes its GGUF header or its last tensor's bytes."""
    real = os.path.realpath(path)
    info = os.stat(real)
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, info.st_size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return {"path": real, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "ends_sha256": digest.hexdigest()}


def key_material(model_path: str, *, n_ctx_seq: int, row_group: int, n_threads: int) -> dict[str, Any]:
    """Everything a saved state's bits depend on besides its tokens (see the module doc)."""
    import llama_cpp as lc

    return {
        "model": model_identity(model_path),
        "llama_cpp_python": lc.__version__,
        "system_info": bytes(lc.llama_print_system_info()).decode("utf-8", "replace"),
        # The context as _context.SequenceContext makes it: one f16 KV stream per sequence, no flash
        # attention; the weights' repacking (row_group) and the threads can change a state's bits.
        "layout": {
            "n_ctx_seq": n_ctx_seq,
            "row_group": row_group,
            "n_threads": n_threads,
            "kv": "f16",
            "kv_unified": False,
            "flash_attn": False,
        },
    }


def default_directory() -> Path:
    """``$TOOLRUN_CACHE_DIR/prefixes`` or the user cache dir's ``toolrun/prefixes``."""
    import platformdirs

    return Path(os.environ.get("TOOLRUN_CACHE_DIR") or platformdirs.user_cache_dir("toolrun")) / "prefixes"


class DiskPrefixStore:
    """Prefix states of one model configuration in ``directory``, within ``budget_bytes`` for the directory.

    ``best``, ``load`` and ``forget`` run on the decoding thread; ``save`` hands the write to a thread of
    its own (``flush`` waits for it)."""

    def __init__(
        self, directory: Path, budget_bytes: int, key: Mapping[str, Any], stats: CacheStats | None = None
    ) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.key = dict(key)
        self.config_digest = hashlib.sha256(canonical_json(self.key)).hexdigest()
        self.stats = stats if stats is not None else CacheStats()
        #: Read on the decoding thread, written by the writer thread too: replaced or changed under ``_index_lock``.
        self._index: dict[tuple[int, ...], Path] = {}
        self._index_lock = threading.Lock()
        self._scanned_mtime: int | None = None
        self._pending: deque[tuple[tuple[int, ...], bytes]] = deque()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)

    # --------------------------------------------------------------- reading

    def refresh(self) -> None:
        """Index this configuration's files (again, if the directory changed since): headers only."""
        try:
            mtime = self.directory.stat().st_mtime_ns
        except OSError:
            with self._index_lock:
                self._index = {}
            return
        if mtime == self._scanned_mtime:
            return
        self._scanned_mtime = mtime
        index: dict[tuple[int, ...], Path] = {}
        for path in self.directory.glob(f"{self.config_digest[:16]}-*{SUFFIX}"):
            try:
                tokens, _ = decode(path, self.key, None, self.budget_bytes)
            except FileNotFoundError:
                continue
            except RejectedFile as why:
                self._reject(path, str(why))
                continue
            index[tuple(tokens)] = path
        with self._index_lock:
            self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def holds(self, tokens: Sequence[int]) -> bool:
        with self._index_lock:
            return tuple(tokens) in self._index

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], int] | None:
        """The saved prefix sharing the most leading tokens with ``tokens``, and how many it shares."""
        self.refresh()
        found: tuple[tuple[int, ...], int] | None = None
        with self._index_lock:
            keys = list(self._index)
        for key in keys:
            shared = common_prefix(key, tokens)
            if shared > (found[1] if found else 0):
                found = (key, shared)
        return found

    def load(self, tokens: Sequence[int]) -> bytes | None:
        """The state saved for exactly ``tokens``, checked whole; None (and the file deleted) if it fails."""
        with self._index_lock:
            path = self._index.get(tuple(tokens))
        if path is None:
            return None
        try:
            _, state = decode(path, self.key, tokens, self.budget_bytes)
        except FileNotFoundError:
            with self._index_lock:
                self._index.pop(tuple(tokens), None)
            return None
        except RejectedFile as why:
            with self._index_lock:
                self._index.pop(tuple(tokens), None)
            self._reject(path, str(why))
            return None
        assert state is not None
        self.stats.disk_read_bytes += len(state)
        try:
            os.utime(path)  # recently used: evicted last
        except OSError:
            pass
        return state

    def forget(self, tokens: Sequence[int], why: str) -> None:
        """Delete the file for ``tokens`` (llama.cpp refused its state)."""
        with self._index_lock:
            path = self._index.pop(tuple(tokens), None)
        if path is not None:
            self._reject(path, why)

    def clear(self) -> None:
        """Delete this configuration's files (a cold start, for benchmarks and tests), once writes are done."""
        self.flush()
        for path in self.directory.glob(f"{self.config_digest[:16]}-*{SUFFIX}"):
            path.unlink(missing_ok=True)
        with self._index_lock:
            self._index = {}
        self._scanned_mtime = None

    def _reject(self, path: Path, why: str) -> None:
        log.warning("ignoring the saved prefix %s: %s; it is deleted and will be rebuilt", path.name, why)
        self.stats.disk_rejected += 1
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass

    # --------------------------------------------------------------- writing

    def save(self, tokens: Sequence[int], state: bytes) -> bool:
        """Write ``state`` for ``tokens`` in the background; False if it is not written (too large, too many
        waiting, or already there)."""
        key = tuple(tokens)
        if self._file_bytes(len(key), len(state)) > self.budget_bytes or self.holds(key):
            return False
        with self._lock:
            if len(self._pending) >= MAX_PENDING_WRITES or any(k == key for k, _ in self._pending):
                return False
            self._pending.append((key, state))
            if self._writer is None:
                # Not a daemon: a process that ends (``toolrun run``) finishes the file it is writing.
                self._writer = threading.Thread(target=self._write_pending, name="toolrun-prefix-disk")
                self._writer.start()
        return True

    def flush(self) -> None:
        """Wait until every write handed to :meth:`save` is on disk (or has failed)."""
        with self._lock:
            while self._writer is not None:
                self._idle.wait()

    def _write_pending(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._writer = None
                    self._idle.notify_all()
                    return
                key, state = self._pending[0]
            try:
                self.write(key, state)
            except OSError as exc:
                log.warning("could not save a %d-token prefix to %s: %s", len(key), self.directory, exc)
            finally:
                with self._lock:
                    self._pending.popleft()

    def write(self, tokens: Sequence[int], state: bytes) -> Path:
        """Write the file for ``tokens`` atomically (a temporary file renamed), then keep to the budget."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = encode(self.key, tokens, state)
        final = self.directory / file_name(self.config_digest, tokens)
        # mkstemp creates the file readable by its owner only: a prefix holds a system prompt's KV.
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=_TEMP_PREFIX, suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # No fsync: a file cut short by a crash fails its length or checksum and is rebuilt.
            os.replace(temp, final)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self.stats.disk_writes += 1
        self.stats.disk_written_bytes += len(data)
        key = tuple(tokens)
        with self._index_lock:
            # A saved prefix of these tokens serves no request the new file does not (as in the RAM cache).
            shorter = [k for k in self._index if len(k) < len(key) and key[: len(k)] == k]
            dropped = [self._index.pop(k) for k in shorter]
            self._index[key] = final
        for path in dropped:
            path.unlink(missing_ok=True)
        self.evict()
        return final

    @staticmethod
    def _file_bytes(n_tokens: int, n_state: int) -> int:
        """About what a file of ``n_tokens`` and ``n_state`` bytes of state takes (a token: <= 8 bytes of JSON)."""
        return _FIXED.size + 256 + 8 * n_tokens + n_state

    def evict(self) -> None:
        """Delete least recently used files (every configuration's) until the directory fits the budget,
        and temporary files that a dead process left."""
        files: list[tuple[float, int, Path]] = []
        now = time.time()
        for path in self.directory.iterdir():
            try:
                info = path.lstat()
            except OSError:
                continue
            if path.name.startswith(_TEMP_PREFIX):
                if now - info.st_mtime > _STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
                continue
            if path.suffix == SUFFIX and _is_regular(info.st_mode):
                files.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in files)
        evicted = set()
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.budget_bytes:
                break
            path.unlink(missing_ok=True)
            evicted.add(path)
            total -= size
            self.stats.disk_evictions += 1
        if evicted:
            with self._index_lock:
                self._index = {k: p for k, p in self._index.items() if p not in evicted}
