"""The arithmetic slot reuse stands on, checked on the installed llama.cpp (slow: ``-m model``).

A prompt cut into pieces of ``MIN_PIECE`` tokens or more, anywhere, must give the same KV and
logits, bit for bit, as the same prompt in one batch: that is what lets a request reuse any
canonical prefix (``toolrun.engines.llamacpp._slots``). With repacked weights the same holds for
cuts into whole row groups, and a piece's last ``n % 4`` tokens are not canonical. A llama.cpp
upgrade that changes either fails here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun.engines.llamacpp._context import SequenceContext
from toolrun.engines.llamacpp._model import LlamaModel
from toolrun.engines.llamacpp._slots import (
    MIN_PIECE,
    REPACKED_ROW_GROUP,
    canonical_stop,
    prompt_pieces,
    reusable,
)

pytestmark = pytest.mark.model

SECOND_MODEL = "@local/qwen2.5-coder-1.5b-instruct"
TOOLS_TEXT = " ".join(f"Tool number {i} looks up item {i * 7} and returns its price as JSON." for i in range(24))
PROMPT = (
    f"<|im_start|>system\nYou can call these tools. {TOOLS_TEXT}<|im_end|>\n"
    "<|im_start|>user\nWhat does item 42 cost?<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(
    scope="module",
    params=[(DEFAULT_MODEL, True), (SECOND_MODEL, True), (DEFAULT_MODEL, False), (SECOND_MODEL, False)],
    ids=["0.5b", "1.5b", "0.5b-repacked", "1.5b-repacked"],
)
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[LlamaModel, SequenceContext, int]]:
    """A model, a context of two sequences, and the row group its prompt pieces keep to."""
    name, batch_invariant = request.param
    model = LlamaModel(AsyncAI().weights(name), batch_invariant=batch_invariant)
    context = SequenceContext(model.model, n_seq=2, n_ctx_seq=1024, n_threads=2, n_batch=512)
    yield model, context, 1 if batch_invariant else REPACKED_ROW_GROUP
    context.close()
    model.close()


def last_logits(context: SequenceContext, prompt: list[int], cuts: list[tuple[int, int]], seq: int = 0) -> Any:
    context.clear()
    index = -1
    for start, stop in cuts:
        for pos in range(start, stop):
            index = context.batch.add(prompt[pos], pos, seq, pos == len(prompt) - 1)
        context.decode()
    return context.logits(index).copy()


def random_cuts(n: int, rng: random.Random, group: int) -> list[tuple[int, int]]:
    cuts, pos = [], 0
    while pos < n:
        stop = min(pos + rng.randint(MIN_PIECE // group, 120 // group) * group, n)
        if n - stop < MIN_PIECE:
            stop = n
        cuts.append((pos, stop))
        pos = stop
    return cuts


def test_any_cut_into_pieces_of_min_piece_tokens_gives_the_same_bits(
    loaded: tuple[LlamaModel, SequenceContext, int], request: pytest.FixtureRequest
) -> None:
    model, context, group = loaded
    prompt = model.tokenize(PROMPT.encode(), special=True)
    n = len(prompt)
    assert n > 400
    whole = last_logits(context, prompt, [(0, n)])
    rng = random.Random(7)
    plans = [prompt_pieces(0, n, size, group) for size in (16, 64, 100)]
    plans += [[(0, k - k % group), (k - k % group, n)] for k in (MIN_PIECE, 301, n - MIN_PIECE)]
    plans += [random_cuts(n, rng, group) for _ in range(3)]
    if "1.5b" in request.node.callspec.id:
        # The same kernels on larger matrices, at three times the cost per plan (it was half of this file's
        # time): the smallest pieces, the largest, a cut and a random plan; the 0.5B runs them all.
        plans = [plans[0], plans[2], plans[4], plans[6]]
    for cuts in plans:
        assert np.array_equal(last_logits(context, prompt, cuts), whole), cuts
    # In another sequence (its own KV stream) too.
    assert np.array_equal(last_logits(context, prompt, [(0, n)], seq=1), whole)


def test_a_reused_canonical_prefix_gives_the_same_bits(loaded: tuple[LlamaModel, SequenceContext, int]) -> None:
    """Pieces of any length held, what is canonical of them kept, the rest evaluated: as cold."""
    model, context, group = loaded
    prompt = model.tokenize(PROMPT.encode(), special=True)
    n = len(prompt)
    whole = last_logits(context, prompt, [(0, n)])
    context.clear()
    canonical = 0
    for start, stop in [(0, 101), (101, 301)]:  # 101 and 200 tokens: tails of 1 and 0 past a row group
        for pos in range(start, stop):
            context.batch.add(prompt[pos], pos, 0, False)
        context.decode()
        if canonical == start:
            canonical = canonical_stop(start, stop, group)
    keep = reusable(prompt[:301], canonical, prompt, group)
    assert keep == (301 if group == 1 else 100)
    context.remove(0, keep)
    index = -1
    for start, stop in prompt_pieces(keep, n, 512, group):
        for pos in range(start, stop):
            index = context.batch.add(prompt[pos], pos, 0, pos == n - 1)
        context.decode()
    assert np.array_equal(context.logits(index), whole)


def test_pieces_of_several_sequences_in_one_batch_give_the_bits_they_give_alone(
    loaded: tuple[LlamaModel, SequenceContext, int],
) -> None:
    """llama.cpp cuts such a batch where the shorter piece ends: 40 and 70 tokens leave 40 + 30."""
    model, context, group = loaded
    if group != 1:
        pytest.skip("on repacked weights the scheduler keeps each piece alone")
    prompt = model.tokenize(PROMPT.encode(), special=True)
    alone = [last_logits(context, prompt[:n], [(0, n)]) for n in (40, 70)]
    context.clear()
    indices = []
    for seq, n in enumerate((40, 70)):
        for pos in range(n):
            index = context.batch.add(prompt[pos], pos, seq, pos == n - 1)
        indices.append(index)
    context.decode()
    for index, expected in zip(indices, alone, strict=True):
        assert np.array_equal(context.logits(index), expected)
