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
import ctypes
import logging
import math
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable

import numpy as np

from .._errors import ContextOverflowError, EngineError, ModelUnavailableError
from ..formats import ToolCallFormat, render_chat_template
from ..formats._base import fold_tool_results
from ..formats._grammar import GrammarBuilder
from ._base import Engine, GenerationRequest, SamplingParams, final_event

log = logging.getLogger("toolrun.engines.llamacpp")

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class _Cancelled(Exception):
    pass


class TokenSampler:
    """A llama.cpp sampler chain plus an optional grammar consulted lazily (see module doc)."""

    def __init__(self, llm: Any, params: SamplingParams, grammar: str | None, banned: list[int] = ()) -> None:
        import llama_cpp as C

        self._C = C
        self._ctx = llm._ctx.ctx
        vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self.chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = lambda s: C.llama_sampler_chain_add(self.chain, s)  # noqa: E731
        if banned:
            biases = (C.llama_logit_bias * len(banned))(*[C.llama_logit_bias(t, -math.inf) for t in banned])
            add(C.llama_sampler_init_logit_bias(self._n_vocab, len(banned), biases))
        if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            add(C.llama_sampler_init_penalties(64, params.repetition_penalty,
                                               params.frequency_penalty, params.presence_penalty))
        if params.temperature <= 0:
            add(C.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(C.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(C.llama_sampler_init_top_p(params.top_p, 1))
            add(C.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            add(C.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        self.grammar = None
        if grammar is not None:
            self.grammar = C.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not self.grammar:
                C.llama_sampler_free(self.chain)
                raise EngineError("llama.cpp rejected the generated grammar")
        self._ids = np.arange(self._n_vocab, dtype=np.intc)
        self._cands = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
        self._cands_ptr = self._cands.ctypes.data_as(ctypes.POINTER(C.llama_token_data))
        self._one = C.llama_token_data(0, 0.0, 0.0)
        self.rejections = 0

    def _candidates(self, forbid: list[int] | None = None) -> Any:
        C = self._C
        logits = np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, -1), shape=(self._n_vocab,))
        self._cands["id"] = self._ids
        self._cands["logit"] = logits
        self._cands["p"] = 0.0
        if forbid:
            self._cands["logit"][forbid] = -np.inf
        return C.llama_token_data_array(self._cands_ptr, self._n_vocab, -1, False)

    def opening_probability(self, tokens: list[int]) -> float:
        """The model's probability, before any sampler, that the next token is one of ``tokens``."""
        logits = np.ctypeslib.as_array(self._C.llama_get_logits_ith(self._ctx, -1), shape=(self._n_vocab,))
        shifted = np.exp(logits.astype(np.float64) - float(logits.max()))
        return float(shifted[tokens].sum() / shifted.sum())

    def sample(self, forbid: list[int] | None = None) -> int:
        C = self._C
        cur = self._candidates(forbid)
        C.llama_sampler_apply(self.chain, ctypes.byref(cur))
        token = cur.data[cur.selected].id
        if self.grammar is not None:
            self._one.id, self._one.logit, self._one.p = token, 1.0, 0.0
            single = C.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
            C.llama_sampler_apply(self.grammar, ctypes.byref(single))
            if math.isinf(self._one.logit):
                # The model's choice breaks the grammar: pay for the full constrained pass.
                self.rejections += 1
                cur = self._candidates(forbid)
                C.llama_sampler_apply(self.grammar, ctypes.byref(cur))
                C.llama_sampler_apply(self.chain, ctypes.byref(cur))
                token = cur.data[cur.selected].id
            C.llama_sampler_accept(self.grammar, token)
        C.llama_sampler_accept(self.chain, token)
        return int(token)

    def close(self) -> None:
        C = self._C
        C.llama_sampler_free(self.chain)
        if self.grammar is not None:
            C.llama_sampler_free(self.grammar)
        self.chain = self.grammar = None


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
    ) -> None:
        self.model_path = model_path
        self.format = tool_format
        self.context_window = context_window
        self.n_threads = n_threads or os.cpu_count() or 1
        self._chat_template_override = chat_template
        #: With tool_choice "auto", open a call only if the model's own probability of starting one
        #: is at least this (0 = always follow the model). See the module doc of ai._catalog.
        self.call_threshold = call_threshold
        self._llm: Any = None
        self._template: str | None = None
        self._bos = ""
        self._eos = ""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolrun-llama")
        self._load_lock = threading.Lock()
        self._grammar_cache: dict[tuple, str] = {}

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
        if request.raw_prompt is not None:
            return request.raw_prompt
        use_tools = bool(request.tools) and request.tool_choice != "none"
        tools = self.format.template_tools(request.tools) if use_tools else None
        messages = request.messages if use_tools else fold_tool_results(request.messages)
        return render_chat_template(
            self._template or "", messages, tools=tools, add_generation_prompt=True,
            bos_token=self._bos, eos_token=self._eos,
        )

    def count_tokens(self, text: str) -> int:
        llm = self.load()
        return len(llm.tokenize(text.encode(), add_bos=False, special=True))

    def _grammar(self, request: GenerationRequest) -> str:
        tools = request.tools
        if request.forced_tool is not None:
            tools = [t for t in tools if t.name == request.forced_tool]
        key = (tuple((t.name, id(t.parameters)) for t in tools), request.parallel_tool_calls)
        cached = self._grammar_cache.get(key)
        if cached is None:
            cached = self.format.grammar(tools, parallel=request.parallel_tool_calls)
            if len(self._grammar_cache) > 64:
                self._grammar_cache.clear()
            self._grammar_cache[key] = cached
        return cached

    # --------------------------------------------------------- generation

    async def generate(self, request: GenerationRequest) -> AsyncIterator[dict[str, Any]]:
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

        use_tools = bool(request.tools) and request.tool_choice != "none"
        constrained_from_start = use_tools and (request.tool_choice == "required" or request.forced_tool is not None)
        grammar_text: str | None = None
        if constrained_from_start:
            grammar_text = self._grammar(request)
        elif request.response_schema is not None:
            grammar_text = _schema_grammar(request.response_schema)

        # With tools off, the model must not open a call (it may want to, having seen earlier calls):
        # the openers that are single tokens (Qwen's <tool_call>) are banned outright.
        banned = [] if use_tools else self._opener_tokens(llm)
        parser = self.format.stream_parser([t.name for t in request.tools]) if use_tools else _PlainText()
        vocab = llm._model.vocab
        self._prefill(llm, prompt_tokens)
        generated: list[int] = []
        starts: list[int] = []  # text offset where each generated token's text begins
        text = ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        sampler = TokenSampler(llm, request.sampling, grammar_text, banned)
        watching = use_tools and not constrained_from_start
        finish = "stop"
        try:
            while True:
                if cancelled.is_set():
                    raise _Cancelled
                if len(generated) >= max_tokens:
                    finish = "length"
                    break
                forbid = None
                if watching and not generated and self.call_threshold > 0:
                    openers = self._first_opener_tokens(llm)
                    if sampler.opening_probability(openers) < self.call_threshold:
                        forbid = openers  # not confident enough that a tool fits: answer in text
                token = sampler.sample(forbid)
                if C.llama_vocab_is_eog(vocab, token):
                    break
                piece = decoder.decode(llm.detokenize([token], special=True))
                generated.append(token)
                starts.append(len(text))
                text += piece
                llm.eval([token])
                for event in parser.feed(piece):
                    emit(event)
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
                    sampler = TokenSampler(llm, request.sampling, self._grammar(request))
        finally:
            if sampler.grammar is not None and sampler.rejections:
                log.debug("grammar rejected the model's first choice %d times", sampler.rejections)
            sampler.close()
        for event in parser.finish():
            emit(event)
        if parser.calls_emitted and finish == "stop":
            finish = "tool_calls"
        emit(final_event(len(prompt_tokens), len(generated), finish))

    def _first_opener_tokens(self, llm: Any) -> list[int]:
        """First tokens of every way this format opens a call (tags and drift alike)."""
        cached = getattr(self, "_first_openers", None)
        if cached is None:
            ids = {llm.tokenize(o.encode(), add_bos=False, special=True)[0]
                   for o in self.format.inline_openers + self.format.start_openers}
            cached = self._first_openers = sorted(ids)
        return cached

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


class _PlainText:
    """The stream parser for requests without tools: everything is text."""

    in_call_region = False
    calls_emitted = 0

    def feed(self, delta: str) -> list[dict[str, Any]]:
        return [{"response": delta}] if delta else []

    def finish(self) -> list[dict[str, Any]]:
        return []


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


def _schema_grammar(schema: Any) -> str:
    from .._types import ToolSpec

    builder = GrammarBuilder()
    rule = builder.arguments_rule(ToolSpec("response", "", schema))
    return builder.render(rule)
