"""The settings that decide which calls a turn makes, parsed once and passed whole."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..._errors import InvalidInputError

#: The call-or-answer threshold of an entry that names none: "more likely a call than not".
DEFAULT_CALL_THRESHOLD = 0.5


@dataclass(frozen=True)
class CallPolicy:
    """How a model's turns call tools: the catalog's judgement settings for one model.

    Every engine that parses calls itself applies them the same way (see :class:`TurnGate`); the values
    for the local models were measured on held-out BFCL cases (``docs/design.md``).
    """

    #: With tool_choice "auto", call a tool when the model's own probability of opening a call (at its first
    #: token) is at least this, else answer in text. Deciding from the probability makes the choice
    #: independent of temperature and of sampling luck. The default, 0.5, calls when the model more likely
    #: opens a call than not (an entry without tuned settings: a custom GGUF, a remote server in toolrun's
    #: mode); the local models' catalog entries carry values measured on BFCL. 0 samples the choice.
    call_threshold: float = DEFAULT_CALL_THRESHOLD
    #: After a call, write another when the model's share of "go on" is at least this; 0 samples it.
    another_call_threshold: float = 0.0
    #: With ``auto``, hold the turn's first call until it is written and keep it only if it fits the
    #: request (shares a word with it, or every value in it was said); otherwise answer in text.
    check_relevance: bool = False
    #: With ``check_relevance``, also ask the model afresh whether the first call's tool was made for the
    #: request (a yes/no question in a conversation of its own) and keep the call only if its share of "yes"
    #: is at least this; 0 never asks. Local models only: it reads the model's logits.
    ask_relevance: float = 0.0
    #: With ``ask_relevance``, the share a first call needs instead when the user did not say every value it
    #: gives a required parameter (the model made some up); 0, or anything under ``ask_relevance``, asks the
    #: same of every call.
    ask_relevance_unsaid: float = 0.0
    #: When the model would end its turn after a call, let it try one more, kept only if it is new and its
    #: values come from the conversation (small models stop after one call of several).
    try_another_call: bool = False
    #: The temperature a call's arguments are written at when lower than the request's (None: the
    #: request's). A call is structured output: sampling its values buys nothing and, on a small model,
    #: sometimes writes "London" as a latitude; text answers keep the request's temperature.
    call_temperature: float | None = None
    #: A sentence after the tool list when the request offers one tool and allows several calls of it
    #: (formats that know where their tool list ends: hermes).
    parallel_hint: str = ""

    def __post_init__(self) -> None:
        for name in ("call_threshold", "another_call_threshold", "ask_relevance", "ask_relevance_unsaid"):
            _share(getattr(self, name), name)
        for name in ("check_relevance", "try_another_call"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false, not {getattr(self, name)!r}", where=name)
        if self.call_temperature is not None:
            value = _number(self.call_temperature, "call_temperature")
            if value < 0:
                raise InvalidInputError(f"call_temperature must be 0 or more, not {value}", where="call_temperature")
        if not isinstance(self.parallel_hint, str):
            raise InvalidInputError("parallel_hint must be a string", where="parallel_hint")

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The setting names, as config keys."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, base: CallPolicy | None = None, where: str = "") -> CallPolicy:
        """``base`` (or the defaults) with the settings ``values`` names (a config table; other keys are
        ignored); a wrong type or range is an :class:`InvalidInputError` naming ``where.key``."""
        chosen = {key: values[key] for key in cls.setting_names() if key in values}
        current = {f.name: getattr(base or cls(), f.name) for f in fields(cls)}
        try:
            return cls(**{**current, **chosen})
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, where=f"{where}.{exc.where}" if where else exc.where) from None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a number, not {value!r}", where=name)
    return float(value)


def _share(value: Any, name: str) -> None:
    if not 0.0 <= _number(value, name) <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, not {value}", where=name)


__all__ = ["CallPolicy"]
