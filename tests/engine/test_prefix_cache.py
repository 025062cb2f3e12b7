"""The prefix cache's bookkeeping and the slot arithmetic, without a model."""

from __future__ import annotations

from toolrun.engines.llamacpp._prefix_cache import PrefixCache, common_prefix
from toolrun.engines.llamacpp._slots import chunk_spans, reusable


def test_common_prefix_across_block_boundaries() -> None:
    a = list(range(1000))
    assert common_prefix(a, a) == 1000
    assert common_prefix(a, a[:700]) == 700
    b = a[:]
    b[513] = -1
    assert common_prefix(a, b) == 513
    assert common_prefix([], a) == 0


def test_reusable_takes_whole_canonical_chunks_and_never_the_last_one() -> None:
    held = list(range(300))
    # Shares 300 tokens, all canonical: whole chunks of 64 only, and not the chunk holding the prompt's last token.
    assert reusable(held, 300, list(range(400)), 64) == 256
    assert reusable(held, 300, list(range(300)), 64) == 256
    assert reusable(held, 300, list(range(256)), 64) == 192  # the last chunk is evaluated again for its logits
    # Only the canonical part counts: tokens decoded one by one are not reused.
    assert reusable(held, 130, list(range(400)), 64) == 128
    assert reusable(held, 300, [*range(100), -1, *range(101, 400)], 64) == 64
    assert reusable(held, 300, [], 64) == 0


def test_chunk_spans_are_aligned() -> None:
    assert chunk_spans(128, 300, 64) == [(128, 192), (192, 256), (256, 300)]
    assert chunk_spans(0, 64, 64) == [(0, 64)]
    assert chunk_spans(64, 64, 64) == []


def test_lru_eviction_within_the_budget() -> None:
    cache = PrefixCache(budget_bytes=250)
    assert cache.put([1, 2, 3], b"a" * 100)
    assert cache.put([4, 5, 6], b"b" * 100)
    cache.get((1, 2, 3))  # used: now the most recent
    assert cache.put([7, 8, 9], b"c" * 100)  # over budget: the least recently used entry goes
    assert (4, 5, 6) not in cache and (1, 2, 3) in cache and (7, 8, 9) in cache
    assert cache.held_bytes == 200 <= cache.budget_bytes
    assert cache.stats.evictions == 1 and cache.stats.saves == 3


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    cache = PrefixCache(budget_bytes=50)
    assert not cache.put([1], b"x" * 51)
    assert len(cache) == 0 and cache.held_bytes == 0


def test_best_match_and_prefixes_superseded() -> None:
    cache = PrefixCache(budget_bytes=10_000)
    cache.put([1, 2], b"s")
    cache.put([1, 2, 3, 4], b"long")  # holds everything [1, 2] did: that entry goes
    assert len(cache) == 1
    assert cache.best([1, 2, 3, 9]) == ((1, 2, 3, 4), 3)
    assert cache.best([7]) is None
    assert cache.covers([1, 2, 3]) and not cache.covers([1, 2, 3, 4, 5])
