"""The options of a ``run_with_tools`` run: one object behind the async and the sync face."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypedDict

from .._errors import InvalidInputError
from .._suggest import did_you_mean

#: ai-utils' README documents 1; its code (1.0.1) uses 0. We follow the README:
#: a round in which the model calls nothing ends the run at once, so the extra
#: round costs nothing unless the model needs a second step (look a user up,
#: then their repositories). Pass 0 for ai-utils' actual behaviour.
DEFAULT_MAX_RECURSIVE_TOOL_RUNS = 1
#: Seconds one tool call may take before its error goes back to the model.
DEFAULT_TOOL_TIMEOUT = 30.0

#: ``(tools, ai, model, messages) -> tools``, sync or async: picks the tools to offer.
TrimFunction: TypeAlias = Callable[
    [list[Any], Any, str, list[dict[str, Any]]], "Sequence[Any] | Awaitable[Sequence[Any]]"
]


class RunOptionsArgs(TypedDict, total=False):
    """The keyword arguments of ``run_with_tools`` and ``run_with_tools_sync`` (see :class:`RunOptions`)."""

    strict_validation: bool
    max_recursive_tool_runs: int
    stream_final_response: bool
    verbose: bool
    trim_function: TrimFunction | None
    tool_timeout: float | None


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How ``run_with_tools`` runs.

    - ``strict_validation``: check arguments against the tool's full JSON Schema
      (``format`` included) before calling; a failure goes back to the model to retry.
    - ``max_recursive_tool_runs``: tool rounds after the first; then the answer is
      generated without tools.
    - ``stream_final_response``: return the answer as a stream of ``AI.run`` events.
    - ``verbose``: log every step (calls, arguments, results, timings, token counts)
      at INFO on the ``toolrun.embedded`` logger, printing to stderr if logging is
      not configured.
    - ``trim_function(tools, ai, model, messages) -> tools`` (sync or async) picks the
      tools to offer, e.g. ``auto_trim_tools``, ``bm25_trim_tools``.
    - ``tool_timeout``: seconds per call (``None``: no limit); a ``Tool``'s own
      ``timeout`` wins. The limit holds whatever the tool does: a call still
      running at its deadline is cancelled and abandoned (even one that ignores
      cancellation), a result that comes after it (an async tool that blocked the
      event loop) is discarded, and either way the model is told the call timed
      out. A sync function runs in a thread, which cannot be stopped: past its
      deadline the thread runs on, and what it returns goes nowhere.
      When the run ends by an exception (a tool raising a ``BaseException`` that
      is not an ``Exception``, or the run being cancelled), the other calls of the
      round are cancelled, and the run waits until each has ended or reached its
      deadline before the exception goes on; a call without a limit is not waited for.
    """

    strict_validation: bool = False
    max_recursive_tool_runs: int = DEFAULT_MAX_RECURSIVE_TOOL_RUNS
    stream_final_response: bool = False
    verbose: bool = False
    trim_function: TrimFunction | None = None
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT

    def __new__(cls, *args: Any, **options: Any) -> RunOptions:
        # Runs before the generated __init__, whose own complaint would be a bare TypeError.
        if args:
            raise InvalidInputError(
                f"options are keyword arguments ({', '.join(_OPTION_NAMES)}); got {len(args)} positional",
                where="run_with_tools",
            )
        for name in options:
            if name not in _OPTION_NAMES:
                raise InvalidInputError(
                    f"unknown option {name!r}{did_you_mean(name, _OPTION_NAMES)} (options: {', '.join(_OPTION_NAMES)})",
                    where=name,
                )
        # object.__new__ by name: a slots dataclass is a rebuilt class, where a bare super() fails.
        return object.__new__(cls)

    def __post_init__(self) -> None:
        for flag in ("strict_validation", "stream_final_response", "verbose"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidInputError(f"must be True or False, not {getattr(self, flag)!r}", where=flag)
        rounds = self.max_recursive_tool_runs
        if type(rounds) is not int or rounds < 0:
            raise InvalidInputError(f"must be a whole number >= 0, not {rounds!r}", where="max_recursive_tool_runs")
        timeout = self.tool_timeout
        if timeout is not None and (type(timeout) not in (int, float) or not 0 < timeout < math.inf):
            raise InvalidInputError(
                f"must be a positive number of seconds, or None; got {timeout!r}", where="tool_timeout"
            )
        if self.trim_function is not None and not callable(self.trim_function):
            raise InvalidInputError(
                f"must be a function (tools, ai, model, messages) -> tools, not {type(self.trim_function).__name__}",
                where="trim_function",
            )


_OPTION_NAMES = tuple(RunOptionsArgs.__annotations__)
