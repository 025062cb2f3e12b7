"""One request's decode loop on a slot: tokens in, events out, the turn's decisions asked of its gate.

The loop runs on the scheduler's thread as a generator: it yields what it needs evaluated (its prompt,
then each token it keeps) and reads its logits through the sequence handle when resumed. What the turn
does — decide at the first token, write a call under the grammar, hold it and judge it, try one more,
answer in text from a prompt without the tools — is :class:`~toolrun.engines.turn.TurnGate`'s to say;
how (rewinding the KV cache to an opener, switching prompts in place, forbidding tokens) is this loop's.
"""

from __future__ import annotations

import codecs
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..._wire import Event, FinishReason, IndexedToolCall, final_event
from ...formats import PlainTextParser, StreamParser, ToolCallFormat
from .._base import GenerationRequest
from ..turn import CallPolicy, Next, RequestGrammars, TurnGate, Verdict
from ..turn._decide import DecisionTokens, continue_share, probability_mass
from ._fast_forward import GrammarProbe
from ._prefix_cache import common_prefix
from ._sampler import TokenSampler
from ._scheduler import Need, SavedSequence, SequenceHandle
from ._speculative import Speculation, SpeculationStats, call_skeletons

log = logging.getLogger("toolrun.engines.llamacpp")


class _Engine(Protocol):
    """What the loop needs of :class:`~toolrun.engines.llamacpp.LlamaCppEngine`."""

    policy: CallPolicy
    format: ToolCallFormat
    context_window_tokens: int
    speculative: bool
    speculation_stats: SpeculationStats

    def load(self) -> Any: ...

    def grammar_probe(self) -> GrammarProbe: ...

    def prompt_tokens(self, request: GenerationRequest) -> list[int]: ...

    def decisions(self, llm: Any) -> DecisionTokens: ...

    def opener_tokens(self, llm: Any) -> list[int]: ...

    def ask_relevance(
        self, llm: Any, seq: SequenceHandle, call: IndexedToolCall, request: GenerationRequest
    ) -> Generator[Need, None, tuple[float, SavedSequence] | None]: ...


class Cancelled(Exception):
    """The request was cancelled (its client went away): the loop stops where it is."""


@dataclass
class _Held:
    """Where the loop stood when the gate began holding a call, to go back there if it is not kept."""

    parser_state: object
    generated: int  # tokens generated before it


