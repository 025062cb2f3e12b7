"""The ``Tool`` object: a tool's description for the model plus the Python function that runs it."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from .._types import ToolSpec

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


class Tool:
    """A tool that toolrun can both describe to a model and run.

    ``parameters`` may be given directly or produced on first access by
    ``parameters_factory`` (OpenAPI tools resolve their schemas lazily: a big
    spec has thousands of operations and only the ones sent to a model need one).
    It also reads like ai-utils' plain-object tools: ``tool["name"]``,
    ``tool["function"]``.
    """

    __slots__ = ("name", "description", "function", "_parameters", "_parameters_factory")
    _KEYS = ("name", "description", "parameters", "function")

    def __init__(
        self,
        name: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        function: ToolFunction | None = None,
        *,
        parameters_factory: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.function = function
        self._parameters = parameters
        self._parameters_factory = parameters_factory

    @property
    def parameters(self) -> Mapping[str, Any]:
        if self._parameters is None:
            factory = self._parameters_factory
            self._parameters = factory() if factory else {"type": "object", "properties": {}}
        return self._parameters

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._KEYS else default

    def keys(self) -> tuple[str, ...]:
        return self._KEYS

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, description={self.description[:40]!r})"
