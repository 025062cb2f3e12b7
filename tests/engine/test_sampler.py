"""The token sampler on given logits: the chain picks from the logits of *this* token, whatever an
earlier token's samplers did to the candidate array (slow: ``-m model``, for the vocabulary)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from toolrun.engines import SamplingParams
from toolrun.engines.llamacpp._model import LlamaModel
from toolrun.engines.llamacpp._sampler import TokenSampler

pytestmark = pytest.mark.model


class Logits:
    """A logits row the sampler reads through a pointer, as it reads llama.cpp's."""

    def __init__(self, n_vocab: int) -> None:
        self.row = np.zeros(n_vocab, dtype=np.float32)

    def pointer(self) -> ctypes._Pointer[ctypes.c_float]:
        return self.row.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def peak(self, *tokens: int) -> None:
        """Every token at 0 but ``tokens``, which get 30, 29, 28, …"""
        self.row[:] = 0.0
        for rank, token in enumerate(tokens):
            self.row[token] = 30.0 - rank


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0),
        SamplingParams(temperature=0.6, seed=1),
        SamplingParams(temperature=1.0, top_k=3, seed=2),  # sorts and cuts the candidates
        SamplingParams(temperature=1.0, top_p=0.5, seed=3),  # sorts them
    ],
    ids=["greedy", "default", "top_k", "top_p"],
)
def test_each_token_is_drawn_from_its_own_logits(model: LlamaModel, params: SamplingParams) -> None:
    logits = Logits(model.n_vocab())
    sampler = TokenSampler(model, params, None, logits=logits.pointer)
    try:
        # One token 30 logits above the rest: every chain must pick it. A chain that sorts moves the top
        # candidates to the front of the array, so the next hot token is one whose place was taken.
        for hot in (5000, 0, 5000, 1, 70000, 2, 70000, 0, 151000):
            logits.peak(hot)
            assert sampler.sample() == hot
        # A forbidden token is never drawn: the next best is.
        logits.peak(11, 22)
        assert sampler.sample(forbid=[11]) == 22
        logits.peak(33)
        assert sampler.sample() == 33  # and the ban does not outlive its token
    finally:
        sampler.close()


@pytest.mark.parametrize("params", [SamplingParams(temperature=0), SamplingParams(temperature=0.6, seed=4)])
def test_a_banned_token_is_never_drawn_even_when_it_leads(model: LlamaModel, params: SamplingParams) -> None:
    logits = Logits(model.n_vocab())
    sampler = TokenSampler(model, params, None, banned=[151657], logits=logits.pointer)
    try:
        logits.peak(151657, 40)
        assert sampler.sample() == 40
        logits.peak(7, 151657)
        assert sampler.sample() == 7
    finally:
        sampler.close()


def test_greedy_takes_the_first_of_equal_logits_as_llama_cpp_does(model: LlamaModel) -> None:
    logits = Logits(model.n_vocab())
    sampler = TokenSampler(model, SamplingParams(temperature=0), None, logits=logits.pointer)
    try:
        logits.row[:] = 0.0
        logits.row[[900, 300, 600]] = 5.0
        assert sampler.sample() == 300
        assert sampler.sample(forbid=[300]) == 600  # the chain's own path, which must agree
    finally:
        sampler.close()


@pytest.mark.parametrize("params", [SamplingParams(temperature=0), SamplingParams(temperature=0.6, seed=5)])
def test_the_grammar_overrides_a_choice_that_breaks_it(model: LlamaModel, params: SamplingParams) -> None:
    (brace,) = model.tokenize(b"{", special=False)
    logits = Logits(model.n_vocab())
    for hot in (brace, 1000):  # its own choice when it fits, else one the grammar allows
        sampler = TokenSampler(model, params, 'root ::= "{" [a-z]*', logits=logits.pointer)
        try:
            logits.peak(hot)
            token = sampler.sample()
            if hot == brace:
                assert token == brace and sampler.rejections == 0
            else:
                assert model.detokenize([token]).startswith(b"{") and sampler.rejections == 1
        finally:
            sampler.close()
