"""Continuous batching over slots: one worker thread, one llama context, many requests at once.

Each request is a *program*: a generator that yields what it needs evaluated
(first its prompt, then each token it samples) and reads its logits when it is
resumed. The worker thread runs the programs of up to ``n_slots`` requests
together, llama-server style:

* a request joins between steps: it takes a free slot — the one whose warm
  prefix it shares most of, or a prefix restored from RAM (:mod:`._prefix_cache`)
  — and the rest of its prompt is evaluated in pieces of up to ``n_batch``
  tokens, one per step; several requests' pieces share a batch when llama.cpp's
  cut of it keeps every piece whole enough (:mod:`._slots` explains why);
* every request that is generating contributes its next token to one shared
  batch per step, so one pass over the weights serves them all;
* a request leaves between steps: when its program ends, when it raises, or
  when its caller cancels it (a request cancelled while queued never prefills).

Requests are admitted in arrival order.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from ..._errors import ContextOverflowError, EngineError
from ._context import SequenceContext
from ._disk_prefix import DiskPrefixStore
from ._prefix_cache import CacheStats, Logits, PrefixCache
from ._slots import MIN_PIECE, Slot, canonical_stop, prompt_batches, prompt_pieces, reusable

#: A shared prefix shorter than this is not worth a file (128 tokens take ~0.15 s to evaluate).
MIN_DISK_TOKENS = 128
#: A file is read only where it spares this many more tokens than the slots and RAM already do.
MIN_DISK_GAIN = 64

log = logging.getLogger("toolrun.engines.llamacpp")

#: What a sequence held, to go back to after a detour: its tokens, their count, and their KV state.
SavedSequence: TypeAlias = tuple[list[int], int, bytes]


@dataclass
class Need:
    """What a program asks for: its prompt evaluated (once, first), or tokens appended and evaluated."""

    tokens: list[int]
    prompt: bool = False
    #: Logits for every token, not only the last (a speculative draft's verification reads each row).
    all_logits: bool = False


Program = Generator[Need, None, None]


class SequenceHandle:
    """A program's view of its sequence: the tokens it holds, its logits, and rewinding."""

    def __init__(self, scheduler: Scheduler, job: Job) -> None:
        self._scheduler = scheduler
        self._job = job

    @staticmethod
    def prompt(tokens: list[int]) -> Need:
        return Need(list(tokens), prompt=True)

    @staticmethod
    def eval(tokens: list[int], *, all_logits: bool = False) -> Need:
        return Need(list(tokens), all_logits=all_logits)

    @property
    def tokens(self) -> list[int]:
        """The tokens whose KV the sequence holds (prompt, then what was evaluated after it)."""
        slot = self._job.slot
        return slot.tokens if slot is not None else []

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def reused(self) -> int:
        """Prompt tokens taken from a warm prefix rather than evaluated."""
        return self._job.reused

    def logits_pointer(self) -> Any:
        """The logits of the last token evaluated for this sequence (valid until the program yields)."""
        kept = self._job.kept_logits
        if kept is not None:
            return kept.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        return self._scheduler.context.logits_pointer(self._job.logits_index)

    def select_logits(self, offset: int) -> None:
        """Read the logits of the ``offset``-th token of the last ``eval(..., all_logits=True)`` from now on."""
        self._job.logits_index = self._job.first_logits_index + offset

    def logits(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        kept = self._job.kept_logits
        if kept is not None:
            return kept
        return self._scheduler.context.logits(self._job.logits_index)

    def save(self) -> SavedSequence:
        """A copy of what the sequence holds (its tokens and their KV), to :meth:`restore` after a detour."""
        slot = self._job.slot
        assert slot is not None
        return list(slot.tokens), slot.canonical, self._scheduler.context.save(slot.seq)

    def restore(self, saved: SavedSequence) -> None:
        """Make the sequence hold again what :meth:`save` copied (its logits are then stale: evaluate a token)."""
        slot = self._job.slot
        assert slot is not None
        tokens, canonical, state = saved
        self._scheduler.context.restore(slot.seq, state)
        slot.replace(list(tokens), canonical)

    def truncate(self, n_tokens: int) -> None:
        """Drop the tokens (and their KV) after the first ``n_tokens``."""
        slot = self._job.slot
        assert slot is not None
        self._scheduler.context.remove(slot.seq, n_tokens, -1)
        slot.truncate(n_tokens)


@dataclass(eq=False)
class Job:
    start: Callable[[SequenceHandle], Program]
    cancelled: threading.Event
    #: Called once, from the worker thread, when the job is over (with the error that ended it, if any).
    done: Callable[[BaseException | None], None]
    program: Program | None = None
    slot: Slot | None = None
    need: Need | None = None
    spans: deque[tuple[int, int]] = field(default_factory=deque)
    prompt: list[int] = field(default_factory=list)
    logits_index: int = -1
    #: Batch index of the first token of its last evaluation (for ``SequenceHandle.select_logits``).
    first_logits_index: int = -1
    #: The logits its prompt ended on, taken from the slot rather than evaluated (until it evaluates a token).
    kept_logits: np.ndarray[Any, np.dtype[np.float32]] | None = None
    reused: int = 0
    #: Leading prompt tokens every request with the same system prompt and tools shares (the engine's
    #: reckoning): worth saving to disk (:meth:`Scheduler.attach_disk`) once evaluated.
    persist: int = 0
    #: Where the prompt's pieces are cut so the slot holds exactly that prefix, to save it; 0: not saved.
    persist_at: int = 0


class Scheduler:
    """The worker thread that owns the llama context and runs every request's program (see module doc)."""

    def __init__(
        self,
        model: Any,
        *,
        n_slots: int,
        n_ctx_seq: int,
        n_threads: int,
        cache_bytes: int,
        n_batch: int = 512,
        min_save_tokens: int = MIN_PIECE,
        min_save_gain: int = 64,
        row_group: int = 1,
    ) -> None:
        if n_batch < 2 * MIN_PIECE:
            raise ValueError(f"n_batch must be at least {2 * MIN_PIECE}")
        self.context = SequenceContext(
            model, n_seq=n_slots, n_ctx_seq=n_ctx_seq, n_threads=n_threads, n_batch=max(n_batch, n_slots)
        )
        self.n_batch = n_batch - n_batch % row_group
        #: Prompt tokens that must be evaluated together for their bits to be reusable (see ``_slots``).
        self.row_group = row_group
        #: A slot's prefix is saved to RAM only if it is this long, and only if this many of its tokens
        #: (or a quarter of them, for a prefix shorter than four times this) would otherwise be lost.
        self.min_save_tokens = min_save_tokens
        self.min_save_gain = min_save_gain
        self.slots = [Slot(i) for i in range(n_slots)]
        self.cache = PrefixCache(cache_bytes)
        self._queue: deque[Job] = deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._clear_requests: list[threading.Event] = []
        #: Statistics the worker updates and ``stats()`` reads (small ints: a torn read is harmless).
        self.steps = 0
        self.decoded_tokens = 0
        self.prefilled_tokens = 0
        #: Prefixes kept on disk for the next process (``attach_disk``); None: none.
        self.disk: DiskPrefixStore | None = None
        self.min_disk_tokens = MIN_DISK_TOKENS
        self.min_disk_gain = MIN_DISK_GAIN

    @property
    def stats(self) -> CacheStats:
        return self.cache.stats

    def attach_disk(
        self, store: DiskPrefixStore, *, min_tokens: int = MIN_DISK_TOKENS, min_gain: int = MIN_DISK_GAIN
    ) -> None:
        """Keep prefixes of ``min_tokens`` or more on disk too, and restore one where it spares ``min_gain`` more
        tokens than the slots and RAM do (before the first request)."""
        store.stats = self.cache.stats
        self.disk, self.min_disk_tokens, self.min_disk_gain = store, min_tokens, min_gain

    @property
    def queued(self) -> int:
        """Requests waiting for a free slot."""
        return len(self._queue)

    # ------------------------------------------------------------ clients

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise EngineError("the engine is closed")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="toolrun-llama", daemon=True)
                self._thread.start()
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """Stop ``job``: at once if it is still queued (it never prefills), else at the worker's next step."""
        with self._cond:
            job.cancelled.set()
            try:
                self._queue.remove(job)
            except ValueError:
                self._cond.notify()
                return
        job.done(None)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self.context.close()
        if self.disk is not None:
            self.disk.flush()  # a process that ends now (toolrun run) leaves its prefix written

    def clear(self) -> None:
        """Forget every warm prefix (slots, RAM and this configuration's files on disk), once the requests
        running now are done; new ones wait until then. For benchmarks and tests that measure cold starts."""
        cleared = threading.Event()
        with self._cond:
            if self._thread is None:
                self._clear_now()
                return
            self._clear_requests.append(cleared)
            self._cond.notify()
        cleared.wait()

    def _clear_now(self) -> None:
        self.context.clear()
        for slot in self.slots:
            slot.truncate(0)
        self.cache.clear()
        if self.disk is not None:
            self.disk.clear()

    # -------------------------------------------------------------- worker

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._active and not self._queue and not self._clear_requests:
                    self._cond.wait()
                if self._closing:
                    pending = list(self._queue) + self._active
                    self._queue.clear()
                    self._active.clear()
                    break
                if self._clear_requests and not self._active:
                    self._clear_now()
                    for cleared in self._clear_requests:
                        cleared.set()
                    self._clear_requests.clear()
                admitted: list[Job] = []
                while self._queue and not self._clear_requests and len(self._active) + len(admitted) < len(self.slots):
                    admitted.append(self._queue.popleft())
            for job in admitted:
                self._start(job)
            try:
                self._step()
            except BaseException as exc:
                log.exception("llama.cpp step failed")
                for job in list(self._active):
                    self._finish(job, exc)
        for job in pending:
            self._finish(job, EngineError("the engine was closed"))
        for cleared in self._clear_requests:
            cleared.set()

    def _start(self, job: Job) -> None:
        if job.cancelled.is_set():  # cancelled while queued: no slot, no prefill
            job.done(None)
            return
        handle = SequenceHandle(self, job)
        try:
            job.program = job.start(handle)
            need = next(job.program)
            if not need.prompt:
                raise EngineError("a program must start with its prompt")
            if len(need.tokens) > self.context.n_ctx_seq:
                raise ContextOverflowError(len(need.tokens), 0, self.context.n_ctx_seq)
        except StopIteration:
            job.done(None)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the request
            job.done(exc)
            return
        job.prompt = need.tokens
        slot, start = self._route(need.tokens)
        slot.busy = True
        slot.touch()
        job.slot = slot
        job.reused = start
        if start:
            self.stats.hits += 1
            self.stats.reused_tokens += start
        else:
            self.stats.misses += 1
        job.spans = deque(self._prompt_pieces(job, start))
        job.need = None
        self._active.append(job)
        if start == len(need.tokens):  # the slot's own last prompt, again: its logits are kept
            job.kept_logits = slot.prompt_logits
            self._advance(job)
            job.kept_logits = None

    def _finish(self, job: Job, error: BaseException | None) -> None:
        if job in self._active:
            self._active.remove(job)
        if job.program is not None:
            try:
                job.program.close()
            except BaseException as exc:  # noqa: BLE001 - the program's cleanup failed: report that
                error = error or exc
        if job.slot is not None:
            job.slot.busy = False
            job.slot.touch()
        job.done(error)

    def _advance(self, job: Job) -> None:
        """Resume ``job``'s program now that its last need is met; it samples and says what it needs next."""
        assert job.program is not None and job.slot is not None
        try:
            need = job.program.send(None)
        except StopIteration:
            self._finish(job, None)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the request
            self._finish(job, exc)
            return
        if need.prompt:
            self._finish(job, EngineError("a program gives its prompt once"))
            return
        if job.slot is not None and len(job.slot.tokens) + len(need.tokens) > self.context.n_ctx_seq:
            self._finish(
                job,
                ContextOverflowError(
                    len(job.prompt), len(job.slot.tokens) + len(need.tokens) - len(job.prompt), self.context.n_ctx_seq
                ),
            )
            return
        job.need = need

    def _step(self) -> None:
        for job in list(self._active):
            if job.cancelled.is_set():
                self._finish(job, None)
        self.steps += 1
        context = self.context
        batch = context.batch
        # 1. Everyone generating one token: all of them in one batch, in sequence order (llama.cpp splits
        #    the batch wherever the sequence ids are not consecutive). A program that evaluates several
        #    tokens at once (a question put to the model, a prompt switched for a text answer) gets a batch
        #    of its own, as a prompt piece does: beside other sequences llama.cpp would cut its tokens into
        #    ubatches of another shape, and their numbers would depend on who else is decoding.
        decoding = sorted((j for j in self._active if j.need is not None), key=lambda j: j.slot.seq if j.slot else 0)
        together = [j for j in decoding if j.need is not None and len(j.need.tokens) == 1]
        alone = [[j] for j in decoding if j.need is not None and len(j.need.tokens) > 1]
        for group in ([together] if together else []) + alone:
            for job in group:
                assert job.slot is not None and job.need is not None
                slot, tokens = job.slot, job.need.tokens
                base, every = len(slot.tokens), job.need.all_logits
                for k, token in enumerate(tokens):
                    index = batch.add(token, base + k, slot.seq, every or k == len(tokens) - 1)
                job.logits_index = index
                job.first_logits_index = index - len(tokens) + 1
                slot.tokens.extend(tokens)
                self.decoded_tokens += len(tokens)
            context.decode()
            for job in group:
                job.need = None
                self._advance(job)
        # 2. Prompts: one piece per request per step. Several requests' pieces share a batch where that
        #    leaves their bits alone (``prompt_batches``).
        prompting = sorted((j for j in self._active if j.spans), key=lambda j: j.slot.seq if j.slot else 0)
        lengths = [j.spans[0][1] - j.spans[0][0] for j in prompting]
        for indices in prompt_batches(lengths, self.n_batch, self.row_group):
            group = [prompting[i] for i in indices]
            for job in group:
                assert job.slot is not None
                start, stop = job.spans[0]
                for pos in range(start, stop):
                    index = batch.add(job.prompt[pos], pos, job.slot.seq, pos == len(job.prompt) - 1)
                if stop == len(job.prompt):
                    job.logits_index = index
            context.decode()
            for job in group:
                assert job.slot is not None
                slot = job.slot
                start, stop = job.spans.popleft()
                slot.tokens.extend(job.prompt[start:stop])
                if slot.canonical == start:
                    slot.canonical = canonical_stop(start, stop, self.row_group)
                self.prefilled_tokens += stop - start
                if stop == job.persist_at:
                    self._persist(job)
                if stop == len(job.prompt):
                    if slot.canonical == stop:
                        slot.keep_prompt_logits(context.logits(job.logits_index))
                    self._advance(job)

    # ------------------------------------------------------------ routing

    def _route(self, prompt: list[int]) -> tuple[Slot, int]:
        """The free slot for ``prompt`` and how many of its tokens it already holds (see module doc)."""

        def reuse(slot: Slot) -> int:
            """Tokens ``slot`` spares: the whole prompt if it is the slot's kept one, else its canonical prefix."""
            if slot.holds_prompt(prompt):
                return len(prompt)
            return reusable(slot.tokens, slot.canonical, prompt, self.row_group)

        free = [s for s in self.slots if not s.busy]
        own = {s.seq: reuse(s) for s in free}
        if max(own.values()) > 0:
            target = max(free, key=lambda s: (own[s.seq], s.last_used))
        else:  # nothing to reuse here: overwrite the least recently used slot
            target = min(free, key=lambda s: s.last_used)
        start = own[target.seq]

        # A longer prefix elsewhere: in another slot (busy or not), or saved in RAM.
        # (An exact repeat of a prompt whose logits were kept there is taken whole.)
        best, source_slot, source_key = start, None, None
        for slot in self.slots:
            if slot is not target and (n := reuse(slot)) > best:
                best, source_slot = n, slot
        found = self.cache.best(prompt)
        if found is not None:
            key, shared = found
            exact = shared == len(key) == len(prompt) and self.cache.has_logits(key)
            if (n := len(prompt) if exact else reusable(key, len(key), prompt, self.row_group)) > best:
                best, source_slot, source_key = n, None, key
        from_disk = self._from_disk(prompt, best)
        if from_disk is not None:
            best, source_slot, source_key = from_disk[2], None, None

        state: bytes | None = None
        logits: Logits | None = None
        if best > start:
            # Taken before the target is saved: saving may evict this very entry.
            if from_disk is not None:
                tokens, state = list(from_disk[0]), from_disk[1]
            elif source_key is not None:
                tokens = list(source_key)
                state, logits = self.cache.get(source_key)
            else:
                assert source_slot is not None
                tokens, state = source_slot.canonical_tokens(), self.context.save(source_slot.seq)
                logits = source_slot.prompt_logits if source_slot.holds_prompt(prompt) else None
        if best > start or start < target.canonical // 2:
            self._save(target, keep=0 if best > start else start)  # about to lose most of it: keep it in RAM
        if state is not None and from_disk is not None:
            start = self._restore_from_disk(target, tokens, state, best)
        elif state is not None:
            started = time.perf_counter()
            self.context.restore(target.seq, state)
            target.replace(tokens, len(tokens))
            if logits is not None and best == len(prompt):
                target.keep_prompt_logits(logits)
            self.stats.restores += 1
            start = best
            log.debug("restored a %d-token prefix in %.1f ms", len(tokens), (time.perf_counter() - started) * 1e3)
        self.context.remove(target.seq, start, -1)
        target.truncate(start)
        return target, start

    def _save(self, slot: Slot, keep: int) -> None:
        """Keep ``slot``'s canonical prefix in RAM before all but ``keep`` of its tokens are overwritten."""
        tokens = slot.canonical_tokens()
        # An entry's bytes grow with its length, and what it saves is the tokens that would be lost: a
        # long prefix is kept for a long loss only (a new user turn after a 1,000-token tool list is not
        # worth 12 MB), a short prompt whole (a few hundred KB, and its logits).
        lost = len(tokens) - keep
        if len(tokens) < self.min_save_tokens or lost < min(self.min_save_gain, len(tokens) // 4):
            return
        logits = slot.prompt_logits if slot.prompt_end == len(tokens) else None
        key = tuple(tokens)
        if key in self.cache and (logits is None or self.cache.has_logits(key)):
            self.cache.get(key)  # wanted again: now the most recent
            return
        if key not in self.cache and self.cache.covers(tokens):
            return
        # Only the canonical cells: the tail (decoded tokens) is never reused.
        self.context.remove(slot.seq, len(tokens), -1)
        slot.truncate(len(tokens))
        self.cache.put(tokens, self.context.save(slot.seq), logits)

    # ------------------------------------------------------------ disk (see _disk_prefix)

    def _from_disk(self, prompt: list[int], best: int) -> tuple[tuple[int, ...], bytes, int] | None:
        """A prefix saved on disk that spares ``min_disk_gain`` more of ``prompt`` than ``best`` does: its tokens,
        its state (read and checked whole) and the tokens it spares. Read on this thread: only where it stands
        in for evaluating those tokens on this same thread, which takes far longer (module doc of _disk_prefix)."""
        if self.disk is None or len(prompt) - best < self.min_disk_gain:
            return None
        found = self.disk.best(prompt)
        spared = 0 if found is None else reusable(found[0], len(found[0]), prompt, self.row_group)
        state = self.disk.load(found[0]) if found is not None and spared - best >= self.min_disk_gain else None
        if state is None:
            if len(prompt) - best >= self.min_disk_tokens:
                self.stats.disk_misses += 1
            return None
        assert found is not None
        return found[0], state, spared

    def _restore_from_disk(self, target: Slot, tokens: list[int], state: bytes, spared: int) -> int:
        """Restore a state read from disk into ``target``; the tokens it now holds for the prompt (0 if llama.cpp
        refused the state: the file is deleted and the prompt evaluated whole)."""
        started = time.perf_counter()
        try:
            self.context.restore(target.seq, state)
        except EngineError as exc:
            assert self.disk is not None
            self.disk.forget(tokens, str(exc))
            target.truncate(0)  # restore() dropped the sequence's cells
            return 0
        target.replace(tokens, len(tokens))
        self.stats.disk_hits += 1
        self.stats.disk_restored_tokens += spared
        log.debug("restored a %d-token prefix from disk in %.1f ms", len(tokens), (time.perf_counter() - started) * 1e3)
        return spared

    def _prompt_pieces(self, job: Job, start: int) -> list[tuple[int, int]]:
        """The pieces ``job``'s prompt is evaluated in from ``start``: cut where its shared prefix ends, when that
        prefix is to be saved to disk (a cut anywhere keeps the bits: see _slots)."""
        prompt = job.prompt
        cut = min(job.persist, len(prompt) - MIN_PIECE)
        cut -= cut % self.row_group
        if self.disk is None or cut < self.min_disk_tokens or cut - start < MIN_PIECE or self.disk.holds(prompt[:cut]):
            return prompt_pieces(start, len(prompt), self.n_batch, self.row_group)
        job.persist_at = cut
        return prompt_pieces(start, cut, self.n_batch, self.row_group) + prompt_pieces(
            cut, len(prompt), self.n_batch, self.row_group
        )

    def _persist(self, job: Job) -> None:
        """Hand the slot's state, now exactly the prompt's shared prefix, to the disk store's writer thread."""
        slot = job.slot
        assert slot is not None and self.disk is not None
        if slot.canonical == len(slot.tokens) == job.persist_at:
            self.disk.save(slot.tokens, self.context.save(slot.seq))
