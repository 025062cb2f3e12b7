"""'Did you mean ...?' for a misspelt name: the closest known names by ``difflib``'s similarity ratio."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: difflib's ratio at or above which a name counts as a likely misspelling (its own default is 0.6;
#: a little lower catches a dropped dot or digit in a long model name such as qwen2.5-coder-05b).
_CUTOFF = 0.55


def closest(name: str, known: Iterable[str], *, limit: int = 3) -> list[str]:
    """The known names most like ``name``, best first; case is ignored when comparing."""
    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.lower(), candidate)
    folded = difflib.get_close_matches(name.lower(), list(by_folded), n=limit, cutoff=_CUTOFF)
    return [by_folded[match] for match in folded]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` to append to an error message, or ``""`` when nothing is close."""
    return suggestion(closest(name, known))


def suggestion(matches: list[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` for these names, or ``""`` for none."""
    if not matches:
        return ""
    quoted = [repr(m) for m in matches]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"; did you mean {listed}?"
