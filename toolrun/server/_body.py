"""The first checks of every dialect's request body: no field the API lacks, and a model to run."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from .._errors import InvalidInputError


def reject_unknown_fields(body: Mapping[str, Any], known: Set[str], *, noun: str = "argument") -> None:
    """A 400 naming every field outside ``known`` (sorted, so the answer is the same each time), at the first."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInputError(f"unrecognized request {noun}(s): {', '.join(unknown)}", where=unknown[0])


def required_model(body: Mapping[str, Any]) -> str:
    """The body's ``model``: a non-empty string, or a 400 at ``model``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError(
            "'model' is required and must be a model name (GET /v1/models lists them)", where="model"
        )
    return model