class LocalTurn:
    """The decode loop of one request (see the module doc)."""

    def __init__(
        self,
        engine: _Engine,
        request: GenerationRequest,
        prompt: list[int],
        grammars: RequestGrammars,
        seq: SequenceHandle,
        emit: Callable[[Any], None],
        cancelled: threading.Event,
    ) -> None:
        self.engine = engine
        self.llm = engine.load()
        self.request = request
        #: The request's prompt, tokenized (and its size checked) before the request reached this thread.
        self.prompt = prompt
        self.grammars = grammars
        self.seq = seq
        self._emit = emit
        self.cancelled = cancelled
        self.gate = TurnGate(engine.policy, request, reads_logits=True)
        self.parser = request.answer_parser(engine.format)
        self.generated: list[int] = []
        self.starts: list[int] = []  # text offset where each generated token's text begins
        self.text = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.call_sampling = request.sampling.for_calls(engine.policy.call_temperature)
        self.watching = request.uses_tools and not request.must_call  # text, until the model opens a call
        self.in_calls = request.must_call  # writing calls under the grammar
        self.held: _Held | None = None
        self.calls_seen = 0
        self.finish: FinishReason = "stop"
        needs_decisions = self.gate.deciding or self.gate.watches_calls or engine.policy.check_relevance
        self.decisions = engine.decisions(self.llm) if request.uses_tools and needs_decisions else None
        self.sampler: TokenSampler | None = None
        #: Drafts after each sampled token (None: speculation is off for this engine).
        self.speculation: Speculation | None = None

    # ------------------------------------------------------------------ the loop

    def run(self) -> Generator[Need, None, None]:
        prompt = self.prompt
        max_tokens = self.request.sampling.max_tokens
        self.prompt_count = len(prompt)  # the request's, even if its answer is written from another prompt
        if self.engine.speculative:
            calls = call_skeletons(self.request.callable_tools) if self.request.uses_tools else ""
            self.speculation = Speculation(
                self.engine.grammar_probe(),
                prompt,
                self.engine.speculation_stats,
                self.llm.tokenize(calls.encode(), add_bos=False, special=False) if calls else [],
            )
        yield self.seq.prompt(prompt)
        self._start_sampler()
        try:
            yield from self._tokens(max_tokens)
            self._finish_output()
            if self.gate.only_repeats:
                yield from self._answer_again_without_tools()
                self._finish_output()
        finally:
            self._close_sampler()
        if self.speculation is not None:
            mine = self.speculation.mine
            log.debug(
                "speculation: forced %d of %d drafted, lookup %d of %d, %d batches",
                mine.forced_accepted,
                mine.forced,
                mine.accepted,
                mine.drafted,
                mine.verifications,
            )
        if self.gate.sent_calls and self.finish == "stop":
            self.finish = "tool_calls"
        self._emit(final_event(self.prompt_count, len(self.generated), self.finish))

    def _tokens(self, max_tokens: int) -> Generator[Need, None, None]:
        """Sample and write tokens until the turn ends; a draft's pending KV is gone when this returns."""
        import llama_cpp as lc

        vocab = self.llm._model.vocab
        while True:
            if self.cancelled.is_set():
                raise Cancelled
            if len(self.generated) >= max_tokens:
                self.finish = "length"
                self._drop_draft()
                return
            if self._may_detour():  # the gate may ask a question or switch prompts: no draft in the KV
                self._drop_draft()
            forbid = yield from self._decisions_before_token()
            if isinstance(forbid, _EndTurn):
                self._drop_draft()
                return
            assert self.sampler is not None
            token = self.sampler.sample(forbid)
            if lc.llama_vocab_is_eog(vocab, token):
                self._drop_draft()
                return
            self._write(token)
            if self.watching and self.parser.in_call_region:
                self._drop_draft()
                yield from self._constrain_from_opener()
                continue
            if len(self.generated) >= max_tokens:  # nothing follows this token: no need to evaluate it
                self.finish = "length"
                self._drop_draft()
                return
            if not self._kept_from_draft(token):
                yield from self._evaluate(token, max_tokens)

    # ------------------------------------------------------------------ speculation

    def _evaluate(self, token: int, max_tokens: int) -> Generator[Need, None, None]:
        """Evaluate ``token``, and after it a draft of what may follow, in one batch (see ``_speculative``)."""
        speculation = self.speculation
        if speculation is None:
            yield self.seq.eval([token])
            return
        assert self.sampler is not None
        room = min(
            max_tokens - len(self.generated) - 1,  # the last token is never evaluated
            self.engine.context_window_tokens - self.seq.n_tokens - 1,
        )
        draft = speculation.draft(self.sampler.grammar, room)
        yield self.seq.eval([token, *draft], all_logits=bool(draft))
        if draft:
            self.seq.select_logits(0)

    def _kept_from_draft(self, token: int) -> bool:
        """Whether ``token`` is the drafted one, already evaluated: then its logits are read from the batch."""
        speculation = self.speculation
        if speculation is None or not speculation.pending:
            return False
        if speculation.take(token):
            self.seq.select_logits(speculation.row)
            return True
        self._drop_draft()
        return False

    def _drop_draft(self) -> None:
        """Remove the KV cells of draft tokens evaluated but not kept (the current logits stay readable)."""
        if self.speculation is not None and (dropped := self.speculation.drop()):
            self.seq.truncate(self.seq.n_tokens - dropped)

    def _may_detour(self) -> bool:
        """Whether the gate is about to judge a finished call (which may put a question or switch prompts)."""
        return self.in_calls and self.gate.watches_calls and self.parser.calls_emitted > self.calls_seen

    def _decisions_before_token(self) -> Generator[Need, None, list[int] | _EndTurn | None]:
        """What the gate decides before the next token: tokens to forbid for it, or the end of the turn."""
        decisions = self.decisions
        if decisions is None:
            return None
        if self.gate.deciding and not self.generated:
            assert self.sampler is not None
            if self.gate.decide(probability_mass(self.sampler.raw_logits(), decisions.openers)):
                self._constrain()  # decided: a call, written under the grammar from this very token
                if self.gate.holds_first:
                    self._hold(first=True)
                return None
            return decisions.openers  # decided: an answer in text
        if not (self.in_calls and self.gate.watches_calls and self.parser.calls_emitted > self.calls_seen):
            return None
        self.calls_seen = self.parser.calls_emitted
        if self.held is not None:
            verdict = yield from self._judge_held()
            if verdict is Verdict.END_BEFORE:
                return _END_TURN
            if verdict is Verdict.ANSWER_IN_TEXT:
                yield from self._answer_in_text()
                return decisions.openers
        step = self.gate.after_call(lambda: self._go_on_share(decisions))
        if step is Next.ANOTHER:
            return decisions.end  # decided: another call
        if step is Next.TRY:
            self.held = _Held(self._stream_parser().snapshot(), len(self.generated))
            return decisions.end  # try one more
        if step is Next.DONE:
            return _END_TURN
        return None

    # ------------------------------------------------------------------ calls

    def _judge_held(self) -> Generator[Need, None, Verdict]:
        """The held call is whole: keep it (its events go out), or go back to before it."""
        held = self.held
        assert held is not None
        self.held = None
        after_text = held.generated > 0
        verdict = self.gate.judge(after_text=after_text)
        call = self.gate.held_call
        assert call is not None
        if self.gate.kept_named:
            log.debug("relevance of %s: named and its values said, kept without asking", call["name"])
        if verdict is Verdict.ASK:
            asked = yield from self.engine.ask_relevance(self.llm, self.seq, call, self.request)
            if asked is not None:
                log.debug("relevance of %s: yes %.3f (keep at %.2f)", call["name"], asked[0], self.gate.ask_threshold)
            verdict = Verdict.KEEP if asked is None else self.gate.answer(asked[0], after_text=after_text)
            if asked is not None and verdict is Verdict.KEEP:
                yield from go_back(self.seq, asked[1])
        if verdict is Verdict.KEEP:
            for event in self.gate.release():
                self._emit(event)
            return verdict
        self.gate.discard()
        if verdict is Verdict.END_BEFORE:
            self._stream_parser().restore(held.parser_state)
            del self.generated[held.generated :], self.starts[held.generated :]
        return verdict

    def _constrain_from_opener(self) -> Generator[Need, None, None]:
        """The model opened a call after some text: go back to the opener and write the call under the grammar."""
        parser = self._stream_parser()
        pos = self.engine.format.find_opener(self.text, parser.extra_openers)
        assert pos is not None  # in the call region: an opener was seen
        keep = _token_containing(self.starts, pos)
        del self.generated[keep:], self.starts[keep:]
        self.text = self.text[:pos]
        self.decoder.reset()
        parser.reset_region()
        yield from rewind(self.seq, len(self.prompt) + keep)
        self._constrain()
        if self.gate.holds_first and not parser.calls_emitted:
            self._hold(first=True, generated=keep)

    def _constrain(self) -> None:
        grammar = self.grammars.call
        assert grammar is not None  # built for every request with tools
        self.watching, self.in_calls = False, True
        self._close_sampler()
        self.sampler = TokenSampler(self.llm, self.call_sampling, grammar.text, logits=self.seq.logits_pointer)
        self.parser.stream_arguments = grammar.exact

    def _hold(self, *, first: bool, generated: int | None = None) -> None:
        self.gate.hold(first=first)
        count = len(self.generated) if generated is None else generated
        self.held = _Held(self._stream_parser().snapshot(), count)

    # ------------------------------------------------------------------ text

    def _answer_in_text(self) -> Generator[Need, None, None]:
        """The first call was not for this request: answer it in text, from the prompt without the tools
        (with them in sight, the small model writes the call out as text instead)."""
        self._reset_output()
        self.prompt = yield from switch_prompt(self.seq, self.engine.prompt_tokens(replace(self.request, tools=[])))
        self._restart_lookup()
        self._close_sampler()
        self.sampler = TokenSampler(
            self.llm, self.request.sampling, None, self.engine.opener_tokens(self.llm), logits=self.seq.logits_pointer
        )
        self.watching = self.in_calls = False

    def _answer_again_without_tools(self) -> Generator[Need, None, None]:
        """Every call repeated one already answered: the turn is written again without tools, as a fresh
        request with ``tool_choice: "none"`` would be, so the model answers instead of looping."""
        log.info("the model only repeated calls it has results for; answering without tools")
        request = replace(self.request, tool_choice="none")
        self._reset_output()
        self.prompt = yield from switch_prompt(self.seq, self.engine.prompt_tokens(request))
        self._restart_lookup()
        self.prompt_count = len(self.prompt)
        self._close_sampler()
        grammar = self.grammars.schema
        self.sampler = TokenSampler(
            self.llm, request.sampling, grammar, self.engine.opener_tokens(self.llm), logits=self.seq.logits_pointer
        )
        self.watching = self.in_calls = False
        self.finish = "stop"
        yield from self._tokens(request.sampling.max_tokens)

    def _finish_output(self) -> None:
        held = self.held
        if held is not None:  # the output ended inside a held call: it is not kept
            self.held = None
            self.gate.discard()
            self._stream_parser().restore(held.parser_state)
            del self.generated[held.generated :], self.starts[held.generated :]
            self.finish = "stop"
        for event in self.parser.finish(cut=self.finish == "length"):
            self.send(event)

    def _restart_lookup(self) -> None:
        if self.speculation is not None:
            self.speculation.restart(self.prompt)

    def _reset_output(self) -> None:
        self.parser = PlainTextParser()
        del self.generated[:], self.starts[:]
        self.text = ""
        self.decoder.reset()

    # ------------------------------------------------------------------ plumbing

    def _start_sampler(self) -> None:
        request = self.request
        grammar: str | None = None
        banned: list[int] = []
        if request.must_call:
            assert self.grammars.call is not None
            grammar = self.grammars.call.text
            self.parser.stream_arguments = self.grammars.call.exact
        elif self.grammars.schema is not None:
            grammar = self.grammars.schema
        if not request.uses_tools:
            # With tools off, the model must not open a call (it may want to, having seen earlier calls):
            # the openers that are single tokens (Qwen's <tool_call>) are banned outright.
            banned = self.engine.opener_tokens(self.llm)
        sampling = self.call_sampling if request.must_call else request.sampling
        self.sampler = TokenSampler(self.llm, sampling, grammar, banned, logits=self.seq.logits_pointer)

    def _close_sampler(self) -> None:
        sampler, self.sampler = self.sampler, None
        if sampler is None:
            return
        if sampler.grammar is not None and sampler.rejections:
            log.debug("grammar rejected the model's first choice %d times", sampler.rejections)
        sampler.close()

    def _go_on_share(self, decisions: DecisionTokens) -> float:
        share = continue_share(self._raw_logits(), decisions)
        log.debug("another call: share %.3f (go on at %.2f)", share, self.engine.policy.another_call_threshold)
        return share

    def _raw_logits(self) -> Any:
        assert self.sampler is not None
        return self.sampler.raw_logits()

    def _write(self, token: int) -> None:
        piece = self.decoder.decode(self.llm.detokenize([token], special=True))
        self.generated.append(token)
        self.starts.append(len(self.text))
        if self.speculation is not None:
            self.speculation.written(token)
        self.text += piece
        for event in self.parser.feed(piece):
            self.send(event)

    def send(self, event: Event) -> None:
        for out in self.gate.events([event]):
            self._emit(out)

    def _stream_parser(self) -> StreamParser:
        assert isinstance(self.parser, StreamParser)
        return self.parser


