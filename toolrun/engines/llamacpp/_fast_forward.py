"""Grammar fast-forward: the text a call's grammar admits as its only continuation, as draft tokens.

Once the name of a call is chosen, ``", "arguments": {`` is not a choice: the grammar admits one byte
after another. Finding that text by asking the grammar about all 152k tokens at every step would cost
what a forward pass saves, so it is asked about single bytes instead: a copy of the grammar sampler is
offered the vocabulary's 256 one-byte tokens and an end-of-generation token, and while exactly one byte
is allowed it is taken and the copy moves on. That costs a few hundred candidate checks a byte.

The forced *text* is then tokenized — forcing tokens, never strings — but its tokens are not simply
appended. A forced span's tokenization is not always the model's: ``" {"`` after ``"arguments":`` is one
token when the model writes it, while the forced text stops at ``" {"`` minus its quote (what follows the
brace is free), and the model may spell a forced ``"}}`` in other pieces than the tokenizer would. So
the tokens are a *draft*, evaluated in one batch and verified like any other (:mod:`._speculative`): each
is kept only if the model, sampling under the grammar at that position, chooses it. The last token,
which could merge with what follows, is in effect held back and chosen by the model: where it differs,
the model's own token is taken from the same batch's logits. The output is therefore what plain decoding
writes (SGLang's jump-forward appended the strings themselves, retokenized, and was removed for the
distribution shift that caused; llguidance forces only the tokens that no continuation can merge).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)

#: The most forced bytes looked for at once (a forced span longer than this is taken in two drafts).
MAX_FORCED_BYTES = 96


class GrammarProbe:
    """Asks copies of a grammar sampler what they admit next, cheaply (see the module doc)."""

    def __init__(self, llm: Any) -> None:
        import llama_cpp as lc

        self._lc = lc
        self._llm = llm
        vocab = llm._model.vocab
        self.byte_tokens = _byte_tokens(lc, vocab, llm.n_vocab())
        #: Any end-of-generation token stands for all: the grammar allows one exactly when it may end.
        self._eog = int(lc.llama_vocab_eos(vocab))
        ids = [*self.byte_tokens.values(), self._eog]
        self._byte_of = {token: byte for byte, token in self.byte_tokens.items()}
        self._cands = np.zeros(len(ids), dtype=_TOKEN_DATA)
        self._ids = np.array(ids, dtype=np.intc)
        self._cands_ptr = self._cands.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
        self._one = lc.llama_token_data(0, 0.0, 0.0)

    def forced_bytes(self, grammar: Any, limit: int = MAX_FORCED_BYTES) -> bytes:
        """The bytes ``grammar`` (a llama.cpp grammar sampler, left as it is) admits as its only continuation."""
        lc = self._lc
        if len(self.byte_tokens) < 256:  # a vocabulary without byte tokens: nothing can be said cheaply
            return b""
        copy = lc.llama_sampler_clone(grammar)
        try:
            out = bytearray()
            while len(out) < limit:
                self._cands["id"] = self._ids
                self._cands["logit"] = 0.0
                array = lc.llama_token_data_array(self._cands_ptr, len(self._cands), -1, False)
                lc.llama_sampler_apply(copy, ctypes.byref(array))
                allowed = self._cands["id"][np.isfinite(self._cands["logit"])]
                if len(allowed) != 1 or int(allowed[0]) == self._eog:
                    break
                token = int(allowed[0])
                out.append(self._byte_of[token])
                lc.llama_sampler_accept(copy, token)
            return bytes(out)
        finally:
            lc.llama_sampler_free(copy)

    def forced_tokens(self, grammar: Any) -> list[int]:
        """The forced text's tokens, as far as the grammar admits them one after another.

        Plain tokens only: llama.cpp's grammar never admits a special token (its piece is not text to
        it), so under a call grammar the model spells ``</tool_call>`` as ``</``, ``tool``, ``_call``, ``>``.
        """
        text = _whole_characters(self.forced_bytes(grammar))
        if not text:
            return []
        tokens = list(self._llm.tokenize(text, add_bos=False, special=False))
        return tokens[: self.admitted_prefix(grammar, tokens)]

    def admitted_prefix(self, grammar: Any, tokens: list[int]) -> int:
        """How many of ``tokens``, in order, ``grammar`` admits from where it stands (it is left as it is)."""
        lc = self._lc
        if not tokens:
            return 0
        copy = lc.llama_sampler_clone(grammar)
        try:
            for n, token in enumerate(tokens):
                self._one.id, self._one.logit, self._one.p = ctypes.c_int32(token), 1.0, 0.0
                single = lc.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
                lc.llama_sampler_apply(copy, ctypes.byref(single))
                if not np.isfinite(self._one.logit):
                    return n
                lc.llama_sampler_accept(copy, token)
            return len(tokens)
        finally:
            lc.llama_sampler_free(copy)


def _byte_tokens(lc: Any, vocab: Any, n_vocab: int) -> dict[int, int]:
    """Byte value → the token whose text is that one byte (byte-level BPE vocabularies have all 256)."""
    found: dict[int, int] = {}
    buffer = ctypes.create_string_buffer(8)
    for token in range(n_vocab):
        if lc.llama_token_to_piece(vocab, token, buffer, 8, 0, True) == 1:
            found.setdefault(buffer.raw[0], token)
            if len(found) == 256:
                break
    return found


def _whole_characters(data: bytes) -> bytes:
    """``data`` without a trailing partial UTF-8 character (the tokenizer must see whole characters)."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return data[:cut]
    return b""


__all__ = ["MAX_FORCED_BYTES", "GrammarProbe"]
