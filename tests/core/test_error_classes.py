"""Every error's HTTP status and code, as the server answers with them: stated in each class line, inherited
where a class line leaves one out."""

from __future__ import annotations

import pytest

from toolrun import _errors as errors
from toolrun.eval._data import EvalDataError
from toolrun.server import _errors as server_errors

EXPECTED = [
    (errors.ToolrunError, 500, "internal_error"),
    (errors.InvalidInputError, 400, "invalid_input"),
    (errors.ToolSchemaError, 400, "invalid_tool_schema"),
    (errors.ToolChoiceError, 400, "invalid_tool_choice"),
    (errors.ContextOverflowError, 400, "context_length_exceeded"),
    (errors.ModelNotFoundError, 404, "model_not_found"),
    (errors.ModelUnavailableError, 503, "model_unavailable"),
    (errors.ModelFetchError, 503, "model_fetch_failed"),
    (errors.EngineError, 502, "engine_error"),
    (errors.OverloadedError, 429, "overloaded"),
    (errors.OpenAPISpecError, 400, "invalid_openapi_spec"),
    (errors.ToolExecutionError, 500, "tool_execution_error"),
    (errors.MCPServerError, 502, "mcp_server_error"),
    (EvalDataError, 503, "eval_data_unavailable"),
    (server_errors.AuthenticationError, 401, "unauthorized"),
    (server_errors.ForbiddenError, 403, "forbidden"),
    (server_errors.PayloadTooLargeError, 413, "payload_too_large"),
    (server_errors.InvalidJSONError, 400, "invalid_json"),
    (server_errors.RouteNotFoundError, 404, "not_found"),
    (server_errors.MethodNotAllowedError, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("cls", "status_code", "code"), EXPECTED, ids=[c.__name__ for c, _, _ in EXPECTED])
def test_status_and_code(cls: type[errors.ToolrunError], status_code: int, code: str) -> None:
    assert (cls.status_code, cls.code) == (status_code, code)


def test_the_standard_bases_still_catch_them() -> None:
    # Callers catch ValueError / LookupError without knowing toolrun's classes.
    assert issubclass(server_errors.InvalidJSONError, ValueError)
    assert issubclass(errors.ModelNotFoundError, LookupError)


def test_a_subclass_that_states_nothing_inherits_both() -> None:
    class Quiet(errors.ModelUnavailableError):
        pass

    assert (Quiet.status_code, Quiet.code) == (503, "model_unavailable")
    assert (errors.ModelUnavailableError.status_code, errors.ModelUnavailableError.code) == (503, "model_unavailable")
