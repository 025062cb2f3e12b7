"""Speculative decoding on one sequence: drafts evaluated in one batch, kept as far as the model agrees.

After each token it samples, the decode loop appends a *draft* — the text the grammar forces next
(:mod:`._fast_forward`), else tokens copied from the prompt (:mod:`._lookup`) — and evaluates the token
and the draft in one ``llama_decode`` with logits for every position. It then samples at each position
in turn, exactly as plain decoding would (same sampler, same grammar, same random draws), and keeps the
draft while the sampled token is the drafted one; the first token that differs is the model's own and
ends the draft, whose remaining KV cells are removed. For a draft that is one fixed sequence of tokens
this *is* the standard speculative acceptance rule: the drafted token is kept with the probability the
sampler gives it, and otherwise the token comes from the sampler's distribution without it — so greedy
output is the model's greedy output and sampled output keeps its distribution (and, with a seed, its
very draws). Drafts go through the grammar before they are evaluated; a lookup draft's length follows
its acceptance (longer after a draft kept whole, shorter after one cut).

The only difference from plain decoding is arithmetic: a token evaluated in a batch of several gets
logits that differ from a one-token step in the last bits (see docs/slots.md), so a near-tie could go the
other way. ``TOOLRUN_SPECULATIVE=0`` turns all of it off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..._types import ToolSpec
from ._context import MAX_LOGIT_ROWS
from ._fast_forward import GrammarProbe
from ._lookup import PromptLookup

#: Lookup drafts start at this many tokens and adapt between 1 and ``MAX_LOOKUP_DRAFT``.
START_LOOKUP_DRAFT = 4
MAX_LOOKUP_DRAFT = 12
#: A draft and the token before it share one batch's logit rows.
MAX_DRAFT = MAX_LOGIT_ROWS - 1


@dataclass
class SpeculationStats:
    """Tokens drafted and kept, per engine (the worker thread writes; small ints: a torn read is harmless)."""

    forced: int = 0  # drafted by grammar fast-forward
    forced_accepted: int = 0
    drafted: int = 0  # drafted by prompt lookup
    accepted: int = 0
    verifications: int = 0  # batches that evaluated a draft

    def as_dict(self) -> dict[str, int]:
        return {
            "spec_forced_tokens": self.forced,
            "spec_forced_accepted_tokens": self.forced_accepted,
            "spec_drafted_tokens": self.drafted,
            "spec_accepted_tokens": self.accepted,
            "spec_verify_batches": self.verifications,
        }


class Speculation:
    """One request's drafts: what follows each sampled token, and whether the model kept it."""

    def __init__(
        self, probe: GrammarProbe, prompt: list[int], stats: SpeculationStats, calls: Sequence[int] = ()
    ) -> None:
        """``calls``: what the request's calls usually look like (:func:`call_skeletons`, tokenized)."""
        self.probe = probe
        self.stats = stats
        self._calls = list(calls)
        self.lookup = PromptLookup(prompt, self._calls)
        self.limit = START_LOOKUP_DRAFT
        #: Drafted tokens evaluated but not yet sampled (their KV cells follow the sequence's last token).
        self.pending: list[int] = []
        self.row = 0  # which logits row of the last batch the sampler reads
        self._n_forced = 0  # the pending draft's tokens from the grammar (first), then from the lookup
        self._n_copied = 0
        self._kept = 0  # tokens of the pending draft kept so far
        #: This request's own counts, for its debug log line.
        self.mine = SpeculationStats()

    def restart(self, prompt: list[int]) -> None:
        """The output starts again from ``prompt`` (another prompt for a text answer)."""
        self.lookup = PromptLookup(prompt, self._calls)

    def written(self, token: int) -> None:
        self.lookup.extend([token])

    def draft(self, grammar: Any, room: int) -> list[int]:
        """The draft to evaluate after the token just sampled (``grammar``: the sampler's, if any)."""
        room = min(room, MAX_DRAFT)
        if room <= 0:
            return []
        forced = self.probe.forced_tokens(grammar)[:room] if grammar is not None else []
        copied: list[int] = []
        if len(forced) < room:
            # The forced text's last token may merge with the free text after it (" {" before '"'): it is
            # held back and the lookup goes on from the token before it, so the draft offers what was
            # written there before (' {"'); where the lookup has nothing, the forced token stays.
            held = forced[-1:]
            forced = forced[:-1]
            copied = self.lookup.draft(min(self.limit, room - len(forced)), after=forced)
            if copied and grammar is not None:
                copied = copied[: self.probe.admitted_prefix(grammar, forced + copied) - len(forced)]
            if not copied:
                forced += held
        draft = forced + copied
        self.pending, self.row, self._kept = list(draft), 0, 0
        self._n_forced, self._n_copied = len(forced), len(copied)
        if draft:
            for stats in (self.stats, self.mine):
                stats.verifications += 1
                stats.forced += len(forced)
                stats.drafted += len(copied)
        return draft

    def take(self, token: int) -> bool:
        """Whether ``token``, just sampled, is the next drafted one (then its logits row is next)."""
        if not self.pending or self.pending[0] != token:
            return False
        self.pending.pop(0)
        forced = self._kept < self._n_forced
        self.row += 1
        self._kept += 1
        for stats in (self.stats, self.mine):
            if forced:
                stats.forced_accepted += 1
            else:
                stats.accepted += 1
        if not self.pending:
            self._adapt(whole=True)
        return True

    def drop(self) -> int:
        """The rest of the draft is not kept: how many evaluated tokens to remove."""
        dropped = len(self.pending)
        if dropped:
            self.pending = []
            self._adapt(whole=False)
        return dropped

    def _adapt(self, *, whole: bool) -> None:
        """A lookup draft kept whole grows the next one; one cut short makes it as long as what was kept."""
        if not self._n_copied:
            return
        kept = max(0, self._kept - self._n_forced)
        self.limit = min(self.limit + 2, MAX_LOOKUP_DRAFT) if whole else max(1, kept + 1)


def call_skeletons(tools: Iterable[ToolSpec]) -> str:
    """A call of each tool as JSON, its values placeholders: a lookup draft for what the grammar leaves free
    but the model writes the same way every time (``": "`` after a key, ``"}}`` after the last value)."""
    lines = []
    for tool in tools:
        properties = tool.parameters.get("properties")
        items = list(properties.items())[:_MAX_SKELETON_KEYS] if isinstance(properties, dict) else []
        arguments = {name: _placeholder(schema) for name, schema in items}
        lines.append(json.dumps({"name": tool.name, "arguments": arguments}, ensure_ascii=False))
    return "\n".join(lines)


def _placeholder(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(str(kind), "")


#: Skeletons stay small: a tool with hundreds of properties adds a line, not a page.
_MAX_SKELETON_KEYS = 32


__all__ = ["MAX_DRAFT", "Speculation", "SpeculationStats", "call_skeletons"]
