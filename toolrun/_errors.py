"""The exception hierarchy shared by every layer.

Each error carries an HTTP ``status_code`` and a short machine ``code``, given
in its class line (``class X(ToolrunError, status_code=404, code="...")``), so the
server can answer in Workers AI's or OpenAI's error shape without a lookup
table, and a ``where`` that points at the offending part of the input
(``messages[2].role``, ``tools[0].parameters``) when there is one.
"""

from __future__ import annotations

from typing import Any


class ToolrunError(Exception):
    """Base class of every error toolrun raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init_subclass__(cls, *, status_code: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        # A subclass states its HTTP status and code in its class line; one it leaves out is inherited.
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(message)

    def __str__(self) -> str:
        # Computed, not stored: an adapter may re-point ``where`` (the OpenAI route's field names).
        return f"{self.where}: {self.message}" if self.where else self.message


class InvalidInputError(ToolrunError, ValueError, status_code=400, code="invalid_input"):
    """The request itself is wrong: malformed messages, bad parameter values."""


class ToolSchemaError(InvalidInputError, code="invalid_tool_schema"):
    """A tool's ``parameters`` is not a usable JSON Schema."""


class ToolChoiceError(InvalidInputError, code="invalid_tool_choice"):
    """``tool_choice`` names no tool that was given, or has a bad shape."""


class ContextOverflowError(InvalidInputError, code="context_length_exceeded"):
    """The prompt plus the requested completion does not fit the context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_window: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_window = context_window
        super().__init__(
            f"the prompt is {prompt_tokens} tokens and max_tokens asks for {max_tokens} more, "
            f"but the model's context window is {context_window} tokens; "
            "shorten the messages or tools, or lower max_tokens",
        )


class ModelNotFoundError(ToolrunError, LookupError, status_code=404, code="model_not_found"):
    """No catalog entry has this name."""


class ModelUnavailableError(ToolrunError, status_code=503, code="model_unavailable"):
    """The model is in the catalog, but its weights are not here (and cannot be fetched)."""


class ModelFetchError(ModelUnavailableError, code="model_fetch_failed"):
    """Downloading or verifying model weights failed."""


class EngineError(ToolrunError, status_code=502, code="engine_error"):
    """The inference engine failed (a remote engine answered badly, llama.cpp failed to decode)."""


class OverloadedError(ToolrunError, status_code=429, code="overloaded"):
    """Too many requests are queued; try again later."""

    def __init__(self, message: str = "the engine queue is full", *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class OpenAPISpecError(InvalidInputError, code="invalid_openapi_spec"):
    """An OpenAPI document could not be read, parsed or understood."""


class ToolExecutionError(ToolrunError, code="tool_execution_error"):
    """A tool's own function failed in a way the caller must see (not reported to the model)."""


class MCPServerError(ToolrunError, status_code=502, code="mcp_server_error"):
    """An MCP server could not be started, reached, or listed.

    Raised when entering ``create_tools_from_mcp``; a server that fails later
    (exits, goes away) is not an exception: its tools answer ``{"error": ...}``
    and the run goes on.
    """
