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
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any

from ..._errors import ContextOverflowError, EngineError, ModelUnavailableError
from ..._wire import Event, IndexedToolCall
from ...formats import ControlTokens, ShieldedPrompt, ToolCallFormat
from .._base import Engine, GenerationRequest
from .._prompt import render_prompt
from ..turn import CallPolicy, GrammarCache
from ..turn._decide import DecisionTokens, decision_tokens, yes_share
from ..turn._judgment import relevance_examples, relevance_messages
from ._context import kv_bytes_per_token
from ._decode import Cancelled, LocalTurn, switch_prompt
from ._disk_prefix import DiskPrefixStore, default_directory, key_material
from ._fast_forward import GrammarProbe
from ._model import LlamaModel
from ._prefix_cache import common_prefix
from ._scheduler import Job, Need, SavedSequence, Scheduler, SequenceHandle
from ._slots import REPACKED_ROW_GROUP
from ._speculative import SpeculationStats

log = logging.getLogger("toolrun.engines.llamacpp")


#: Defaults, each overridable by the constructor or the environment (for ``toolrun serve``).
DEFAULT_SLOTS = 4
DEFAULT_PREFIX_CACHE_MB = 256
DEFAULT_PREFIX_DISK_MB = 512


class LlamaCppEngine(Engine):
    """One GGUF model in one llama.cpp context, its slots decoded together by one worker thread.

    ``slots`` (``$TOOLRUN_SLOTS``, default 4): requests decoded at once; each slot holds
    ``context_window`` tokens of KV (12 KB a token for the 0.5B model, 28 KB for the 1.5B).
    ``prefix_cache_mb`` (``$TOOLRUN_PREFIX_CACHE_MB``, default 256): RAM for warm prefixes
    beyond the slots, least recently used evicted first; 0 keeps only what the slots hold.
    ``prefix_disk_mb`` (``$TOOLRUN_PREFIX_DISK_MB``, default 512): disk for the KV of
    prompts' shared prefixes (system prompt and tool list) in ``prefix_disk_dir`` (default
    ``$TOOLRUN_CACHE_DIR/prefixes``), so that a new process restores a known tool list instead of evaluating
    it (:mod:`._disk_prefix`); 0 turns it off.
    ``batch_invariant`` (``$TOOLRUN_BATCH_INVARIANT``, default 1): load the weights without llama.cpp's
    CPU repacking, whose kernels sum differently for batches of 4+ tokens, so that a greedy answer does
    not depend on the other requests decoded in the same batch. Reuse is exact on either kind of weights;
    repacked ones evaluate prompts slower on an AVX-512 CPU (1.04x for the 0.5B, 1.38x for the 1.5B) and
    decode one sequence about 5 % quicker (see docs/slots.md).
    ``speculative`` (``$TOOLRUN_SPECULATIVE``, default 0): evaluate the text a call's grammar forces and
    drafts copied from the prompt in one batch, keeping what the model's own sampling agrees with
    (:mod:`._speculative`). Off by default: on BFCL's first 40 per category, 3 of 160 greedy calls and 7
    texts came out different with it on (docs/design.md, "Speculative decoding"), and it buys 1.05-1.1x.
    """

    def __init__(
        self,
        model_path: str,
        tool_format: ToolCallFormat,
        *,
        context_window: int = 8192,
        n_threads: int | None = None,
        chat_template: str | None = None,
        policy: CallPolicy | None = None,
        slots: int | None = None,
        prefix_cache_mb: float | None = None,
        batch_invariant: bool | None = None,
        speculative: bool | None = None,
        prefix_disk_mb: float | None = None,
        prefix_disk_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model_path = model_path
        self.format = tool_format
        self.context_window = context_window
        self.context_window_tokens = context_window  # the same, typed int (the Engine attribute may be None)
        self.n_threads = n_threads or os.cpu_count() or 1
        self._chat_template_override = chat_template
        #: Which calls a turn makes and keeps (the catalog's judgement settings; see toolrun.engines.turn).
        self.policy = policy or CallPolicy()
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
        disk_mb = (
            prefix_disk_mb
            if prefix_disk_mb is not None
            else _env_number("TOOLRUN_PREFIX_DISK_MB", DEFAULT_PREFIX_DISK_MB)
        )
        self.prefix_disk_bytes = max(0, int(disk_mb * 2**20))
        self.prefix_disk_dir = Path(prefix_disk_dir) if prefix_disk_dir is not None else default_directory()
        self.batch_invariant = (
            batch_invariant if batch_invariant is not None else bool(_env_number("TOOLRUN_BATCH_INVARIANT", 1))
        )
        self.speculative = speculative if speculative is not None else bool(_env_number("TOOLRUN_SPECULATIVE", 0))
        #: Tokens drafted and kept since the engine started (``stats()``, ``/metrics``).
        self.speculation_stats = SpeculationStats()
        self._probe: GrammarProbe | None = None
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
                        n_ctx_seq=self.context_window_tokens,
                        n_threads=self.n_threads,
                        cache_bytes=self.prefix_cache_bytes,
                        row_group=1 if self.batch_invariant else REPACKED_ROW_GROUP,
                    )
                    if self.prefix_disk_bytes:
                        self._scheduler.attach_disk(self._disk_store(self._scheduler))
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
            parallel_hint=self.policy.parallel_hint,
        )

    def prompt_tokens(self, request: GenerationRequest, *, limit: int | None = None) -> list[int]:
        """The prompt's token ids: the template's control tokens parsed, the request's text only ever as text
        (see :mod:`toolrun.formats._shield`). With ``limit``, a prompt that cannot fit in ``limit`` tokens is
        refused (:class:`ContextOverflowError`) before a large piece of it is tokenized whole."""
        llm = self.load()

        def plain(text: str) -> list[int]:
            if limit is not None and len(text) > _COUNT_CHUNK_CHARS:
                over = _count_past(text, limit, plain_tokens)
                if over is not None:
                    window = self.context_window_tokens
                    raise ContextOverflowError(over, window - limit, window)  # "at least" that many
            return plain_tokens(text)

        def plain_tokens(text: str) -> list[int]:
            return list(llm.tokenize(text.encode(), add_bos=False, special=False))

        return self.render_prompt(request).tokens(
            special=lambda text: llm.tokenize(text.encode(), add_bos=False, special=True), plain=plain
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
            if error is not None and not isinstance(error, Cancelled):
                emit(error)
            emit(done)

            def settle() -> None:
                if not finished.done():
                    finished.set_result(None)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass

        # The prompt and the grammars come from what the request carries (a 1 MB description tokenizes for a
        # second, a schema's grammar may be large): made here, never on the thread that decodes for everyone.
        max_tokens = request.sampling.max_tokens
        room = max(self.context_window_tokens - max_tokens, 0)
        prompt = await asyncio.to_thread(lambda: self.prompt_tokens(request, limit=room))
        if len(prompt) + max_tokens > self.context_window_tokens:
            raise ContextOverflowError(len(prompt), max_tokens, self.context_window_tokens)
        grammars = await asyncio.to_thread(self.grammars.for_request, request)
        job = Job(
            lambda seq: LocalTurn(self, request, prompt, grammars, seq, emit, cancelled).run(), cancelled, on_done
        )
        if scheduler.disk is not None:
            job.persist = await asyncio.to_thread(self._shared_prefix_length, request, prompt)
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

    def ask_relevance(
        self, llm: Any, seq: SequenceHandle, call: IndexedToolCall, request: GenerationRequest
    ) -> Generator[Need, None, tuple[float, SavedSequence] | None]:
        """Ask the model, in a conversation of its own, whether ``call``'s tool was made for the request: its
        share of "yes" and what the sequence held before (None: no question can be put). The sequence is left
        holding the question: a call that is kept goes back to ``saved`` (:func:`._decode.go_back`); one that is
        not switches to the answer's prompt from where it is."""
        messages = relevance_messages(call, request)
        if messages is None:
            return None
        prompt = self.prompt_tokens(GenerationRequest(messages=messages))
        saved = seq.save()
        # Every question starts with the same worked answers (a few hundred tokens): their KV is computed
        # once and copied in, so a question costs what its own lines cost.
        examples = self._relevance_examples
        if examples is None or prompt[: len(examples[0])] != examples[0]:
            head = self._relevance_head(prompt)
            yield from switch_prompt(seq, head)
            examples = self._relevance_examples = (head, seq.save())
        else:
            seq.restore(examples[1])
        yield from switch_prompt(seq, prompt)
        return yes_share(seq.logits(), self.decisions(llm)), saved

    def _relevance_head(self, prompt: list[int]) -> list[int]:
        """The tokens every relevance question's prompt starts with: the worked answers and the next turn's opening."""
        bare = self.prompt_tokens(GenerationRequest(messages=[*relevance_examples(), {"role": "user", "content": ""}]))
        return prompt[: common_prefix(bare, prompt)]

    def grammar_probe(self) -> GrammarProbe:
        """What finds the text a grammar forces (its byte tokens are looked up once per model)."""
        if self._probe is None:
            self._probe = GrammarProbe(self.load())
        return self._probe

    def decisions(self, llm: Any) -> DecisionTokens:
        if self._decision_tokens is None:
            self._decision_tokens = decision_tokens(llm, self.format)
        return self._decision_tokens

    def opener_tokens(self, llm: Any) -> list[int]:
        """The format's inline openers that are single tokens (Qwen's ``<tool_call>``): banned when tools are off."""
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
            "disk_hits": stats.disk_hits,
            "disk_misses": stats.disk_misses,
            "disk_restored_tokens": stats.disk_restored_tokens,
            "disk_read_bytes": stats.disk_read_bytes,
            "disk_writes": stats.disk_writes,
            "disk_written_bytes": stats.disk_written_bytes,
            "disk_evictions": stats.disk_evictions,
            "disk_rejected": stats.disk_rejected,
            "disk_budget_bytes": self.prefix_disk_bytes if scheduler.disk is not None else 0,
            "prefilled_tokens": scheduler.prefilled_tokens,
            "slots": len(scheduler.slots),
            "slots_busy": sum(slot.busy for slot in scheduler.slots),
            "slot_kv_bytes": len(scheduler.slots) * scheduler.context.n_ctx_seq * self._kv_bytes_per_token(),
            "queued": scheduler.queued,
            **self.speculation_stats.as_dict(),
        }

    def describe(self) -> str:
        """The slot configuration in words (for benchmarks and logs)."""
        return (
            f"{self.slots} slots x {self.context_window} tokens, prefix cache {self.prefix_cache_bytes >> 20} MB, "
            f"on disk {self.prefix_disk_bytes >> 20} MB, "
            f"{'batch-invariant' if self.batch_invariant else 'repacked'} weights, {self.n_threads} threads, "
            f"speculative decoding {'on' if self.speculative else 'off'}"
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

    def _disk_store(self, scheduler: Scheduler) -> DiskPrefixStore:
        key = key_material(
            self.model_path,
            n_ctx_seq=scheduler.context.n_ctx_seq,
            row_group=scheduler.row_group,
            n_threads=self.n_threads,
        )
        return DiskPrefixStore(self.prefix_disk_dir, self.prefix_disk_bytes, key)

    def _shared_prefix_length(self, request: GenerationRequest, prompt: list[int]) -> int:
        """How many leading tokens of ``prompt`` any request with the same system prompt and tools shares: the
        prefix worth keeping on disk (the conversation after it is the request's own, and stays off the disk)."""
        if request.raw_prompt is not None:
            return 0
        system = []
        for message in request.messages:
            if message.get("role") != "system":
                break
            system.append(message)
        # An empty user turn after them: templates index messages[0], and the question's text is where it differs.
        head = GenerationRequest(
            messages=[*system, {"role": "user", "content": ""}],
            tools=request.tools,
            tool_choice=request.tool_choice,
            parallel_tool_calls=request.parallel_tool_calls,
        )
        try:
            return common_prefix(self.prompt_tokens(head), prompt)
        except Exception:  # noqa: BLE001 - a template that wants a user turn: nothing is kept on disk
            return 0

    def _kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token(self.load().model)

    async def aclose(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await asyncio.to_thread(scheduler.close)
        if self._llm is not None:
            self._llm.close()
            self._llm = None


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise EngineError(f"${name} must be a number, not {value!r}") from None


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))


#: Pieces of request text longer than this are counted in chunks first (:func:`_count_past`).
_COUNT_CHUNK_CHARS = 64 * 1024


def _count_past(text: str, limit: int, tokenize: Callable[[str], list[int]]) -> int | None:
    """The tokens counted so far if ``text`` alone cannot fit in ``limit`` tokens (else None), counting it in
    chunks cut at whitespace and stopping as soon as the count is past the limit. A 1 MB description tokenized
    whole grew the server by ~90 MB (the tokenizer's working memory, per request in flight) only to be
    refused; a chunk costs 64 KB's worth.
    A cut between two words is where the tokenizer splits anyway; each other cut can change the count by a
    token or two, so the count must clear the limit by that much before the text is refused."""
    count = 0
    start = 0
    chunks = 0
    while start < len(text):
        end = min(start + _COUNT_CHUNK_CHARS, len(text))
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        count += len(tokenize(text[start:end]))
        chunks += 1
        start = end
        if count - 2 * chunks > limit:
            return count
    return None
