"""The ``Tool`` object: a tool's description for the model plus the Python function that runs it."""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, NamedTuple

from referencing.exceptions import Unresolvable

from .._errors import InvalidInputError, ToolSchemaError
from .._schema import validator
from .._types import check_tool_fields

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


class _FunctionFacts(NamedTuple):
    is_coroutine: bool
    #: The name of the only parameter, when the function takes exactly one
    #: (``def f(args)``): it may want ai-utils' single argument object.
    sole_parameter: str | None


# Reading a signature costs more than the rest of a tool round; functions outlive runs.
_FACTS: weakref.WeakKeyDictionary[Any, _FunctionFacts] = weakref.WeakKeyDictionary()


class Tool(Mapping[str, Any]):
    """A tool that toolrun can both describe to a model and run.

    A read-only mapping with ai-utils' four keys — ``name``, ``description``,
    ``parameters``, ``function`` — so code written for ai-utils' plain-object
    tools works unchanged (``tool["name"]``, ``dict(tool)``, ``{**tool}``,
    ``isinstance(tool, Mapping)``); the same four are attributes too. Equality
    is identity: comparing two tools never builds a lazy schema.

    ``parameters`` may be given directly or produced on first access by
    ``parameters_factory`` (OpenAPI tools resolve their schemas lazily: a big
    spec has thousands of operations and only the ones sent to a model need one).
    Calling a ``Tool`` calls its function unchanged, so a decorated function
    keeps working as a function.

    ``coerce_arguments`` (set by :func:`tool` from type hints) validates the
    model's arguments and turns them into the keyword arguments of the function;
    ``timeout`` (seconds) overrides ``run_with_tools``' per-call timeout.
    """

    __slots__ = (
        "_coerce_arguments",
        "_parameters",
        "_parameters_factory",
        "_validator",
        "description",
        "function",
        "name",
        "timeout",
    )
    _KEYS = ("name", "description", "parameters", "function")

    def __init__(
        self,
        name: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        function: ToolFunction | None = None,
        *,
        parameters_factory: Callable[[], Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        coerce_arguments: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.function = function
        self.timeout = timeout
        self._parameters = parameters
        self._parameters_factory = parameters_factory
        self._coerce_arguments = coerce_arguments
        self._validator: Any = None

    @property
    def parameters(self) -> Mapping[str, Any]:
        if self._parameters is None:
            factory = self._parameters_factory
            self._parameters = factory() if factory else {"type": "object", "properties": {}}
        return self._parameters

    @property
    def __wrapped__(self) -> ToolFunction | None:
        return self.function

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise TypeError(f"tool {self.name!r} has no function to call")
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, description={self.description[:40]!r})"

    # ------------------------------------------------------------- running

    def schema_errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """Every way ``arguments`` breaks the full JSON Schema, as ``path: message`` lines.

        ``format`` is checked too (``date``, ``email``, ``uri``...): plain JSON Schema
        validation, the binding's included, treats it as a mere annotation.
        """
        checker = self._validator
        if checker is None:
            checker = self._validator = validator(self.parameters, check_formats=True)
        try:
            errors = sorted(checker.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:  # a schema that never went through the binding's check
            return [f"$: the schema has a reference that cannot be resolved here ({exc})"]
        except RecursionError:
            return ["$: the schema refers to itself too deeply to be checked"]
        return [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors]

    def prepare_arguments(self, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
        """The positional and keyword arguments the function is called with.

        Raises ``ValueError`` (pydantic's ``ValidationError`` for tools built by
        :func:`tool`) when the arguments cannot be coerced to the function's types.
        """
        return self._split(function_facts(self.function), arguments)

    def _split(self, facts: _FunctionFacts, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
        if self._coerce_arguments is not None:
            return (), self._coerce_arguments(arguments)
        sole = facts.sole_parameter
        # ai-utils passes one object (`function: async ({ city }) => ...`); Python functions take
        # keywords. `def f(args)` whose schema has no property "args" is the former.
        if sole is not None and sole not in (self.parameters.get("properties") or ()):
            return (dict(arguments),), {}
        return (), arguments  # `**arguments` copies it anyway

    async def acall(self, arguments: Mapping[str, Any]) -> Any:
        """Run the function with a model's arguments; sync functions run in a thread of their own.

        A sync function gets a daemon thread rather than a pool worker: a tool
        that hangs past its timeout is abandoned, and a pool would either run
        out of workers or keep the interpreter from exiting.
        """
        function = self.function
        if function is None:
            raise TypeError(f"tool {self.name!r} has no function to call")
        facts = function_facts(function)
        args, kwargs = self._split(facts, arguments)
        if facts.is_coroutine:
            return await function(*args, **kwargs)
        result = await _run_in_daemon_thread(function, args, kwargs)
        if inspect.isawaitable(result):  # a sync callable that returns a coroutine / future
            result = await result
        return result


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def function_facts(function: Any) -> _FunctionFacts:
    """Whether ``function`` is ``async def``, and its sole parameter if it has just one (cached)."""
    try:
        return _FACTS[function]
    except (KeyError, TypeError):
        pass
    sole = None
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        params = []
    if len(params) == 1 and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        sole = params[0].name
    facts = _FunctionFacts(inspect.iscoroutinefunction(function), sole)
    try:
        _FACTS[function] = facts
    except TypeError:
        pass  # not weakly referenceable: computed again next time
    return facts


def _run_in_daemon_thread(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():  # cancelled by a timeout: nobody wants the result any more
            setter(value)

    def target() -> None:
        try:
            result = context.run(function, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:
            pass  # the loop closed while an abandoned tool was still running

    # _thread rather than threading.Thread: Thread.start() blocks until the new thread has
    # run, which on a busy machine serialises a round's calls by milliseconds each; such
    # threads are also never joined at interpreter exit (a hung tool cannot keep it alive).
    _thread.start_new_thread(target, ())
    return future


def tool_from_dict(obj: Mapping[str, Any], where: str) -> Tool:
    function = obj.get("function")
    if isinstance(function, Mapping):
        raise InvalidInputError(
            "an OpenAI-style tool carries no code to run; give run_with_tools "
            "{'name', 'description', 'parameters', 'function': callable} or a tool() function",
            where=where,
        )
    if function is not None and not callable(function):
        raise InvalidInputError(
            f"'function' must be callable, not {type(function).__name__}", where=f"{where}.function"
        )
    name, description = check_tool_fields(obj.get("name"), obj.get("description"), where)
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ToolSchemaError(
            f"tool {name!r}: parameters must be a JSON Schema object, not {type(parameters).__name__}",
            where=f"{where}.parameters",
        )
    return Tool(name, description, parameters, function, timeout=obj.get("timeout"))


def tool_name_and_description(item: Any) -> tuple[Any, str]:
    """Name and description of a tool in any accepted shape (``Tool``, flat dict, OpenAI dict, or a bare name)."""
    if isinstance(item, str):
        return item, ""
    if isinstance(item, Mapping):
        body = item["function"] if isinstance(item.get("function"), Mapping) else item
        return body.get("name"), body.get("description") or ""
    return getattr(item, "name", None), getattr(item, "description", "") or ""
