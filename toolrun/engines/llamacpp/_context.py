"""One llama.cpp context holding several sequences, through llama-cpp-python's low-level API.

The context is created with one KV *stream* per sequence (``kv_unified`` off):
each sequence's cells sit in its own buffer, from cell 0 in position order, so
its attention reads exactly its own tokens, laid out the same way whatever the
other sequences hold. That layout is what makes a reused prefix give the same
logits as a cold one (see :mod:`._slots`); a unified buffer interleaves the
cells of sequences decoded together and changes the order of the sums.

Flash attention stays off, as in llama-cpp-python's ``Llama``: on the CPU its
paths split the KV range by thread and by tile depending on the batch, which
again changes the sums.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..._errors import EngineError

#: The most tokens one evaluation can want logits for: a speculative draft and the token before it
#: (:mod:`._speculative`); 24 rows of the 0.5B's 152k logits are 15 MB.
MAX_LOGIT_ROWS = 24


class Batch:
    """A ``llama_batch`` filled token by token: (token, position, sequence, wants logits)."""

    def __init__(self, capacity: int) -> None:
        import llama_cpp as lc

        self._lc = lc
        self.capacity = capacity
        self.raw: Any = lc.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index in the batch (where its logits will be)."""
        i = self.n
        if i >= self.capacity:
            raise EngineError("llama.cpp batch overflow")
        raw = self.raw
        raw.token[i] = token
        raw.pos[i] = pos
        raw.n_seq_id[i] = 1
        raw.seq_id[i][0] = seq
        raw.logits[i] = logits
        self.n = i + 1
        raw.n_tokens = self.n
        return i

    def close(self) -> None:
        if self.raw is not None:
            self._lc.llama_batch_free(self.raw)
            self.raw = None


class SequenceContext:
    """A llama.cpp context with ``n_seq`` sequences of up to ``n_ctx_seq`` tokens each."""

    def __init__(self, model: Any, *, n_seq: int, n_ctx_seq: int, n_threads: int, n_batch: int) -> None:
        import llama_cpp as lc

        self._lc = lc
        params = lc.llama_context_default_params()
        params.n_ctx = n_seq * n_ctx_seq
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        # Logits are read for one token per sequence per batch, or for each token of one speculative
        # draft being verified: reserving room for a whole batch of them (n_batch x 152k floats) would
        # cost 300 MB for nothing.
        params.n_outputs_max = max(n_seq, MAX_LOGIT_ROWS)
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = False
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        ctx = lc.llama_init_from_model(model, params)
        if not ctx:
            raise EngineError(f"llama.cpp could not create a context of {n_seq} x {n_ctx_seq} tokens")
        self.ctx: Any = ctx
        self.memory: Any = lc.llama_get_memory(ctx)
        self.n_seq = n_seq
        # llama.cpp rounds each stream up to a multiple of 256 cells.
        self.n_ctx_seq = int(lc.llama_n_ctx_seq(ctx))
        self.n_batch = n_batch
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
        self.batch = Batch(n_batch)

    # ----------------------------------------------------------- decoding

    def decode(self) -> None:
        """Evaluate the batch (then empty it); raises if llama.cpp refuses it."""
        if self.batch.n == 0:
            return
        code = self._lc.llama_decode(self.ctx, self.batch.raw)
        self.batch.clear()
        if code != 0:
            raise EngineError(f"llama_decode failed with code {code}")

    def logits_pointer(self, index: int) -> Any:
        """The logits row of batch entry ``index`` of the last decode (valid until the next one)."""
        return self._lc.llama_get_logits_ith(self.ctx, index)

    def logits(self, index: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A view of those logits (copy it to keep it past the next decode)."""
        return np.ctypeslib.as_array(self.logits_pointer(index), shape=(self.n_vocab,))

    # ------------------------------------------------------------- memory

    def remove(self, seq: int, start: int = 0, end: int = -1) -> None:
        """Drop the cells of ``seq`` at positions ``[start, end)`` (``end`` -1: to the end)."""
        self._lc.llama_memory_seq_rm(self.memory, seq, start, end)

    def copy(self, source: int, target: int, end: int) -> None:
        """Make ``target`` hold ``source``'s first ``end`` positions (a copy between streams)."""
        self._lc.llama_memory_seq_rm(self.memory, target, 0, -1)
        self._lc.llama_memory_seq_cp(self.memory, source, target, 0, end)

    def save(self, seq: int) -> bytes:
        """The KV state of ``seq`` as bytes (what :meth:`restore` takes)."""
        lc = self._lc
        size = lc.llama_state_seq_get_size(self.ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data(self.ctx, buffer, size, seq)
        if written == 0:
            raise EngineError(f"llama.cpp could not save sequence {seq}")
        return bytes(memoryview(buffer)[:written])

    def restore(self, seq: int, state: bytes) -> None:
        """Replace ``seq``'s cells with a state from :meth:`save`."""
        lc = self._lc
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if lc.llama_state_seq_set_data(self.ctx, buffer, len(state), seq) == 0:
            self.remove(seq)
            raise EngineError(f"llama.cpp could not restore sequence {seq}")

    def clear(self) -> None:
        self._lc.llama_memory_clear(self.memory, True)

    def close(self) -> None:
        if self.ctx is not None:
            self.batch.close()
            self._lc.llama_free(self.ctx)
            self.ctx = None


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of f16 K and V per token (what a warm prefix costs per token)."""
    import llama_cpp as lc

    n_layer = lc.llama_model_n_layer(model)
    n_head = lc.llama_model_n_head(model)
    n_head_kv = lc.llama_model_n_head_kv(model)
    head_dim = lc.llama_model_n_embd(model) // max(n_head, 1)
    return int(n_layer * 2 * n_head_kv * head_dim * 2)
