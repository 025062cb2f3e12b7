"""A face that passes its arguments on whole to its twin (``AI`` to ``AsyncAI``, a sync function to its async
one) takes the twin's parameters, for type checkers and ``help()`` alike, and needs no copy of the list."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def arguments_of(
    source: Callable[_Arguments, object],
) -> Callable[[Callable[..., _Result]], Callable[_Arguments, _Result]]:
    """Give the decorated function ``source``'s parameters (its own return type stays)."""

    def decorate(function: Callable[..., _Result]) -> Callable[_Arguments, _Result]:
        returns = inspect.signature(function).return_annotation
        signature = inspect.signature(source).replace(return_annotation=returns)
        function.__signature__ = signature  # type: ignore[attr-defined]  # what inspect.signature reads first
        return function

    return decorate


def init_arguments_of(
    source: Callable[_Arguments, object],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, _Arguments], None]]:
    """Give the decorated ``__init__`` the parameters of ``source`` (a class: those of its constructor),
    after its own ``self``."""

    def decorate(init: Callable[..., None]) -> Callable[Concatenate[Any, _Arguments], None]:
        own = inspect.signature(init)
        self_parameter = next(iter(own.parameters.values()))
        theirs = inspect.signature(source)
        init.__signature__ = theirs.replace(  # type: ignore[attr-defined]  # what inspect.signature reads first
            parameters=[self_parameter, *theirs.parameters.values()], return_annotation=own.return_annotation
        )
        return init

    return decorate
