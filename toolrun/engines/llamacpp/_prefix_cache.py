"""Warm prefixes kept in RAM: saved KV states of token prefixes, least recently used evicted within a byte budget.

A slot holds one warm prefix in the llama context; when a slot is about to be
overwritten, its prefix is saved here (``llama_state_seq_get_data``) and a later
request that starts with it restores it into whichever slot it gets
(``llama_state_seq_set_data``) instead of evaluating it again. Restoring a
1,000-token prefix of the 0.5B model copies 12 MB: milliseconds, against
seconds to evaluate it. An entry saved from a slot that still had the logits its
prompt ended on keeps them too (0.6 MB on the Qwen models' vocabulary): a request
repeating that prompt exactly then evaluates nothing at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Logits = np.ndarray[Any, np.dtype[np.float32]]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    # Compare in blocks first: prompts share long prefixes, and slices compare in C.
    step = 256
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class CacheStats:
    """Counters the server exposes in ``/metrics``."""

    #: Requests that reused a warm prefix (in a slot or restored from RAM), and those that reused nothing.
    hits: int = 0
    misses: int = 0
    #: Prompt tokens taken from warm prefixes instead of being evaluated.
    reused_tokens: int = 0
    #: Prefixes restored from RAM into a slot, saved from a slot into RAM, and dropped from RAM for room.
    restores: int = 0
    saves: int = 0
    evictions: int = 0
    #: The disk store (:mod:`._disk_prefix`): prefixes restored from a file, requests that looked there for a long
    #: prefix and found none, the tokens restored, and the files' traffic, evictions and rejections (corrupt,
    #: truncated or written for another model or configuration: deleted, never loaded).
    disk_hits: int = 0
    disk_misses: int = 0
    disk_restored_tokens: int = 0
    disk_read_bytes: int = 0
    disk_writes: int = 0
    disk_written_bytes: int = 0
    disk_evictions: int = 0
    disk_rejected: int = 0


@dataclass
class _Entry:
    state: bytes
    #: The logits the prompt of exactly these tokens ended on, when they were kept.
    logits: Logits | None

    @property
    def nbytes(self) -> int:
        return len(self.state) + (0 if self.logits is None else self.logits.nbytes)


@dataclass
class PrefixCache:
    """Saved prefix states within ``budget_bytes``, least recently used first out."""

    budget_bytes: int
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: OrderedDict[tuple[int, ...], _Entry] = field(default_factory=OrderedDict)
    _bytes: int = 0

    @property
    def held_bytes(self) -> int:
        """Bytes of saved states held now (never more than ``budget_bytes``)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tokens: Sequence[int]) -> bool:
        return tuple(tokens) in self._entries

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], int] | None:
        """The entry sharing the longest prefix with ``tokens``, and that length (None if none shares any)."""
        best_key: tuple[int, ...] | None = None
        best_len = 0
        for key in self._entries:
            n = common_prefix(key, tokens)
            if n > best_len:
                best_key, best_len = key, n
        return None if best_key is None else (best_key, best_len)

    def get(self, key: tuple[int, ...]) -> tuple[bytes, Logits | None]:
        """The state saved for ``key`` and the logits its prompt ended on (if kept); now the most recent."""
        entry = self._entries[key]
        self._entries.move_to_end(key)
        return entry.state, entry.logits

    def has_logits(self, key: Sequence[int]) -> bool:
        """Whether an entry holds exactly ``key`` and the logits a prompt of it ended on."""
        entry = self._entries.get(tuple(key))
        return entry is not None and entry.logits is not None

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether some entry already holds all of ``tokens`` (saving them again would add nothing)."""
        return any(len(key) >= len(tokens) and common_prefix(key, tokens) == len(tokens) for key in self._entries)

    def put(self, tokens: Sequence[int], state: bytes, logits: Logits | None = None) -> bool:
        """Keep ``state`` for ``tokens`` (and the logits a prompt of exactly ``tokens`` ended on),
        evicting the least recently used entries to stay within the budget.

        Returns False (and keeps nothing) when the entry alone exceeds the budget. Entries that are
        prefixes of the new one are dropped: the new one serves every request they would (all but an
        exact repeat of a shorter prompt, which then evaluates its last few tokens again).
        """
        key = tuple(tokens)
        entry = _Entry(state, None if logits is None else logits.copy())
        if entry.nbytes > self.budget_bytes:
            return False
        for other in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(other)
        while self._entries and self._bytes + entry.nbytes > self.budget_bytes:
            self._drop(next(iter(self._entries)))
            self.stats.evictions += 1
        self._entries[key] = entry
        self._bytes += entry.nbytes
        self.stats.saves += 1
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: tuple[int, ...]) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.nbytes
