"""The prefix cache's bookkeeping and the slot arithmetic, without a model."""

from __future__ import annotations

import numpy as np

from toolrun.engines.llamacpp._prefix_cache import PrefixCache, common_prefix
from toolrun.engines.llamacpp._slots import (
    MIN_PIECE,
    REPACKED_ROW_GROUP,
    canonical_stop,
    prompt_batches,
    prompt_pieces,
    reusable,
)


def test_common_prefix_across_block_boundaries() -> None:
    a = list(range(1000))
    assert common_prefix(a, a) == 1000
    assert common_prefix(a, a[:700]) == 700
    b = a[:]
    b[513] = -1
    assert common_prefix(a, b) == 513
    assert common_prefix([], a) == 0


def test_reusable_takes_the_shared_canonical_prefix_but_leaves_a_whole_piece() -> None:
    held = list(range(300))
    # Shares 300 tokens, all canonical: every one of them, down to the last piece of MIN_PIECE tokens.
    assert reusable(held, 300, list(range(400))) == 300
    assert reusable(held, 300, list(range(305))) == 305 - MIN_PIECE
    assert reusable(held, 300, list(range(300))) == 300 - MIN_PIECE  # the same prompt: its last piece again
    assert reusable(held, 300, list(range(5))) == 0  # shorter than a piece: evaluated whole, as cold
    # Only the canonical part counts: tokens decoded one by one are not reused.
    assert reusable(held, 130, list(range(400))) == 130
    assert reusable(held, 300, [*range(100), -1, *range(101, 400)]) == 100
    assert reusable(held, 300, []) == 0


def test_prompt_pieces_never_leave_a_short_one() -> None:
    assert prompt_pieces(100, 1300, 512) == [(100, 612), (612, 1124), (1124, 1300)]
    assert prompt_pieces(0, 515, 512) == [(0, 515 - MIN_PIECE), (515 - MIN_PIECE, 515)]
    assert prompt_pieces(0, 5, 512) == [(0, 5)]  # a prompt shorter than a piece
    assert prompt_pieces(64, 64, 512) == []
    for start, end in [(0, 1), (3, 40), (0, 1024), (7, 1031), (0, 520)]:
        pieces = prompt_pieces(start, end, 512)
        assert [p[0] for p in pieces[1:]] == [p[1] for p in pieces[:-1]] and pieces[-1][1] == end
        assert all(MIN_PIECE <= b - a <= 512 for a, b in pieces) or len(pieces) == 1


def test_with_repacked_weights_reuse_and_pieces_keep_to_whole_row_groups() -> None:
    group = REPACKED_ROW_GROUP
    held = list(range(300))
    assert reusable(held, 300, list(range(400)), group) == 300
    assert reusable(held, 300, list(range(306)), group) == 296  # 298 rounded down to a group
    assert reusable(held, 300, [*range(103), -1, *range(104, 400)], group) == 100
    assert prompt_pieces(0, 515, 512, group) == [(0, 504), (504, 515)]
    assert prompt_pieces(100, 1302, 512, group) == [(100, 612), (612, 1124), (1124, 1302)]
    for start, end in [(0, 1), (4, 40), (0, 1024), (8, 1031), (0, 521), (0, 519)]:
        pieces = prompt_pieces(start, end, 512, group)
        assert [p[0] for p in pieces[1:]] == [p[1] for p in pieces[:-1]] and pieces[-1][1] == end
        assert all(MIN_PIECE <= b - a <= 512 for a, b in pieces) or len(pieces) == 1
        assert all((b - a) % group == 0 for a, b in pieces[:-1])
    # A piece's last n % 4 tokens took the other kernel: not canonical; a short piece has none.
    assert canonical_stop(100, 301, group) == 300
    assert canonical_stop(100, 300, group) == 300
    assert canonical_stop(100, 107, group) == 100
    assert canonical_stop(100, 301) == 301  # weights unrepacked: the whole piece


def test_prompt_pieces_share_a_batch_only_where_llama_cpp_cuts_leave_whole_pieces() -> None:
    assert prompt_batches([21, 21, 21, 21], 512) == [[0, 1, 2, 3]]  # equal: no cut at all
    assert prompt_batches([21, 30, 45], 512) == [[0, 1, 2]]  # cut at 21 and 30: pieces of 21, 9, 15
    assert prompt_batches([21, 25], 512) == [[0], [1]]  # would leave 25 cut into 21 + 4
    assert prompt_batches([21, 25, 40], 512) == [[0], [1, 2]]
    assert prompt_batches([5, 21], 512) == [[0], [1]]  # a short whole prompt stays alone
    assert prompt_batches([21, 5], 512) == [[0], [1]]
    assert prompt_batches([300, 300, 300], 512) == [[0], [1], [2]]  # over the batch
    assert prompt_batches([256, 256, 100], 512) == [[0, 1], [2]]
    assert prompt_batches([], 512) == []
    assert prompt_batches([21, 21], 512, REPACKED_ROW_GROUP) == [[0], [1]]  # repacked: always alone


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


def test_kept_logits_count_against_the_budget_and_come_back_with_their_state() -> None:
    logits = np.arange(25, dtype=np.float32)  # 100 bytes
    cache = PrefixCache(budget_bytes=250)
    assert cache.put([1, 2, 3], b"a" * 100, logits)
    assert cache.held_bytes == 200 and cache.has_logits([1, 2, 3]) and not cache.has_logits([1, 2])
    logits[0] = -1  # the cache holds its own copy
    state, kept = cache.get((1, 2, 3))
    assert state == b"a" * 100 and kept is not None and kept[0] == 0
    assert cache.put([4, 5], b"b" * 100)  # 300 bytes would not fit: the first entry goes
    assert (1, 2, 3) not in cache and cache.held_bytes == 100
    assert not cache.put([6], b"c" * 200, logits)  # state and logits together exceed the budget
