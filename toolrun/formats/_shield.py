"""Keep text that is not the chat template's from becoming control tokens.

A prompt is the model's chat template filled with the request's text: messages,
tool names and descriptions, parameter names, tool results. Tokenized as one
string with special tokens parsed, a ``<|im_start|>`` typed inside any of them is
the real turn marker, and a tool result can forge a whole assistant turn.

So the request's text is *shielded* before the template sees it: every piece of it
that reads as a control token (and the placeholder characters themselves) is
swapped for a placeholder. After rendering, only what remains in the prompt
outside placeholders — the template's own text — may produce control tokens, and
each placeholder goes back in as plain text: tokenized piece by piece so that it
cannot merge into a control token (local engine), or with a word joiner after its
first character (remote engines, whose tokenizer toolrun does not hold).

Text without control-token text in it is tokenized exactly as before: llama.cpp
splits a prompt at its control tokens before tokenizing the text between them,
which is what :meth:`ShieldedPrompt.tokens` does too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Placeholder delimiters: private-use characters, themselves shielded wherever the request has them.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
#: Goes after a literal's first character for a remote tokenizer: invisible, and it breaks the match.
WORD_JOINER = "\u2060"


class ControlTokens:
    """The texts that tokenize to control tokens for one model (or, remotely, one format's family)."""

    def __init__(self, texts: Iterable[str] = (), *, pattern: str | None = None) -> None:
        # One-character texts (a byte token marked "user defined") cannot be broken apart; leave them be.
        words = sorted({t for t in texts if len(t) >= 2}, key=len, reverse=True)
        alternatives = [re.escape(w) for w in words]
        if pattern:
            alternatives.insert(0, pattern)
        self.texts = frozenset(words)
        self._control = re.compile("|".join(alternatives)) if alternatives else None
        self._shielded = re.compile("|".join([*alternatives, _OPEN, _CLOSE]))

    def split(self, text: str) -> Iterator[tuple[str, bool]]:
        """``text`` in pieces, each with whether it is a control token's text (non-empty pieces only)."""
        if self._control is None:
            if text:
                yield text, False
            return
        at = 0
        for match in self._control.finditer(text):
            if match.start() > at:
                yield text[at : match.start()], False
            if match.end() > match.start():
                yield match.group(), True
            at = match.end()
        if at < len(text):
            yield text[at:], False

    def shield(self, value: Any, literals: list[str]) -> Any:
        """``value`` (strings, and lists and mappings of them, keys included) with each control-token text in
        its strings replaced by a placeholder; the replaced texts are appended to ``literals``."""
        if isinstance(value, str):
            return self._shield_text(value, literals)
        if isinstance(value, Mapping):
            return {self.shield(k, literals): self.shield(v, literals) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.shield(v, literals) for v in value]
        return value

    def _shield_text(self, text: str, literals: list[str]) -> str:
        def swap(match: re.Match[str]) -> str:
            literals.append(match.group())
            return f"{_OPEN}{len(literals) - 1}{_CLOSE}"

        return self._shielded.sub(swap, text)

    def defang(self, text: str) -> str:
        """``text`` with a word joiner after the first character of every control-token text in it."""
        return "".join(self._defang_piece(piece) if control else piece for piece, control in self.split(text))

    def _defang_piece(self, piece: str) -> str:
        return piece[0] + WORD_JOINER + self.defang(piece[1:])


@dataclass(frozen=True)
class ShieldedPrompt:
    """A rendered prompt whose request text was shielded (see the module doc)."""

    #: The prompt, each shielded text a placeholder.
    text: str
    #: The shielded texts, by placeholder number.
    literals: tuple[str, ...]
    control: ControlTokens

    @classmethod
    def trusted(cls, text: str, control: ControlTokens) -> ShieldedPrompt:
        """A prompt whose every control-token text is meant (Workers AI's ``raw`` prompts)."""
        return cls(text.replace(_OPEN, "").replace(_CLOSE, ""), (), control)

    def tokens(self, special: Callable[[str], list[int]], plain: Callable[[str], list[int]]) -> list[int]:
        """Token ids: the template's control-token texts through ``special`` (control tokens parsed), the
        rest through ``plain`` (parsed as text only), shielded texts so that none becomes a control token."""
        ids: list[int] = []
        for piece, control in self.control.split(self.text):
            if control:
                ids += special(piece)
                continue
            for part, literal in _placeholders(piece, self.literals):
                ids += self._literal_tokens(part, plain) if literal else plain(part)
        return ids

    def _literal_tokens(self, text: str, plain: Callable[[str], list[int]]) -> list[int]:
        # Some tokenizers match "user defined" tokens (Qwen's <tool_call>) even as plain text: break each
        # control-token text after its first character so that no piece holds one whole.
        ids: list[int] = []
        for piece, control in self.control.split(text):
            if control:
                ids += plain(piece[0]) + self._literal_tokens(piece[1:], plain)
            else:
                ids += plain(piece)
        return ids

    def defanged(self) -> str:
        """The prompt as text for a remote tokenizer: shielded texts back, each control-token text in them
        broken by a word joiner (see :data:`WORD_JOINER`)."""
        return "".join(
            self.control.defang(part) if literal else part for part, literal in _placeholders(self.text, self.literals)
        )

    def plain_text(self) -> str:
        """The prompt with the shielded texts put back as they were (for logs and tests)."""
        return "".join(part for part, _ in _placeholders(self.text, self.literals))


def _placeholders(text: str, literals: tuple[str, ...]) -> Iterator[tuple[str, bool]]:
    """``text`` in pieces with each placeholder resolved to its literal, flagged True."""
    at = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > at:
            yield text[at : match.start()], False
        index = int(match.group(1))
        yield (literals[index], True) if index < len(literals) else (match.group(), False)
        at = match.end()
    if at < len(text):
        yield text[at:], False


__all__ = ["WORD_JOINER", "ControlTokens", "ShieldedPrompt"]
