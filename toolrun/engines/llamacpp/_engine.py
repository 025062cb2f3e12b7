"""The local engine: llama.cpp through llama-cpp-python, on the CPU.

Why a decode loop of its own rather than ``create_chat_completion``:

* the parser must see what the model really wrote, special tokens such as
  ``<tool_call>`` included (llama-cpp-python's text path drops them);
* with ``tool_choice="auto"`` the model writes freely until it opens a call,
  and only then is the call constrained: the loop notices the opener (also
  drift such as a ```json fence), rolls the KV cache back to it and continues
  under the format's grammar;
* grammar sampling over Qwen's 152k-token vocabulary halves decode speed if
  applied to every candidate, so the loop samples without the grammar first
  and consults it for that one token, falling back to the full grammar pass
  only when the token is rejected (what llama.cpp's own ``common_sampler`` does).

Several requests share one llama context, llama-server style (:mod:`._scheduler`):
each runs in a *slot* (a sequence of the context) and all that are generating
decode together, one batch per step. A request goes to the slot holding the
longest warm prefix of its prompt — its client's tool list, the earlier rounds
of its tool loop — and prefixes beyond the slots are kept in RAM within a
budget (:mod:`._prefix_cache`). Reuse is result-neutral (:mod:`._slots`): with
``temperature: 0`` a request's answer does not depend on what ran before it, nor,
with ``batch_invariant`` (the default), on what decodes beside it.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

from ..._errors import ContextOverflowError, EngineError, ModelUnavailableError
from ..._grounding import conversation_text
from ..._wire import Event, FinishReason, IndexedToolCall, final_event
from ...formats import (
    ControlTokens,
    PlainTextParser,
    ShieldedPrompt,
    StreamParser,
    ToolCallFormat,
)
from .._base import Engine, GenerationRequest
from .._grammars import GrammarCache, RequestGrammars
from .._judgment import (
    first_call_fits,
    further_call_kept,
    named_and_said,
    relevance_examples,
    relevance_messages,
    required_values_said,
)
from .._prompt import render_prompt
from ._context import kv_bytes_per_token
from ._decide import DecisionTokens, continue_share, decision_tokens, probability_mass, yes_share
from ._model import LlamaModel
from ._prefix_cache import common_prefix
from ._sampler import TokenSampler
from ._scheduler import Job, Need, Scheduler, SequenceHandle
from ._slots import REPACKED_ROW_GROUP

log = logging.getLogger("toolrun.engines.llamacpp")


class _Cancelled(Exception):
    pass


#: Defaults, each overridable by the constructor or the environment (for ``toolrun serve``).
DEFAULT_SLOTS = 4
DEFAULT_PREFIX_CACHE_MB = 256


class LlamaCppEngine(Engine):
    """One GGUF model in one llama.cpp context, its slots decoded together by one worker thread.

    ``slots`` (``$TOOLRUN_SLOTS``, default 4): requests decoded at once; each slot holds
    ``context_window`` tokens of KV (12 KB a token for the 0.5B model, 28 KB for the 1.5B).
    ``prefix_cache_mb`` (``$TOOLRUN_PREFIX_CACHE_MB``, default 256): RAM for warm prefixes
    beyond the slots, least recently used evicted first; 0 keeps only what the slots hold.
    ``batch_invariant`` (``$TOOLRUN_BATCH_INVARIANT``, default 1): load the weights without llama.cpp's
    CPU repacking, whose kernels sum differently for batches of 4+ tokens, so that a greedy answer does
    not depend on the other requests decoded in the same batch. Reuse is exact on either kind of weights;
    repacked ones evaluate prompts slower on an AVX-512 CPU (1.04x for the 0.5B, 1.38x for the 1.5B) and
    decode one sequence about 5 % quicker (see docs/slots.md).
    """

    def __init__(
        self,
        model_path: str,
        tool_format: ToolCallFormat,
        *,
        context_window: int = 8192,
        n_threads: int | None = None,
        chat_template: str | None = None,
        call_threshold: float = 0.0,
        another_call_threshold: float = 0.0,
        check_relevance: bool = False,
        ask_relevance: float = 0.0,
        ask_relevance_unsaid: float = 0.0,
        try_another_call: bool = False,
        call_temperature: float | None = None,
        parallel_hint: str = "",
        slots: int | None = None,
        prefix_cache_mb: float | None = None,
        batch_invariant: bool | None = None,
    ) -> None:
        self.model_path = model_path
        self.format = tool_format
        self.context_window = context_window
        self._n_ctx = context_window  # the same, typed int (the Engine attribute may be None)
        self.n_threads = n_threads or os.cpu_count() or 1
        self._chat_template_override = chat_template
        #: With tool_choice "auto": call a tool when the model's own probability of opening a call at its
        #: first token is at least this, and answer in text otherwise (0: sample the choice). See _decide.
        self.call_threshold = call_threshold
        #: After a call closes: write another when the model's share of "go on" is at least this
        #: (0: sample the choice).
        self.another_call_threshold = another_call_threshold
        #: With tool_choice "auto", the turn's first call is held until it is written and kept only if it fits
        #: the request (see toolrun._grounding.fits_request); otherwise the model answers in text.
        self.check_relevance = check_relevance
        #: With check_relevance: a first call that fits is also put to the model as a yes/no question in a
        #: conversation of its own, and kept only if its share of "yes" is at least this (0: never asked).
        self.ask_relevance = ask_relevance
        #: With ask_relevance: the share asked instead of a first call whose required values the user did not
        #: all say (see _judgment.required_values_said); under ask_relevance it changes nothing.
        self.ask_relevance_unsaid = ask_relevance_unsaid
        #: When the model would end its turn after a call, let it write one more and keep it only if
        #: it is new and its values come from the conversation (small models stop after one call).
        self.try_another_call = try_another_call
        #: Calls' arguments are written at this temperature when it is lower than the request's (None:
        #: the request's); the text keeps the request's.
        self.call_temperature = call_temperature
        #: A sentence after the tool list when the request offers one tool and allows several calls of it.
        self.parallel_hint = parallel_hint
        self._decision_tokens: DecisionTokens | None = None
        #: The relevance question's worked answers, evaluated once: their tokens and KV (see _model_agrees).
        self._relevance_examples: tuple[list[int], tuple[list[int], int, bytes]] | None = None
        self.slots = max(1, int(slots if slots is not None else _env_number("TOOLRUN_SLOTS", DEFAULT_SLOTS)))
        cache_mb = (
            prefix_cache_mb
            if prefix_cache_mb is not None
            else _env_number("TOOLRUN_PREFIX_CACHE_MB", DEFAULT_PREFIX_CACHE_MB)
        )
        self.prefix_cache_bytes = max(0, int(cache_mb * 2**20))
        self.batch_invariant = (
            batch_invariant if batch_invariant is not None else bool(_env_number("TOOLRUN_BATCH_INVARIANT", 1))
        )
        self._llm: Any = None
        self._scheduler: Scheduler | None = None
        self._template: str | None = None
        self._bos = ""
        self._eos = ""
        self._control = ControlTokens()
        self._load_lock = threading.Lock()
        self.grammars = GrammarCache(tool_format)

    # ------------------------------------------------------------ loading

    def load(self) -> Any:
        """Load the model and create the slots' context (once); returns the model (tokenizer and vocabulary)."""
        with self._load_lock:
            if self._llm is None:
                if not os.path.exists(self.model_path):
                    raise ModelUnavailableError(f"model file not found: {self.model_path}")
                try:
                    llm = LlamaModel(self.model_path, batch_invariant=self.batch_invariant)
                except Exception as exc:  # llama.cpp reports load failures as plain ValueErrors
                    raise ModelUnavailableError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
                try:
                    self._scheduler = Scheduler(
                        llm.model,
                        n_slots=self.slots,
                        n_ctx_seq=self._n_ctx,
                        n_threads=self.n_threads,
                        cache_bytes=self.prefix_cache_bytes,
                        row_group=1 if self.batch_invariant else REPACKED_ROW_GROUP,
                    )
                except BaseException:
                    llm.close()
                    raise
                template = self._chat_template_override or llm.metadata.get("tokenizer.chat_template")
                # A template that never mentions tools would silently drop them: use the format's own.
                if not template or "tools" not in template:
                    template = self.format.fallback_template
                self._template = template
                self._control = ControlTokens(llm.control_texts())
                self._bos = _token_text(llm, llm.token_bos())
                self._eos = _token_text(llm, llm.token_eos())
                self._llm = llm
        return self._llm

    # --------------------------------------------------------- prompting

    def render_prompt(self, request: GenerationRequest) -> ShieldedPrompt:
        self.load()
        return render_prompt(
            self.format,
            self._template or "",
            request,
            control=self._control,
            bos_token=self._bos,
            eos_token=self._eos,
            parallel_hint=self.parallel_hint,
        )

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids: the template's control tokens parsed, the request's text only ever as text
        (see :mod:`toolrun.formats._shield`)."""
        llm = self.load()
        return self.render_prompt(request).tokens(
            special=lambda text: llm.tokenize(text.encode(), add_bos=False, special=True),
            plain=lambda text: llm.tokenize(text.encode(), add_bos=False, special=False),
        )

    # --------------------------------------------------------- generation

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        if self._scheduler is None:
            await asyncio.to_thread(self.load)
        scheduler = self._scheduler
        assert scheduler is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        finished: asyncio.Future[None] = loop.create_future()
        done = object()

        def emit(event: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the caller's event loop is gone: nobody is listening
                cancelled.set()

        def on_done(error: BaseException | None) -> None:
            if error is not None and not isinstance(error, _Cancelled):
                emit(error)
            emit(done)

            def settle() -> None:
                if not finished.done():
                    finished.set_result(None)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass

        # Grammars come from schemas the request carries: built here, never on the thread that decodes for all.
        grammars = await asyncio.to_thread(self.grammars.for_request, request)
        job = Job(lambda seq: self._decode(request, grammars, seq, emit, cancelled), cancelled, on_done)
        scheduler.submit(job)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            scheduler.cancel(job)
            # Keep the request's lifetime tied to its decoding: a disconnect stops it before this returns.
            await asyncio.shield(finished)

    def _decode(
        self,
        request: GenerationRequest,
        grammars: RequestGrammars,
        seq: SequenceHandle,
        emit: Callable[[Any], None],
        cancelled: threading.Event,
    ) -> Generator[Need, None, None]:
        """One request's decode loop, run by the scheduler: it yields what it needs evaluated (its
        prompt, then each token it keeps) and reads its logits through ``seq`` when resumed."""
        import llama_cpp as lc

        llm = self.load()
        prompt_tokens = self.prompt_tokens(request)
        max_tokens = request.sampling.max_tokens
        if len(prompt_tokens) + max_tokens > self._n_ctx:
            raise ContextOverflowError(len(prompt_tokens), max_tokens, self._n_ctx)
        prompt_count = len(prompt_tokens)  # the request's, even if its answer is written from another prompt

        use_tools = request.uses_tools
        constrained_from_start = request.must_call
        grammar_text: str | None = None
        parser: StreamParser | PlainTextParser = PlainTextParser()
        if use_tools:
            parser = self.format.stream_parser([t.name for t in request.tools])
        call_grammar = grammars.call
        if constrained_from_start:
            assert call_grammar is not None  # a request that must call has tools
            grammar_text = call_grammar.text
            parser.stream_arguments = call_grammar.exact
        elif grammars.schema is not None:
            grammar_text = grammars.schema

        # With tools off, the model must not open a call (it may want to, having seen earlier calls):
        # the openers that are single tokens (Qwen's <tool_call>) are banned outright.
        banned = [] if use_tools else self._opener_tokens(llm)
        vocab = llm._model.vocab
        yield seq.prompt(prompt_tokens)
        generated: list[int] = []
        starts: list[int] = []  # text offset where each generated token's text begins
        text = ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        call_sampling = request.sampling.for_calls(self.call_temperature)
        start_sampling = call_sampling if constrained_from_start else request.sampling
        sampler = TokenSampler(llm, start_sampling, grammar_text, banned, logits=seq.logits_pointer)
        watching = use_tools and not constrained_from_start
        in_calls = constrained_from_start  # writing calls under the grammar
        deciding = watching and self.call_threshold > 0
        deciding_more = request.may_add_calls and self.another_call_threshold > 0
        trying = request.may_add_calls and self.try_another_call
        # The turn's first call is held until it is written and seen to fit the request (see _keeps).
        checking = watching and self.check_relevance
        decisions = self._decisions(llm) if deciding or deciding_more or trying or checking else None
        calls_seen = 0
        trial: _Trial | None = None  # a call being tried: its events are held until it is kept
        turn_calls: list[IndexedToolCall] = []
        grounding = ""

        def send(event: Event) -> None:
            if trial is not None:
                trial.events.append(event)
                return
            if "tool_calls" in event:
                turn_calls.extend(event["tool_calls"])
            emit(event)

        finish: FinishReason = "stop"
        try:
            while True:
                if cancelled.is_set():
                    raise _Cancelled
                if len(generated) >= max_tokens:
                    finish = "length"
                    break
                forbid = None
                if decisions is not None and deciding and not generated:
                    deciding = False
                    if probability_mass(sampler.raw_logits(), decisions.openers) >= self.call_threshold:
                        # Decided: a call. It is written under the grammar from this very token.
                        watching, in_calls = False, True
                        sampler.close()
                        assert call_grammar is not None
                        sampler = TokenSampler(llm, call_sampling, call_grammar.text, logits=seq.logits_pointer)
                        parser.stream_arguments = call_grammar.exact
                        if checking:
                            assert isinstance(parser, StreamParser)
                            trial = _Trial(parser.snapshot(), 0, first=True)
                    else:
                        forbid = decisions.openers  # decided: an answer in text
                elif (
                    decisions is not None
                    and in_calls
                    and (deciding_more or trying or trial is not None)
                    and parser.calls_emitted > calls_seen
                ):
                    calls_seen = parser.calls_emitted
                    if trial is not None:
                        # The held call is complete. A first call is kept if it fits the request, else the model
                        # answers in text; a further one if it is new and grounded, else the turn ends.
                        kept = trial
                        trial = None
                        if not grounding:
                            grounding = conversation_text(request.messages)
                        keeps = self._keeps(kept, turn_calls, request, grounding)
                        if keeps and kept.first and self.ask_relevance > 0:
                            keeps = yield from self._model_agrees(llm, seq, kept, request, grounding)
                        if keeps:
                            for event in kept.events:
                                send(event)
                        elif kept.first and not kept.generated:
                            # Not a call for this request: answer it in text, from the prompt without the tools
                            # (with them in sight, the small model writes the call out as text instead).
                            parser = PlainTextParser()
                            del generated[:], starts[:]
                            text = ""
                            decoder.reset()
                            prompt_tokens = yield from _switch_prompt(
                                seq, self.prompt_tokens(replace(request, tools=[]))
                            )
                            sampler.close()
                            sampler = TokenSampler(
                                llm, request.sampling, None, self._opener_tokens(llm), logits=seq.logits_pointer
                            )
                            watching = in_calls = False
                            forbid = decisions.openers
                        else:
                            # A further call, or a first one opened after some text: the turn ends before it.
                            assert isinstance(parser, StreamParser)
                            parser.restore(kept.parser_state)
                            del generated[kept.generated :], starts[kept.generated :]
                            break
                    if not in_calls or not (deciding_more or trying):
                        pass  # answering in text, or no decision to take after a call: the model writes on
                    elif deciding_more and self._another_call(continue_share(sampler.raw_logits(), decisions)):
                        forbid = decisions.end  # decided: another call
                    elif trying:
                        assert isinstance(parser, StreamParser)
                        trial = _Trial(parser.snapshot(), len(generated))
                        forbid = decisions.end  # try one more
                    else:
                        break  # decided: done
                token = sampler.sample(forbid)
                if lc.llama_vocab_is_eog(vocab, token):
                    break
                piece = decoder.decode(llm.detokenize([token], special=True))
                generated.append(token)
                starts.append(len(text))
                text += piece
                for event in parser.feed(piece):
                    send(event)
                if watching and parser.in_call_region:
                    # The model opened a call: constrain the rest of it.
                    assert isinstance(parser, StreamParser)
                    watching = False
                    pos = self.format.find_opener(text, parser.extra_openers)
                    assert pos is not None  # in the call region: an opener was seen
                    keep = _token_containing(starts, pos)
                    del generated[keep:]
                    del starts[keep:]
                    text = text[:pos]
                    decoder.reset()
                    parser.reset_region()
                    yield from _rewind(seq, len(prompt_tokens) + keep)
                    sampler.close()
                    assert call_grammar is not None
                    sampler = TokenSampler(llm, call_sampling, call_grammar.text, logits=seq.logits_pointer)
                    parser.stream_arguments = call_grammar.exact
                    in_calls = True
                    if checking and not parser.calls_emitted:
                        trial = _Trial(parser.snapshot(), keep, first=True)
                    continue
                if len(generated) >= max_tokens:  # nothing follows this token: no need to evaluate it
                    finish = "length"
                    break
                yield seq.eval([token])
            if trial is not None:  # the output ended inside a tried call: it is not kept
                assert isinstance(parser, StreamParser)
                parser.restore(trial.parser_state)
                del generated[trial.generated :], starts[trial.generated :]
                trial = None
                finish = "stop"
        finally:
            if sampler.grammar is not None and sampler.rejections:
                log.debug("grammar rejected the model's first choice %d times", sampler.rejections)
            sampler.close()
        for event in parser.finish(cut=finish == "length"):
            send(event)
        if parser.calls_emitted and finish == "stop":
            finish = "tool_calls"
        emit(final_event(prompt_count, len(generated), finish))

    @staticmethod
    def _keeps(trial: _Trial, turn_calls: list[IndexedToolCall], request: GenerationRequest, grounding: str) -> bool:
        """Keep a held call: the turn's first if it fits the request, a further one if it is new and
        grounded (see :mod:`toolrun.engines._judgment`)."""
        calls = trial.calls
        if len(calls) != 1:
            return False
        (call,) = calls
        if trial.first:
            return first_call_fits(call, request)
        return further_call_kept(call, turn_calls, request, grounding)

    def _another_call(self, share: float) -> bool:
        """After a call: whether the model's share of going on to another call reaches the threshold."""
        log.debug("another call: share %.3f (go on at %.2f)", share, self.another_call_threshold)
        return share >= self.another_call_threshold

    def _model_agrees(
        self, llm: Any, seq: SequenceHandle, trial: _Trial, request: GenerationRequest, grounding: str
    ) -> Generator[Need, None, bool]:
        """Ask the model, in a conversation of its own, whether the held first call's tool was made for the
        request (``ask_relevance``, or ``ask_relevance_unsaid`` for a call with made-up required values); the
        sequence is given back as it was if the answer is yes. A call whose tool the user named, with every
        required value said, is kept without asking (``named_and_said``)."""
        (call,) = trial.calls  # _keeps kept it: exactly one
        if named_and_said(call, request, grounding):
            log.debug("relevance of %s: named and its values said, kept without asking", call["name"])
            return True
        messages = relevance_messages(call, request)
        if messages is None:
            return True
        threshold = self.ask_relevance
        if self.ask_relevance_unsaid > threshold and not required_values_said(call, request, grounding):
            threshold = self.ask_relevance_unsaid
        prompt = self.prompt_tokens(GenerationRequest(messages=messages))
        saved = seq.save()
        # Every question starts with the same worked answers (a few hundred tokens): their KV is computed
        # once and copied in, so a question costs what its own lines cost.
        examples = self._relevance_examples
        if examples is None or prompt[: len(examples[0])] != examples[0]:
            head = self._relevance_head(llm, prompt)
            yield from _switch_prompt(seq, head)
            examples = self._relevance_examples = (head, seq.save())
        else:
            seq.restore(examples[1])
        yield from _switch_prompt(seq, prompt)
        share = yes_share(seq.logits(), self._decisions(llm))
        log.debug("relevance of %s: yes %.3f (keep at %.2f)", call["name"], share, threshold)
        if share < threshold:
            return False
        seq.restore(saved)
        yield from _rewind(seq, seq.n_tokens)
        return True

    def _relevance_head(self, llm: Any, prompt: list[int]) -> list[int]:
        """The tokens every relevance question's prompt starts with: the worked answers and the next turn's opening."""
        bare = self.prompt_tokens(GenerationRequest(messages=[*relevance_examples(), {"role": "user", "content": ""}]))
        return prompt[: common_prefix(bare, prompt)]

    def _decisions(self, llm: Any) -> DecisionTokens:
        if self._decision_tokens is None:
            self._decision_tokens = decision_tokens(llm, self.format)
        return self._decision_tokens

    def _opener_tokens(self, llm: Any) -> list[int]:
        tokens = []
        for opener in self.format.inline_openers:
            ids = llm.tokenize(opener.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                tokens.append(ids[0])
        return tokens

    # ------------------------------------------------------------- slots

    def stats(self) -> dict[str, int]:
        """Prefix-cache and slot statistics (what ``/metrics`` reports), zeros before the model loads."""
        scheduler = self._scheduler
        if scheduler is None:
            return {}
        cache = scheduler.cache
        stats = cache.stats
        return {
            "cache_hits": stats.hits,
            "cache_misses": stats.misses,
            "cache_reused_tokens": stats.reused_tokens,
            "cache_restores": stats.restores,
            "cache_saves": stats.saves,
            "cache_evictions": stats.evictions,
            "cache_bytes": cache.held_bytes,
            "cache_budget_bytes": cache.budget_bytes,
            "cache_entries": len(cache),
            "slots": len(scheduler.slots),
            "slots_busy": sum(slot.busy for slot in scheduler.slots),
            "slot_kv_bytes": len(scheduler.slots) * scheduler.context.n_ctx_seq * self._kv_bytes_per_token(),
            "queued": scheduler.queued,
        }

    def describe(self) -> str:
        """The slot configuration in words (for benchmarks and logs)."""
        return (
            f"{self.slots} slots x {self.context_window} tokens, prefix cache {self.prefix_cache_bytes >> 20} MB, "
            f"{'batch-invariant' if self.batch_invariant else 'repacked'} weights, {self.n_threads} threads"
        )

    def clear_cache(self) -> None:
        """Forget every warm prefix (slots and RAM), as a fresh engine would start; only while idle."""
        if self._scheduler is not None:
            self._scheduler.clear()

    def next_token_logits(self, request: GenerationRequest) -> Any:
        """The model's raw logits for the first token of its answer to ``request`` (a copy); blocking."""
        self.load()
        assert self._scheduler is not None
        prompt = self.prompt_tokens(request)
        result: list[Any] = []
        ended = threading.Event()
        errors: list[BaseException] = []

        def program(seq: SequenceHandle) -> Generator[Need, None, None]:
            yield seq.prompt(prompt)
            result.append(seq.logits().copy())

        def on_done(error: BaseException | None) -> None:
            if error is not None:
                errors.append(error)
            ended.set()

        self._scheduler.submit(Job(program, threading.Event(), on_done))
        ended.wait()
        if errors:
            raise errors[0]
        return result[0]

    def _kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token(self.load().model)

    async def aclose(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.close)
        if self._llm is not None:
            self._llm.close()
            self._llm = None


@dataclass
class _Trial:
    """A call held back until it is checked: one the engine lets the model try after it would have ended its
    turn (see ``try_another_call``), or the turn's first call (see ``check_relevance``)."""

    parser_state: object
    generated: int  # tokens generated before it
    events: list[Event] = field(default_factory=list)
    #: The turn's first call, held for the relevance check (``check_relevance``).
    first: bool = False

    @property
    def calls(self) -> list[IndexedToolCall]:
        """The calls the held events carry (one, when the trial wrote a whole call)."""
        return [call for event in self.events if "tool_calls" in event for call in event["tool_calls"]]


def _switch_prompt(seq: SequenceHandle, prompt: list[int]) -> Generator[Need, None, list[int]]:
    """Make ``seq`` hold ``prompt`` instead of what it holds: keep the common prefix, evaluate the rest."""
    common = min(common_prefix(seq.tokens, prompt), len(prompt) - 1)  # the last token again, for its logits
    seq.truncate(common)
    for start in range(common, len(prompt), _SWITCH_CHUNK):
        yield seq.eval(prompt[start : start + _SWITCH_CHUNK])
    return prompt


#: Tokens evaluated per step when a request switches prompts (the step's batch holds the others' tokens too).
_SWITCH_CHUNK = 128


def _rewind(seq: SequenceHandle, n_tokens: int) -> Generator[Need, None, None]:
    """Drop the KV after the first ``n_tokens``, evaluating the last one kept again to refresh its logits."""
    last = seq.tokens[n_tokens - 1]
    seq.truncate(n_tokens - 1)
    yield seq.eval([last])


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise EngineError(f"${name} must be a number, not {value!r}") from None


def _token_containing(starts: list[int], pos: int) -> int:
    """Index of the generated token whose text holds offset ``pos`` (it and all after it are dropped)."""
    keep = 0
    for i, s in enumerate(starts):
        if s <= pos:
            keep = i
    return keep


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))
