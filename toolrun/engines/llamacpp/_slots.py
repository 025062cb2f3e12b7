"""Slots: the sequences of one llama context, what each holds, and which one a new prompt should use.

Reuse is *result-neutral*. On the CPU, with the weights unrepacked, a token's KV
does not depend on the batch it was computed in as long as that batch held at
least :data:`MIN_PIECE` tokens of its sequence: a prompt evaluated in one batch,
or cut anywhere into pieces of 8 tokens or more, gives bit-identical KV and
logits (measured on both local models at 1 and 2 threads, 1,071-token prompts,
pieces of 8 to 512). Pieces of 1 to 7 tokens take other kernel paths and do not.

So prompts are evaluated in pieces of at least ``MIN_PIECE`` tokens, each alone
in its batch, and the tokens computed that way are *canonical*. A request may
reuse any canonical prefix it shares with a slot, provided at least
``MIN_PIECE`` of its tokens are left to evaluate (the last token's logits must
come from such a piece too). The KV it starts from and its logits are then bit
for bit what a cold run of the same prompt computes. Tokens decoded one at a
time (an earlier answer) are never reused: a tool loop's next round evaluates
them again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._prefix_cache import common_prefix

#: The fewest tokens of a sequence a prompt batch may hold for its KV to match any other cut (see above).
MIN_PIECE = 8


@dataclass
class Slot:
    """One sequence of the context: the tokens whose KV it holds, at positions 0..n-1."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    #: The first ``canonical`` tokens were evaluated as prompt pieces of ``MIN_PIECE`` or more (reusable exactly).
    canonical: int = 0
    busy: bool = False
    last_used: float = 0.0

    def canonical_tokens(self) -> list[int]:
        return self.tokens[: self.canonical]

    def truncate(self, n: int) -> None:
        """Forget the tokens after the first ``n`` (the caller drops their KV)."""
        del self.tokens[n:]
        self.canonical = min(self.canonical, n)

    def touch(self) -> None:
        self.last_used = time.monotonic()


def reusable(held: Sequence[int], canonical: int, prompt: Sequence[int]) -> int:
    """How many of ``prompt``'s tokens a sequence holding ``held`` (``canonical`` of them exact) can skip.

    All the canonical tokens it shares, but never the last ``MIN_PIECE``: the piece holding the
    prompt's last token must be as long as a cold run's could be, for its logits to be the same.
    """
    shared = common_prefix(held[:canonical], prompt)
    return max(0, min(shared, len(prompt) - MIN_PIECE))


def prompt_pieces(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Positions ``[start, end)`` cut into pieces of at most ``size`` tokens, none under ``MIN_PIECE``
    (unless the whole span is shorter: a prompt of a few tokens is one piece, in cold runs too)."""
    pieces = []
    pos = start
    while pos < end:
        stop = min(pos + size, end)
        if 0 < end - stop < MIN_PIECE:  # leave the last piece its minimum
            stop = end - MIN_PIECE
        pieces.append((pos, stop))
        pos = stop
    return pieces
