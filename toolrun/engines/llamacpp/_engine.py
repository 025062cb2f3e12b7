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

One llama context serves one request at a time: requests queue on a single
worker thread in arrival order. KV prefix reuse comes from comparing the new
prompt with the tokens already in the context, so the next round of a tool
loop evaluates only the tokens it adds.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..._errors import ContextOverflowError, EngineError, ModelUnavailableError
from ..._wire import Event, FinishReason, IndexedToolCall, final_event
from ...formats import CallGrammar, PlainTextParser, StreamParser, ToolCallFormat, schema_grammar
from .._base import Engine, GenerationRequest
from .._grounding import conversation_text, is_grounded, schema_constants
from .._prompt import render_prompt
from ._decide import DecisionTokens, continue_share, decision_tokens, probability_mass
from ._sampler import TokenSampler

log = logging.getLogger("toolrun.engines.llamacpp")

class _Cancelled(Exception):
    pass


class LlamaCppEngine(Engine):
    """One GGUF model in one llama.cpp context, served by one worker thread."""

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
        try_another_call: bool = False,
    ) -> None:
        self.model_path = model_path
        self.format = tool_format
        self.context_window = context_window
        self.n_threads = n_threads or os.cpu_count() or 1
        self._chat_template_override = chat_template
        #: With tool_choice "auto": call a tool when the model's own probability of opening a call at its
        #: first token is at least this, and answer in text otherwise (0: sample the choice). See _decide.
        self.call_threshold = call_threshold
        #: After a call closes: write another when the model's share of "go on" is at least this
        #: (0: sample the choice).
        self.another_call_threshold = another_call_threshold
        #: When the model would end its turn after a call, let it write one more and keep it only if
        #: it is new and its values come from the conversation (small models stop after one call).
        self.try_another_call = try_another_call
        self._decision_tokens: DecisionTokens | None = None
        self._llm: Any = None
        self._template: str | None = None
        self._bos = ""
        self._eos = ""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolrun-llama")
        self._load_lock = threading.Lock()
        self._grammar_cache: dict[tuple[Any, ...], CallGrammar] = {}

    # ------------------------------------------------------------ loading

    def load(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                if not os.path.exists(self.model_path):
                    raise ModelUnavailableError(f"model file not found: {self.model_path}")
                from llama_cpp import Llama

                try:
                    llm = Llama(
                        self.model_path,
                        n_ctx=self.context_window,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        n_batch=512,
                        verbose=False,
                    )
                except Exception as exc:  # llama.cpp reports load failures as plain ValueErrors
                    raise ModelUnavailableError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
                template = self._chat_template_override or llm.metadata.get("tokenizer.chat_template")
                # A template that never mentions tools would silently drop them: use the format's own.
                if not template or "tools" not in template:
                    template = self.format.fallback_template
                self._template = template
                self._bos = _token_text(llm, llm.token_bos())
                self._eos = _token_text(llm, llm.token_eos())
                self._llm = llm
        return self._llm

    # --------------------------------------------------------- prompting

    def render_prompt(self, request: GenerationRequest) -> str:
        self.load()
        return render_prompt(self.format, self._template or "", request, bos_token=self._bos, eos_token=self._eos)

    def count_tokens(self, text: str) -> int:
        llm = self.load()
        return len(llm.tokenize(text.encode(), add_bos=False, special=True))

    def _grammar(self, request: GenerationRequest) -> CallGrammar:
        tools = request.callable_tools
        key = (tuple((t.name, id(t.parameters)) for t in tools), request.parallel_tool_calls)
        cached = self._grammar_cache.get(key)
        if cached is None:
            cached = self.format.grammar(tools, parallel=request.parallel_tool_calls)
            if len(self._grammar_cache) > 64:
                self._grammar_cache.clear()
            self._grammar_cache[key] = cached
        return cached

    # --------------------------------------------------------- generation

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        done = object()

        def emit(event: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            try:
                if cancelled.is_set():  # cancelled while queued: don't prefill for nobody
                    raise _Cancelled
                self._generate_blocking(request, emit, cancelled)
            except _Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting side
                emit(exc)
            finally:
                emit(done)

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            # Keep the worker's lifetime tied to the request: a disconnect stops decoding.
            await asyncio.shield(future)

    def _generate_blocking(
        self, request: GenerationRequest, emit: Callable[[Any], None], cancelled: threading.Event
    ) -> None:
        import llama_cpp as C

        llm = self.load()
        prompt = self.render_prompt(request)
        prompt_tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        max_tokens = request.sampling.max_tokens
        if len(prompt_tokens) + max_tokens > self.context_window:
            raise ContextOverflowError(len(prompt_tokens), max_tokens, self.context_window)

        use_tools = request.uses_tools
        constrained_from_start = request.must_call
        grammar_text: str | None = None
        parser: StreamParser | PlainTextParser = PlainTextParser()
        if use_tools:
            parser = self.format.stream_parser([t.name for t in request.tools])
        if constrained_from_start:
            grammar = self._grammar(request)
            grammar_text = grammar.text
            parser.stream_arguments = grammar.exact
        elif request.response_schema is not None:
            grammar_text = schema_grammar(request.response_schema)

        # With tools off, the model must not open a call (it may want to, having seen earlier calls):
        # the openers that are single tokens (Qwen's <tool_call>) are banned outright.
        banned = [] if use_tools else self._opener_tokens(llm)
        vocab = llm._model.vocab
        self._prefill(llm, prompt_tokens)
        generated: list[int] = []
        starts: list[int] = []  # text offset where each generated token's text begins
        text = ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        sampler = TokenSampler(llm, request.sampling, grammar_text, banned)
        watching = use_tools and not constrained_from_start
        in_calls = constrained_from_start  # writing calls under the grammar
        deciding = watching and self.call_threshold > 0
        may_add_calls = use_tools and request.parallel_tool_calls
        deciding_more = may_add_calls and self.another_call_threshold > 0
        trying = may_add_calls and self.try_another_call
        decisions = self._decisions(llm) if deciding or deciding_more or trying else None
        calls_seen = 0
        trial: _Trial | None = None  # a call being tried: its events are held until it is kept
        turn_calls: list[tuple[str, str]] = []
        grounding = ""

        def send(event: Event) -> None:
            if trial is not None:
                trial.events.append(event)
                return
            if "tool_calls" in event:
                turn_calls.extend(_call_key(call) for call in event["tool_calls"])
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
                        grammar = self._grammar(request)
                        sampler = TokenSampler(llm, request.sampling, grammar.text)
                        parser.stream_arguments = grammar.exact
                    else:
                        forbid = decisions.openers  # decided: an answer in text
                elif (decisions is not None and in_calls and (deciding_more or trying)
                      and parser.calls_emitted > calls_seen):
                    calls_seen = parser.calls_emitted
                    if trial is not None:
                        # The tried call is complete: keep it if it is new and grounded, else end the turn.
                        kept = trial
                        trial = None
                        if not grounding:
                            grounding = conversation_text(request.messages)
                        if self._keeps(kept, turn_calls, request, grounding):
                            for event in kept.events:
                                send(event)
                        else:
                            parser.restore(kept.parser_state)
                            del generated[kept.generated:], starts[kept.generated:]
                            break
                    if deciding_more and continue_share(sampler.raw_logits(), decisions) >= self.another_call_threshold:
                        forbid = decisions.end  # decided: another call
                    elif trying:
                        trial = _Trial(parser.snapshot(), len(generated))
                        forbid = decisions.end  # try one more
                    else:
                        break  # decided: done
                token = sampler.sample(forbid)
                if C.llama_vocab_is_eog(vocab, token):
                    break
                piece = decoder.decode(llm.detokenize([token], special=True))
                generated.append(token)
                starts.append(len(text))
                text += piece
                llm.eval([token])
                for event in parser.feed(piece):
                    send(event)
                if watching and parser.in_call_region:
                    # The model opened a call: constrain the rest of it.
                    watching = False
                    pos = self.format.find_opener(text, parser.extra_openers)
                    keep = _token_containing(starts, pos)
                    del generated[keep:]
                    del starts[keep:]
                    text = text[:pos]
                    decoder.reset()
                    parser.reset_region()
                    self._rewind(llm, len(prompt_tokens) + keep)
                    sampler.close()
                    grammar = self._grammar(request)
                    sampler = TokenSampler(llm, request.sampling, grammar.text)
                    parser.stream_arguments = grammar.exact
                    in_calls = True
            if trial is not None:  # the output ended inside a tried call: it is not kept
                parser.restore(trial.parser_state)
                del generated[trial.generated:], starts[trial.generated:]
                trial = None
                finish = "stop"
        finally:
            if sampler.grammar is not None and sampler.rejections:
                log.debug("grammar rejected the model's first choice %d times", sampler.rejections)
            sampler.close()
        for event in parser.finish():
            send(event)
        if parser.calls_emitted and finish == "stop":
            finish = "tool_calls"
        emit(final_event(len(prompt_tokens), len(generated), finish))

    @staticmethod
    def _keeps(trial: _Trial, turn_calls: list[tuple[str, str]], request: GenerationRequest, grounding: str) -> bool:
        """Keep a tried call if it is not a repeat of this turn's calls and its values come from the conversation."""
        calls = [call for event in trial.events if "tool_calls" in event for call in event["tool_calls"]]
        if len(calls) != 1 or _call_key(calls[0]) in turn_calls:
            return False
        tool = next((t for t in request.tools if t.name == calls[0]["name"]), None)
        allowed = schema_constants(tool.parameters) if tool is not None else []
        return is_grounded(calls[0]["arguments"], grounding, allowed=allowed)

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

    def _prefill(self, llm: Any, tokens: list[int]) -> None:
        """Evaluate the prompt, reusing the longest prefix already in the KV cache."""
        cached = llm.input_ids[: llm.n_tokens]
        common = 0
        limit = min(len(cached), len(tokens))
        while common < limit and cached[common] == tokens[common]:
            common += 1
        # Always evaluate at least the last prompt token: its logits are what we sample from.
        common = min(common, len(tokens) - 1)
        self._rewind(llm, common, replay=False)
        llm.eval(tokens[common:])

    @staticmethod
    def _rewind(llm: Any, n_tokens: int, *, replay: bool = True) -> None:
        """Drop the KV cache after ``n_tokens``; with ``replay``, refresh the logits of the last one kept."""
        if replay:
            last = int(llm.input_ids[n_tokens - 1])
            n_tokens -= 1
        llm.n_tokens = n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
        if replay:
            llm.eval([last])

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)
        if self._llm is not None:
            self._llm.close()
            self._llm = None


@dataclass
class _Trial:
    """A call the engine lets the model try after it would have ended its turn (see ``try_another_call``)."""

    parser_state: object
    generated: int  # tokens generated before it
    events: list[Event] = field(default_factory=list)


def _call_key(call: IndexedToolCall) -> tuple[str, str]:
    return call["name"], json.dumps(call["arguments"], sort_keys=True)


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
    return llm.detokenize([token], special=True).decode("utf-8", "replace")
