"""The GGUF model itself: weights, vocabulary and chat template, without a context of its own.

The engine's context is the slots' (:mod:`._context`); llama-cpp-python's
``Llama`` would allocate a second one. This wrapper offers the part of
``Llama``'s interface the engine uses (``tokenize``, ``detokenize``,
``n_vocab``, ``metadata``, ``_model.vocab``), so tokenisation and the
decision-token scan read the same vocabulary.
"""

from __future__ import annotations

from typing import Any


class LlamaModel:
    """A loaded GGUF (``batch_invariant``: see :class:`~toolrun.engines.llamacpp.LlamaCppEngine`)."""

    def __init__(self, path: str, *, batch_invariant: bool) -> None:
        import llama_cpp as lc
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # what Llama(verbose=False) does: llama.cpp's errors only
        params = lc.llama_model_default_params()
        # Weights repacked for the CPU's wide kernels take a different path for 4+ tokens in a batch
        # than for 1-3 (gemm vs gemv), which changes a sequence's logits with the batch it shares.
        # Without repacking every kernel sums each column the same way at any batch size.
        params.use_extra_bufts = not batch_invariant
        self._model: Any = _internals.LlamaModel(path_model=path, params=params, verbose=False)
        self.model: Any = self._model.model
        self.metadata: dict[str, str] = self._model.metadata()

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(self._model.tokenize(text, add_bos, special))

    def detokenize(self, tokens: list[int], special: bool = True) -> bytes:
        return bytes(self._model.detokenize(tokens, special=special))

    def control_texts(self) -> list[str]:
        """The texts of the tokens llama.cpp parses out of text when asked to parse special tokens (control,
        user-defined and unknown ones: its own ``cache_special_tokens`` rule)."""
        import llama_cpp as lc

        vocab = self._model.vocab
        parsed = lc.LLAMA_TOKEN_ATTR_CONTROL | lc.LLAMA_TOKEN_ATTR_USER_DEFINED | lc.LLAMA_TOKEN_ATTR_UNKNOWN
        texts = []
        for token in range(self.n_vocab()):
            if lc.llama_vocab_get_attr(vocab, token) & parsed:
                texts.append(self.detokenize([token], special=True).decode("utf-8", "replace"))
        return texts

    def n_vocab(self) -> int:
        return int(self._model.n_vocab())

    def token_bos(self) -> int:
        return int(self._model.token_bos())

    def token_eos(self) -> int:
        return int(self._model.token_eos())

    def close(self) -> None:
        self._model.close()
