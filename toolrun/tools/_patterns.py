"""``match_patterns`` entries, checked the same way for every tool source (OpenAPI and MCP)."""

from __future__ import annotations

import re
from typing import Any

from .._errors import InvalidInputError


def compiled_pattern(pattern: Any, where: str) -> re.Pattern[str]:
    """``pattern`` (a string or an ``re.Pattern``) compiled; ``where`` names it in the error."""
    if isinstance(pattern, re.Pattern):
        return pattern
    if isinstance(pattern, str):
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise InvalidInputError(f"not a valid regular expression: {exc}", where=where) from None
    raise InvalidInputError(f"a pattern must be a string or re.Pattern, not {type(pattern).__name__}", where=where)
