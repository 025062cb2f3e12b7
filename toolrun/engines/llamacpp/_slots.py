"""Slots: the sequences of one llama context, what each holds, and which one a new prompt should use.

Reuse is *result-neutral*. On the CPU, with the weights unrepacked, a token's KV
does not depend on the batch it was computed in as long as that batch held at
least :data:`MIN_PIECE` tokens of its sequence: a prompt evaluated in one batch,
or cut anywhere into pieces of 8 tokens or more, gives bit-identical KV and
logits (measured on both local models at 1 and 2 threads, 1,071-token prompts,
pieces of 8 to 512). Pieces of 1 to 7 tokens take other kernel paths and do not.

So prompts are evaluated in pieces of at least ``MIN_PIECE`` tokens, and the
tokens computed that way are *canonical*. Several requests' pieces may share a
batch when llama.cpp's cut of it still leaves each sequence pieces of that size
(:func:`prompt_batches`). A request may
reuse any canonical prefix it shares with a slot, provided at least
``MIN_PIECE`` of its tokens are left to evaluate (the last token's logits must
come from such a piece too). The KV it starts from and its logits are then bit
for bit what a cold run of the same prompt computes. Tokens decoded one at a
time (an earlier answer) are never reused: a tool loop's next round evaluates
them again. A slot also keeps the logits its last prompt ended on, when that
prompt's last piece was canonical: a request repeating the prompt exactly
evaluates nothing.

With llama.cpp's repacked weights (``batch_invariant=False``) one more rule holds
(measured the same way, on both local models): a batch's tokens are multiplied in
groups of :data:`REPACKED_ROW_GROUP` rows, and the last ``n % 4`` tokens of a
batch of ``n`` take another kernel with other bits. So there only the grouped
tokens of a piece are canonical, reuse stops at a multiple of the group, and every
piece but a prompt's last is a whole number of groups.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from ._prefix_cache import common_prefix

#: The fewest tokens of a sequence a prompt batch may hold for its KV to match any other cut (see above).
MIN_PIECE = 8

#: With repacked weights, ggml-cpu's ``repack.cpp`` runs a gemm over the first ``n - n % 4`` tokens of
#: a batch and a gemv over the rest, and the two sum differently.
REPACKED_ROW_GROUP = 4


@dataclass
class Slot:
    """One sequence of the context: the tokens whose KV it holds, at positions 0..n-1."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    #: The first ``canonical`` tokens were evaluated as prompt pieces of ``MIN_PIECE`` or more (reusable exactly).
    canonical: int = 0
    busy: bool = False
    last_used: float = 0.0
    #: The logits a prompt of the first ``prompt_end`` tokens ended on, when its last piece was canonical:
    #: a request with that very prompt takes them and evaluates nothing.
    prompt_logits: np.ndarray[Any, np.dtype[np.float32]] | None = None
    prompt_end: int = 0

    def canonical_tokens(self) -> list[int]:
        return self.tokens[: self.canonical]

    def truncate(self, n: int) -> None:
        """Forget the tokens after the first ``n`` (the caller drops their KV)."""
        del self.tokens[n:]
        self.canonical = min(self.canonical, n)
        if n < self.prompt_end:
            self.forget_prompt_logits()

    def replace(self, tokens: list[int], canonical: int) -> None:
        """Hold ``tokens`` instead (restored KV), the first ``canonical`` of them exact."""
        self.tokens, self.canonical = tokens, canonical
        self.forget_prompt_logits()

    def keep_prompt_logits(self, logits: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        """Keep a copy of the logits the prompt the slot now holds ended on (all of it canonical)."""
        assert self.canonical == len(self.tokens)
        self.prompt_logits, self.prompt_end = logits.copy(), len(self.tokens)

    def forget_prompt_logits(self) -> None:
        self.prompt_logits, self.prompt_end = None, 0

    def holds_prompt(self, prompt: Sequence[int]) -> bool:
        """Whether ``prompt`` is exactly the prompt whose last logits the slot kept."""
        end = self.prompt_end
        return self.prompt_logits is not None and len(prompt) == end and self.tokens[:end] == list(prompt)

    def touch(self) -> None:
        self.last_used = time.monotonic()


def reusable(held: Sequence[int], canonical: int, prompt: Sequence[int], row_group: int = 1) -> int:
    """How many of ``prompt``'s tokens a sequence holding ``held`` (``canonical`` of them exact) can skip.

    All the canonical tokens it shares, but never the last ``MIN_PIECE``: the piece holding the
    prompt's last token must be as long as a cold run's could be, for its logits to be the same.
    Rounded down to a whole number of ``row_group``, where a cold run's groups start.
    """
    shared = max(0, min(common_prefix(held[:canonical], prompt), len(prompt) - MIN_PIECE))
    return shared - shared % row_group


def prompt_pieces(start: int, end: int, size: int, row_group: int = 1) -> list[tuple[int, int]]:
    """Positions ``[start, end)`` cut into pieces of at most ``size`` tokens, none under ``MIN_PIECE``
    (unless the whole span is shorter: a prompt of a few tokens is one piece, in cold runs too), and
    all but the last a whole number of ``row_group`` (``start`` and ``size`` are)."""
    assert start % row_group == 0 and size % row_group == 0 and MIN_PIECE % row_group == 0
    pieces = []
    pos = start
    while pos < end:
        stop = min(pos + size, end)
        if 0 < end - stop < MIN_PIECE:  # leave the last piece its minimum
            stop = end - MIN_PIECE
            stop -= (stop - pos) % row_group
        pieces.append((pos, stop))
        pos = stop
    return pieces


def prompt_batches(lengths: Sequence[int], capacity: int, row_group: int = 1) -> list[list[int]]:
    """Which prompt pieces may be evaluated together: their indices, in order, grouped into batches.

    ``lengths`` are the pieces' token counts, in sequence order. Beside other sequences llama.cpp
    cuts a batch into ubatches holding the same number of tokens of each run of consecutive sequence
    ids (``split_equal``); neighbours advance together, so a piece is cut only where a shorter piece of
    its batch ends, at that piece's length. Pieces share a batch only while the
    lengths in it, sorted, lie ``MIN_PIECE`` or more apart, and while it fits ``capacity`` tokens:
    then every cut leaves pieces of ``MIN_PIECE`` or more, and their bits are what the pieces give
    alone. (A piece under ``MIN_PIECE``, a whole short prompt, stays alone.) On repacked weights
    (``row_group`` > 1) every piece stays alone: a batch's last ``n % row_group`` tokens take another
    kernel, and which tokens those are would depend on the other pieces.
    """
    if row_group != 1:
        return [[index] for index in range(len(lengths))]
    batches: list[list[int]] = []
    for index, length in enumerate(lengths):
        batch = batches[-1] if batches else []
        ends = sorted({lengths[i] for i in batch} | {length})
        if (
            batch
            and min(ends) >= MIN_PIECE
            and all(b - a >= MIN_PIECE for a, b in pairwise(ends))
            and sum(lengths[i] for i in batch) + length <= capacity
        ):
            batch.append(index)
        else:
            batches.append([index])
    return batches


def canonical_stop(start: int, stop: int, row_group: int = 1) -> int:
    """Where the canonical tokens of a prompt piece ``[start, stop)`` end (``start`` if none are)."""
    if stop - start < MIN_PIECE:
        return start
    return stop - (stop - start) % row_group
