"""Deciding between a call and an answer where the upstream returns no token probabilities.

The local engine calls when the model's probability of opening a call at its first token (the mass
on every opener token) is at least ``call_threshold`` (:meth:`~toolrun.engines.turn.TurnGate.decide`).
llama-cpp-python's server returns no probabilities (it computes them only for a model loaded with
``logits_all``), but it takes a ``logit_bias`` and has a tokenizer endpoint; so does llama.cpp's. So the
question is put to the server as a one-token greedy completion, the *probe*, with a bias ``b`` added to
every opener token:

    greedy picks an opener  ⇔  max_o z_o + b > max_t z_t       (o: openers, t: every other token)

With ``b = ln((1 - τ) / τ)`` (``τ = call_threshold``) that reads ``p(best opener) / p(best other)
> τ / (1 - τ)``, while the local rule is ``p(openers) / p(others) ≥ τ / (1 - τ)``, i.e.
``mass(openers) ≥ τ``. The two agree exactly when each side's probability sits on one token. They
differ by ``ln(n_o / n_t)``, where ``n = mass / max`` counts a side's "effective tokens": a first token
of text usually spreads over more candidates ("I", "The", "To", ...) than a call's (``{"``, ``<``, `````
), so the probe calls somewhat more readily than the local engine — a call that does not fit the
request is then still caught by the gate's relevance check (``check_relevance``). On the seed example
the 0.5B puts 0.55 on openers (best opener ``{"`` 0.23, best text ``Cloud`` 0.08): both rules call.

The opener tokens are found without the vocabulary: every prefix of each opener (bare and after a
space) and each opener followed by newlines is tokenized once per engine; a candidate that is one
token is an opener token — the local engine's rule (:func:`~toolrun.engines.turn._decide.decision_tokens`:
a token opens a call if its text, leading spaces aside, is a prefix of an opener or begins with one).

When the probe says "answer", the answer starts with the most likely token that opens no call at
temperature 0 (the probe's own pick); at a higher temperature one more one-token completion samples it
at the request's settings with the openers banned, as the local engine forbids them for that token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..turn import TurnGate

log = logging.getLogger("toolrun.engines.remote")

#: The bias that bans a token: far beyond any gap between two logits of a real model.
BANNED = -100.0
#: Newline runs after an opener that the candidates cover (``{`` then ``\n\n`` is one token in Qwen's vocabulary).
_OPENER_TAILS = ("", "\n", "\n\n", "\n\n\n")
#: How many tokenize requests go out at once while the opener tokens are found (once per engine).
_TOKENIZE_CONCURRENCY = 8
#: After the opener tokens could not be found (no tokenizer, or the upstream was down), the seconds before
#: they are looked for again; meanwhile the model's own first token is followed.
RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class TokenizeRoute:
    """An upstream's tokenizer endpoint: ``POST root + path`` with ``{field: text}`` → ``{"tokens": [...]}``.

    ``root`` is the server's root (an OpenAI base URL's ``/v1`` taken off): llama-cpp-python serves
    ``/extras/tokenize`` (``input``, special tokens parsed), llama.cpp ``/tokenize`` (``content``, special
    tokens parsed by default; ``with_pieces`` would add each token's text)."""

    path: str
    field: str

    def body(self, text: str) -> dict[str, Any]:
        return {self.field: text}


def opener_bias(threshold: float) -> float:
    """The bias on opener tokens that makes greedy pick one exactly when the best opener's odds against
    the best other token are above ``threshold``'s: ``ln((1 - τ) / τ)`` (see the module doc)."""
    if threshold <= 0.0:
        return -BANNED
    if threshold >= 1.0:
        return BANNED
    return max(BANNED, min(-BANNED, math.log((1.0 - threshold) / threshold)))


def opener_candidates(openers: tuple[str, ...]) -> list[str]:
    """Texts that, when they are one token, are opener tokens (see the module doc)."""
    seen: dict[str, None] = {}
    for opener in openers:
        for lead in ("", " "):
            for end in range(1, len(opener) + 1):
                seen[lead + opener[:end]] = None
            for tail in _OPENER_TAILS[1:]:
                seen[lead + opener + tail] = None
    return list(seen)


def opens_call(text: str, openers: tuple[str, ...]) -> bool:
    """Whether a first token's text opens a call: the local engine's rule, leading spaces aside."""
    stripped = text.lstrip(" ")
    return bool(stripped) and any(o.startswith(stripped) or stripped.startswith(o) for o in openers)


Tokenize = Callable[[str], Awaitable[list[int] | None]]
#: A one-token completion with these body fields added (``greedy``: at temperature 0, no penalties);
#: its text, or None when nothing came back.
OneToken = Callable[[Mapping[str, Any], bool], Awaitable[str | None]]


class FirstTokenProbe:
    """The call-or-answer decision of one engine's upstream, by a biased greedy probe (see the module doc).

    The opener tokens are found once, on first use; while an upstream cannot tokenize, the decision is
    left to the model (:meth:`choose` returns None) and the tokens are looked for again after
    :data:`RETRY_AFTER_S`."""

    def __init__(self, openers: tuple[str, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.openers = openers
        #: Opener token id → its text; None until found.
        self.tokens: dict[int, str] | None = None
        self._lock = asyncio.Lock()
        self._clock = clock
        self._retry_at = 0.0

    async def opener_tokens(self, tokenize: Tokenize) -> dict[int, str]:
        """The opener tokens; empty while they cannot be found."""
        if self.tokens is not None or self._clock() < self._retry_at:
            return self.tokens or {}
        async with self._lock:
            if self.tokens is None and self._clock() >= self._retry_at:
                self.tokens = await _find_tokens(opener_candidates(self.openers), tokenize)
                if self.tokens is None:
                    self._retry_at = self._clock() + RETRY_AFTER_S
                    log.warning("the upstream did not tokenize the call openers; the model's own first token is "
                                "followed (looked for again in %.0f s)", RETRY_AFTER_S)  # fmt: skip
                else:
                    log.info("first-token probe: %d opener tokens", len(self.tokens))
        return self.tokens or {}

    async def choose(
        self, gate: TurnGate, tokenize: Tokenize, one_token: OneToken, temperature: float
    ) -> bool | str | None:
        """True: call. A string: answer, starting with it. None: the probe could not be run."""
        tokens = await self.opener_tokens(tokenize)
        if not tokens:
            return None
        bias = opener_bias(gate.policy.call_threshold)
        pick = await one_token({"logit_bias": {str(t): bias for t in tokens}}, True)
        if pick is None:
            return None
        opened = pick in tokens.values() or opens_call(pick, self.openers)
        # The server compared the odds; the gate records the decision (a mass at the threshold clears it).
        if gate.decide(gate.policy.call_threshold if opened else 0.0):
            return True
        if temperature <= 0 or not pick:
            return pick  # greedy's pick that opens no call: the local engine's at temperature 0
        sampled = await one_token({"logit_bias": {str(t): BANNED for t in tokens}}, False)
        return pick if sampled is None or opens_call(sampled, self.openers) else sampled


async def _find_tokens(candidates: list[str], tokenize: Tokenize) -> dict[int, str] | None:
    limit = asyncio.Semaphore(_TOKENIZE_CONCURRENCY)

    async def one(text: str) -> list[int] | None:
        async with limit:
            return await tokenize(text)

    results = await asyncio.gather(*(one(text) for text in candidates))
    if any(ids is None for ids in results):
        return None
    return {ids[0]: text for text, ids in zip(candidates, results, strict=True) if ids is not None and len(ids) == 1}


__all__ = ["BANNED", "FirstTokenProbe", "OneToken", "Tokenize", "TokenizeRoute", "opener_bias", "opener_candidates"]
