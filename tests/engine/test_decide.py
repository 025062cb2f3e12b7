"""The decisions' arithmetic on made-up logits (no model)."""

from __future__ import annotations

import numpy as np

from toolrun.engines.turn._decide import DecisionTokens, continue_share

# Token ids of a toy vocabulary: 0 "<" (opens a call), 1 "\n" (the separator), 2 end of turn, 3 "x".
TOKENS = DecisionTokens(openers=[0], end=[2], separators=[1], yes=[], no=[])


def logits_for(probabilities: list[float]) -> np.ndarray:
    return np.log(np.asarray(probabilities, dtype=np.float64)).astype(np.float32)


def test_after_a_call_the_next_calls_opener_counts_as_going_on() -> None:
    # Qwen writes "</tool_call>\n" and then "<": with the separator already written, the opener is
    # what going on looks like (the 1.5B's 0.998 on "<"), and the separator's mass is noise beside it.
    share = continue_share(logits_for([0.996, 0.001, 0.002, 0.001]), TOKENS)
    assert share > 0.99
    assert continue_share(logits_for([0.001, 0.001, 0.997, 0.001]), TOKENS) < 0.01


def test_a_separator_still_counts_as_going_on() -> None:
    assert continue_share(logits_for([0.001, 0.9, 0.098, 0.001]), TOKENS) > 0.9
