"""The chat template a remote engine renders prompts with, in toolrun's tool-parsing mode.

In that mode toolrun writes the prompt itself, so it must know the model's
template. In order of preference:

1. the catalog entry's ``chat_template``: a Jinja file, or a ``.gguf`` whose
   ``tokenizer.chat_template`` metadata is read (the very template the upstream
   would apply, e.g. the GGUF llama.cpp serves);
2. the template the server reports: llama.cpp's at ``GET /props``, vLLM's at
   ``GET /tokenizer_info`` (served with ``--enable-tokenizer-info-endpoint``);
3. the tool-call format's own fallback template (ChatML for ``hermes``, Meta's
   JSON prompt for ``llama3_json``, ``[AVAILABLE_TOOLS]`` for ``mistral``).

A template that never mentions ``tools`` would silently drop them, so such a
template is replaced by the format's fallback, as the local engine does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..._errors import ModelUnavailableError
from ...formats import ToolCallFormat

log = logging.getLogger("toolrun.engines.remote")

#: End-of-turn text per format: what the upstream stops at, and the ``eos_token`` templates write.
END_OF_TURN: dict[str, tuple[str, ...]] = {
    "hermes": ("<|im_end|>", "<|endoftext|>"),
    "llama3_json": ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    "mistral": ("</s>",),
}

#: A chat template is code from a model file; one this large is not a template.
MAX_TEMPLATE_CHARS = 1_000_000


@dataclass(frozen=True)
class PromptTemplate:
    source: str
    eos_token: str
    #: Where the template came from, for logs and errors.
    origin: str


def read_chat_template(path: str) -> tuple[str, str]:
    """``(template, eos_token)`` from a Jinja file or a GGUF's metadata."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise _unusable(path, "is not a file")
    if file.suffix.lower() == ".gguf":
        from llama_cpp import Llama

        # vocab_only: the metadata and the tokenizer, none of the weights.
        llm = Llama(str(file), vocab_only=True, verbose=False)
        try:
            template = llm.metadata.get("tokenizer.chat_template")
            eos = (
                llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
                if llm.token_eos() >= 0
                else ""
            )
        finally:
            llm.close()
        if not template:
            raise _unusable(path, "has no tokenizer.chat_template in its metadata")
        return str(template), eos
    text = file.read_text(encoding="utf-8")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _unusable(path, f"is {len(text)} characters; is it really a template?")
    return text, ""


def _unusable(path: str, why: str) -> ModelUnavailableError:
    """The model's configured chat template cannot be used. Its path is the operator's business: it goes to
    the log, and the error a client may see names only what is wrong."""
    log.error("chat_template %r %s", path, why)
    return ModelUnavailableError(
        f"this model's chat_template (a file in the server's config) {why}; see the server log"
    )


def choose_template(fmt: ToolCallFormat, source: str | None, eos_token: str, origin: str) -> PromptTemplate:
    """The template to use: ``source`` unless it is missing or ignores tools (see the module doc)."""
    eos = eos_token or END_OF_TURN.get(fmt.name, ("",))[0]
    if not source or "tools" not in source:
        return PromptTemplate(fmt.fallback_template, eos, f"the {fmt.name} format's fallback template")
    return PromptTemplate(source, eos, origin)


def stop_strings(fmt: ToolCallFormat) -> list[str]:
    """Strings that end a turn, for upstreams that do not stop at them on their own."""
    return list(dict.fromkeys((*END_OF_TURN.get(fmt.name, ()), *fmt.stop)))


__all__ = ["END_OF_TURN", "PromptTemplate", "choose_template", "read_chat_template", "stop_strings"]
