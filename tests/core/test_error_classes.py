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


# How the server names each error in Cloudflare's envelope (its integer code) and OpenAI's (its type).
DIALECTS = {
    "ToolrunError": (3043, "server_error"),
    "InvalidInputError": (5006, "invalid_request_error"),
    "ToolSchemaError": (5006, "invalid_request_error"),
    "ToolChoiceError": (5006, "invalid_request_error"),
    "ContextOverflowError": (5021, "invalid_request_error"),
    "ModelNotFoundError": (5007, "invalid_request_error"),
    "ModelUnavailableError": (5016, "server_error"),
    "ModelFetchError": (5016, "server_error"),
    "EngineError": (3043, "server_error"),
    "OverloadedError": (3040, "rate_limit_error"),
    "OpenAPISpecError": (5006, "invalid_request_error"),
    "ToolExecutionError": (3043, "server_error"),
    "MCPServerError": (3043, "server_error"),
    "EvalDataError": (3043, "server_error"),
    "AuthenticationError": (10000, "authentication_error"),
    "ForbiddenError": (7403, "permission_error"),
    "PayloadTooLargeError": (3006, "invalid_request_error"),
    "InvalidJSONError": (5006, "invalid_request_error"),
    "RouteNotFoundError": (7003, "invalid_request_error"),
    "MethodNotAllowedError": (7001, "invalid_request_error"),
}


@pytest.mark.parametrize("cls", [c for c, _, _ in EXPECTED], ids=[c.__name__ for c, _, _ in EXPECTED])
def test_cloudflare_code_and_openai_type(cls: type[errors.ToolrunError]) -> None:
    error = errors.ContextOverflowError(10, 10, 16) if cls is errors.ContextOverflowError else cls("no")
    cloudflare = server_errors.cloudflare_error_body(error)["errors"][0]["code"]
    openai = server_errors.openai_error_body(error)["error"]["type"]
    assert (cloudflare, openai) == DIALECTS[cls.__name__]