class _EndTurn:
    """Returned by :meth:`LocalTurn._decisions_before_token` when the turn ends before the next token."""


_END_TURN = _EndTurn()


def switch_prompt(seq: SequenceHandle, prompt: list[int]) -> Generator[Need, None, list[int]]:
    """Make ``seq`` hold ``prompt`` instead of what it holds: keep the common prefix, evaluate the rest."""
    common = min(common_prefix(seq.tokens, prompt), len(prompt) - 1)  # the last token again, for its logits
    seq.truncate(common)
    for start in range(common, len(prompt), _SWITCH_CHUNK):
        yield seq.eval(prompt[start : start + _SWITCH_CHUNK])
    return prompt


#: Tokens evaluated per step when a request switches prompts (the step's batch holds the others' tokens too).
_SWITCH_CHUNK = 128


def go_back(seq: SequenceHandle, saved: SavedSequence) -> Generator[Need, None, None]:
    """Make ``seq`` hold again what it held before a detour (a question in a conversation of its own)."""
    seq.restore(saved)
    yield from rewind(seq, seq.n_tokens)


def rewind(seq: SequenceHandle, n_tokens: int) -> Generator[Need, None, None]:
    """Drop the KV after the first ``n_tokens``, evaluating the last one kept again to refresh its logits."""
    last = seq.tokens[n_tokens - 1]
    seq.truncate(n_tokens - 1)
    yield seq.eval([last])


def _token_containing(starts: list[int], pos: int) -> int:
    """Index of the generated token whose text holds offset ``pos`` (it and all after it are dropped)."""
    keep = 0
    for i, s in enumerate(starts):
        if s <= pos:
            keep = i
    return keep


__all__ = ["Cancelled", "LocalTurn", "go_back", "rewind", "switch_prompt"]
