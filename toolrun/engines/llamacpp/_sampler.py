"""Token sampling: llama.cpp's sampler chain, plus a grammar consulted only when the model's choice breaks it."""

from __future__ import annotations

import ctypes
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..._errors import EngineError
from .._base import SamplingParams

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class TokenSampler:
    """A llama.cpp sampler chain plus an optional grammar consulted lazily (see module doc)."""

    def __init__(
        self,
        llm: Any,
        params: SamplingParams,
        grammar: str | None,
        banned: Sequence[int] = (),
        *,
        logits: Callable[[], Any],
    ) -> None:
        """``logits()`` gives the pointer to the logits of the sequence's last evaluated token."""
        import llama_cpp as lc

        self._lc = lc
        self._logits = logits
        vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self.chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())

        def add(stage: Any) -> None:
            lc.llama_sampler_chain_add(self.chain, stage)

        if banned:
            biases = (lc.llama_logit_bias * len(banned))(*[lc.llama_logit_bias(t, -math.inf) for t in banned])
            add(lc.llama_sampler_init_logit_bias(self._n_vocab, len(banned), biases))
        penalised = bool(params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty)
        if penalised:
            add(
                lc.llama_sampler_init_penalties(
                    64, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
                )
            )
        #: The chain is greedy alone: its choice is the first highest logit, read without filling the
        #: candidate array (a banned token at the top sends it the long way).
        self._argmax = False
        if params.temperature <= 0:
            add(lc.llama_sampler_init_greedy())
            self._argmax = not penalised
        else:
            if params.top_k > 0:
                add(lc.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(lc.llama_sampler_init_top_p(params.top_p, 1))
            add(lc.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            add(lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        self.grammar = None
        if grammar is not None:
            self.grammar = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not self.grammar:
                lc.llama_sampler_free(self.chain)
                raise EngineError("llama.cpp rejected the generated grammar")
        self._banned = frozenset(banned)
        self._ids = np.arange(self._n_vocab, dtype=np.intc)
        self._cands = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
        self._cands["id"] = self._ids
        #: Whether a sampler reordered or cut the candidates (top-k, top-p sort them): then their ids are
        #: written again before the next token. Greedy, temperature and the final draw leave them in place,
        #: and no stage reads ``p`` before computing it, so most tokens only copy the logits in.
        self._ids_moved = False
        self._cands_ptr = self._cands.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
        self._one = lc.llama_token_data(0, 0.0, 0.0)
        self.rejections = 0

    def _candidates(self, forbid: list[int] | None = None) -> Any:
        lc = self._lc
        logits = np.ctypeslib.as_array(self._logits(), shape=(self._n_vocab,))
        if self._ids_moved:
            self._cands["id"] = self._ids
            self._ids_moved = False
        self._cands["logit"] = logits
        if forbid:
            self._cands["logit"][forbid] = -np.inf
        return lc.llama_token_data_array(self._cands_ptr, self._n_vocab, -1, False)

    def raw_logits(self) -> np.ndarray[Any, Any]:
        """The model's logits for the next token, before any sampler (a view: copy to keep)."""
        return np.ctypeslib.as_array(self._logits(), shape=(self._n_vocab,))

    def _apply(self, sampler: Any, cur: Any) -> None:
        self._lc.llama_sampler_apply(sampler, ctypes.byref(cur))
        if cur.sorted or cur.size != self._n_vocab:
            self._ids_moved = True

    def _choose(self, forbid: list[int] | None) -> int:
        """The chain's choice, before any grammar."""
        if self._argmax and not forbid:
            token = int(np.argmax(self.raw_logits()))  # what llama.cpp's greedy sampler picks
            if token not in self._banned:
                return token
        cur = self._candidates(forbid)
        self._apply(self.chain, cur)
        return int(cur.data[cur.selected].id)

    def sample(self, forbid: list[int] | None = None) -> int:
        lc = self._lc
        token = self._choose(forbid)
        if self.grammar is not None:
            self._one.id, self._one.logit, self._one.p = ctypes.c_int32(token), 1.0, 0.0
            single = lc.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
            lc.llama_sampler_apply(self.grammar, ctypes.byref(single))
            if math.isinf(self._one.logit):
                # The model's choice breaks the grammar: pay for the full constrained pass.
                self.rejections += 1
                cur = self._candidates(forbid)
                self._apply(self.grammar, cur)
                self._apply(self.chain, cur)
                token = cur.data[cur.selected].id
            lc.llama_sampler_accept(self.grammar, token)
        lc.llama_sampler_accept(self.chain, token)
        return int(token)

    def close(self) -> None:
        lc = self._lc
        lc.llama_sampler_free(self.chain)
        if self.grammar is not None:
            lc.llama_sampler_free(self.grammar)
        self.chain = self.grammar = None
