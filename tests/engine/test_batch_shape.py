"""The arithmetic slot reuse stands on, checked on the installed llama.cpp (slow: ``-m model``).

A prompt cut into pieces of ``MIN_PIECE`` tokens or more, anywhere, must give the same KV and
logits, bit for bit, as the same prompt in one batch: that is what lets a request reuse any
canonical prefix (``toolrun.engines.llamacpp._slots``). A llama.cpp upgrade that changes it fails here.
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
from toolrun.engines.llamacpp._slots import MIN_PIECE, prompt_pieces

pytestmark = pytest.mark.model

SECOND_MODEL = "@local/qwen2.5-coder-1.5b-instruct"
TOOLS_TEXT = " ".join(f"Tool number {i} looks up item {i * 7} and returns its price as JSON." for i in range(24))
PROMPT = (
    f"<|im_start|>system\nYou can call these tools. {TOOLS_TEXT}<|im_end|>\n"
    "<|im_start|>user\nWhat does item 42 cost?<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module", params=[DEFAULT_MODEL, SECOND_MODEL])
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[LlamaModel, SequenceContext]]:
    model = LlamaModel(AsyncAI().weights(request.param), batch_invariant=True)
    context = SequenceContext(model.model, n_seq=2, n_ctx_seq=1024, n_threads=2, n_batch=512)
    yield model, context
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


def random_cuts(n: int, rng: random.Random) -> list[tuple[int, int]]:
    cuts, pos = [], 0
    while pos < n:
        stop = min(pos + rng.randint(MIN_PIECE, 120), n)
        if n - stop < MIN_PIECE:
            stop = n
        cuts.append((pos, stop))
        pos = stop
    return cuts


def test_any_cut_into_pieces_of_min_piece_tokens_gives_the_same_bits(
    loaded: tuple[LlamaModel, SequenceContext],
) -> None:
    model, context = loaded
    prompt = model.tokenize(PROMPT.encode(), special=True)
    assert len(prompt) > 400
    whole = last_logits(context, prompt, [(0, len(prompt))])
    rng = random.Random(7)
    plans = [prompt_pieces(0, len(prompt), size) for size in (16, 64, 100)]
    plans += [[(0, k), (k, len(prompt))] for k in (MIN_PIECE, 301, len(prompt) - MIN_PIECE)]
    plans += [random_cuts(len(prompt), rng) for _ in range(3)]
    for cuts in plans:
        assert np.array_equal(last_logits(context, prompt, cuts), whole), cuts
    # In another sequence (its own KV stream) too.
    assert np.array_equal(last_logits(context, prompt, [(0, len(prompt))], seq=1), whole)
