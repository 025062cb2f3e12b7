"""Slots: the sequences of one llama context, what each holds, and which one a new prompt should use.

Reuse is *result-neutral*. A token's KV depends, in the last bits, on the shape
of the batch it was computed in (llama.cpp's CPU kernels pick different paths
for 1, 2-3 and 4+ columns, and sum in different orders). So prompts are always
evaluated in fixed chunks at aligned positions — ``[0, C)``, ``[C, 2C)``, … each
chunk alone in its batch — and only whole chunks computed that way count as
*canonical*. A warm prefix is reused only up to its last canonical chunk
boundary: the KV a request starts from is then bit for bit what a cold run of
the same prompt computes, and so are its logits and its greedy answer. Tokens
decoded one at a time (an earlier answer) are never reused; a tool loop's next
round evaluates them again, along with the part of the last chunk they follow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._prefix_cache import common_prefix


@dataclass
class Slot:
    """One sequence of the context: the tokens whose KV it holds, at positions 0..n-1."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    #: The first ``canonical`` tokens were evaluated as whole aligned chunks (reusable exactly).
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


def reusable(held: Sequence[int], canonical: int, prompt: Sequence[int], chunk: int) -> int:
    """How many of ``prompt``'s tokens a sequence holding ``held`` (``canonical`` of them exact) can skip.

    Whole chunks only, and never the chunk holding the prompt's last token: its logits must come
    from the same batch a cold run evaluates.
    """
    if not prompt:
        return 0
    shared = common_prefix(held[:canonical], prompt)
    limit = (len(prompt) - 1) // chunk * chunk
    return min(shared, limit) // chunk * chunk


def chunk_spans(start: int, end: int, chunk: int) -> list[tuple[int, int]]:
    """Positions ``[start, end)`` cut at multiples of ``chunk`` (``start`` is one)."""
    spans = []
    pos = start
    while pos < end:
        stop = min((pos // chunk + 1) * chunk, end)
        spans.append((pos, stop))
        pos = stop
    return spans
