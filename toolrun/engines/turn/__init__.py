"""The turn policy every engine that parses calls itself drives: one place for deciding whether to call,
holding and judging calls, trying one more, dropping repeats, and the grammars calls are written under.

* :class:`CallPolicy`: the catalog's judgement settings for one model, parsed once.
* :class:`TurnGate`: one turn's decisions (see :mod:`._gate`).
* :class:`GrammarCache`: the grammars a request decodes under, built off the decode thread.
* :mod:`._decide`: the decision tokens and probability shares read from a model's logits.
* :mod:`._judgment`: whether a call fits the request, is new, is grounded.
"""

from ._gate import Next, TurnGate, Verdict
from ._grammars import GrammarCache, RequestGrammars
from ._policy import CallPolicy
from ._repeats import RepeatCheck, without_repeats

__all__ = [
    "CallPolicy",
    "GrammarCache",
    "Next",
    "RepeatCheck",
    "RequestGrammars",
    "TurnGate",
    "Verdict",
    "without_repeats",
]
