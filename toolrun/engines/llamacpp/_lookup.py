"""Prompt lookup: drafts copied from what the request already holds.

A call's values and an answer's words are mostly copies — the user's "Paris", the tool result's
"San Francisco". The tokens written last are looked up (3, then 2, then 1 of them) among the output's
own, then in a *preferred* text (what a call of the request's tools looks like), then in the prompt,
and the tokens that followed their latest occurrence are the draft. An index of n-grams keeps each
lookup a few dictionary reads.
"""

from __future__ import annotations

from collections.abc import Sequence

#: n-gram sizes tried, longest first.
MAX_NGRAM = 3
MIN_NGRAM = 1


class _Index:
    """The n-grams of one token stream: each to where the tokens after its latest occurrence start."""

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self.tokens: list[int] = []
        self.next: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            # The n-grams ending just before this token now have a continuation: this token.
            end = len(self.tokens)
            self.tokens.append(token)
            for n in range(MIN_NGRAM, MAX_NGRAM + 1):
                if end >= n:
                    self.next[tuple(self.tokens[end - n : end])] = end

    def after(self, start: int, limit: int) -> list[int]:
        return self.tokens[start : start + limit]


class PromptLookup:
    """Drafts for a stream that starts with a prompt and grows by each token written (see module doc)."""

    def __init__(self, prompt: Sequence[int], preferred: Sequence[int] = ()) -> None:
        self._stream = _Index(prompt)
        self._prompt_length = len(prompt)
        self._preferred = _Index(preferred)

    def extend(self, tokens: Sequence[int]) -> None:
        self._stream.extend(tokens)

    def draft(self, limit: int, after: Sequence[int] = ()) -> list[int]:
        """Up to ``limit`` tokens that followed, when last seen, the longest n-gram the stream ends with
        (the stream continued by ``after``, tokens not written yet)."""
        if limit <= 0:
            return []
        stream, preferred = self._stream, self._preferred
        tail = stream.tokens[-MAX_NGRAM:] + list(after)
        for n in range(min(MAX_NGRAM, len(tail)), MIN_NGRAM - 1, -1):
            key = tuple(tail[-n:])
            start = stream.next.get(key)
            if start is not None and start >= self._prompt_length:  # written in this very output
                return stream.after(start, limit)
            if (found := preferred.next.get(key)) is not None:
                return preferred.after(found, limit)
            if start is not None:
                return stream.after(start, limit)
        return []


__all__ = ["PromptLookup"]
