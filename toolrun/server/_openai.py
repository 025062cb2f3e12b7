"""OpenAI's Chat Completions API (``/v1/chat/completions``, ``/v1/models``) over the same binding.

OpenAI's request differs from Workers AI's inputs in a few fields
(``max_completion_tokens``, ``n``, ``stop``, ``stream_options``...); those are
checked and translated here, everything else (messages, tools, tool_choice,
response_format) is handed to the binding, which accepts OpenAI's shapes and
validates them.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import InvalidInputError, ModelNotFoundError
from .._wire import (
    Event,
    Usage,
    encode_arguments,
    openai_arguments_delta,
    openai_assistant_message,
    openai_call_opener,
)
from ._body import reject_unknown_fields, required_model
from ._endpoint import endpoint
from ._errors import openai_error, openai_error_body
from ._state import ServerState
from ._streaming import EventStreamResponse, event_frames, sse_frame

API = "openai"

#: Request fields handed to the binding as they are (it validates them).
_PASSED_THROUGH = (
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    # Not OpenAI's, but what vLLM and llama.cpp's servers accept too.
    "top_k",
    "repetition_penalty",
)
#: Fields that are accepted and have no effect here.
_IGNORED = ("user", "metadata", "store", "service_tier", "prediction", "reasoning_effort", "modalities")
_HANDLED = (
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)
_KNOWN = frozenset(_PASSED_THROUGH + _IGNORED + _HANDLED)


def _unsupported(field: str, why: str) -> InvalidInputError:
    return InvalidInputError(why, where=field)


def to_binding_inputs(body: dict[str, Any]) -> tuple[str, dict[str, Any], bool, bool]:
    """(model, Workers AI inputs, stream, include_usage) from an OpenAI request body."""
    if "functions" in body or "function_call" in body:
        raise _unsupported(
            "functions",
            "the legacy 'functions'/'function_call' parameters are not supported; "
            "send 'tools' and 'tool_choice' instead",
        )
    reject_unknown_fields(body, _KNOWN)
    model = required_model(body)
    if body.get("messages") is None:
        raise InvalidInputError("'messages' is required", where="messages")
    n = body.get("n")
    # Compared by type too: in Python True == 1.0 == 1, but neither is the integer 1 in JSON.
    if n is not None and (type(n) is not int or n != 1):
        raise _unsupported("n", f"n must be 1 (an integer: one choice per request), not {json.dumps(n)}")
    if body.get("stop") not in (None, [], ""):
        raise _unsupported("stop", "stop sequences are not supported; the model stops at its end-of-turn token")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise _unsupported("logprobs", "logprobs are not supported")
    if body.get("logit_bias") not in (None, {}):
        raise _unsupported("logit_bias", "logit_bias is not supported")
    stream = body.get("stream")
    if stream is None:
        stream = False
    elif not isinstance(stream, bool):
        raise InvalidInputError(f"stream must be true or false, not {stream!r}", where="stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise InvalidInputError("stream_options is only allowed when stream is true", where="stream_options")
        if not isinstance(options, dict):
            raise InvalidInputError("stream_options must be an object", where="stream_options")
        include_usage = options.get("include_usage") is True

    inputs = {k: body[k] for k in _PASSED_THROUGH if body.get(k) is not None}
    inputs["messages"] = _developer_as_system(inputs["messages"])
    inputs["stream"] = stream
    # max_completion_tokens replaced max_tokens in OpenAI's API; honour the newer when both come.
    for field in ("max_completion_tokens", "max_tokens"):
        if body.get(field) is not None:
            inputs["max_tokens"] = body[field]
            break
    return model, inputs, stream, include_usage


def _developer_as_system(messages: Any) -> Any:
    """OpenAI's newer ``developer`` role is what every chat template calls ``system``."""
    if not isinstance(messages, list):
        return messages  # the binding says what is wrong with it
    return [{**m, "role": "system"} if isinstance(m, dict) and m.get("role") == "developer" else m for m in messages]


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


@endpoint(API, "chat_completions", openai_error)
async def chat_completions(request: Request, state: ServerState) -> Response:
    body = await state.read_body(request)
    model, inputs, _, include_usage = to_binding_inputs(body)
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    state.cap_max_tokens(inputs, field=field)
    try:
        result, ticket = await state.run(request, model, inputs)
    except InvalidInputError as exc:
        if field != "max_tokens" and exc.where == "max_tokens":
            exc.where = field  # the binding knows the field as max_tokens; the client sent the newer name
        raise
    # The model that answered, by its catalog name: an alias ("default") names no model a client could compare.
    chunks = _ChunkWriter(_completion_id(), int(time.time()), ticket.model)
    if isinstance(result, dict):  # the whole result: the request did not ask to stream
        return JSONResponse(
            {
                **chunks.envelope("chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": openai_assistant_message(result["response"], result["tool_calls"]),
                        "logprobs": None,
                        "finish_reason": result["finish_reason"],
                    }
                ],
                "usage": result["usage"],
            }
        )
    frames = event_frames(
        result,
        _ChunkRenderer(chunks, include_usage).render,
        opening=[chunks.chunk({"role": "assistant", "content": ""})],
        on_usage=lambda used: state.metrics.observe_usage(ticket.model, used, ticket.held_seconds),
        error_body=openai_error_body,
    )
    return EventStreamResponse(frames, on_finish=lambda _: ticket.release())


class _ChunkWriter:
    """The envelope every ``chat.completion`` and ``chat.completion.chunk`` of one answer shares."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model

    def envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._frame({**self.envelope("chat.completion.chunk"), "choices": [choice]})

    def usage_chunk(self, used: Usage) -> bytes:
        """``stream_options.include_usage``'s last chunk: no choices, the answer's usage."""
        return self._frame({**self.envelope("chat.completion.chunk"), "choices": [], "usage": used})

    @staticmethod
    def _frame(payload: dict[str, Any]) -> bytes:
        return sse_frame(json.dumps(payload, ensure_ascii=False))


class _ChunkRenderer:
    """Binding events as ``chat.completion.chunk``s (after the one that names the assistant's role).

    Tool calls go out as OpenAI streams them: a first delta with id and name,
    then the arguments. Where the engine streamed the arguments as they were
    decoded, those fragments are the deltas; otherwise the whole arguments
    follow in one delta when the checked call arrives.
    """

    def __init__(self, chunks: _ChunkWriter, include_usage: bool) -> None:
        self.chunks = chunks
        self.include_usage = include_usage
        self.opened: set[int] = set()  # calls whose id and name went out
        self.streamed: set[int] = set()  # calls whose arguments went out as fragments

    def render(self, event: Event) -> list[bytes]:
        if "tool_call_delta" in event:
            part = event["tool_call_delta"]
            self.streamed.add(part["index"])
            deltas = [*self._open(part["index"], part["id"], part["name"])]
            deltas.append(openai_arguments_delta(part["index"], part["arguments"]))
        elif "tool_calls" in event:
            deltas = []
            for call in event["tool_calls"]:
                if call["index"] not in self.streamed:
                    deltas.extend(self._open(call["index"], call["id"], call["name"]))
                    deltas.append(openai_arguments_delta(call["index"], encode_arguments(call["arguments"])))
        elif "usage" in event:
            finish = self.chunks.chunk({}, finish=event["finish_reason"])
            return [finish, self.chunks.usage_chunk(event["usage"])] if self.include_usage else [finish]
        else:
            return [self.chunks.chunk({"content": event["response"]})] if event["response"] else []
        return [self.chunks.chunk({"tool_calls": [delta]}) for delta in deltas]

    def _open(self, index: int, call_id: str, name: str) -> list[dict[str, Any]]:
        """The call's opening delta (id and name), the first time the call shows up."""
        if index in self.opened:
            return []
        self.opened.add(index)
        return [openai_call_opener(index, call_id, name)]


# ------------------------------------------------------------------ models


def _openai_model(entry: Any, created: int, ready: bool) -> dict[str, Any]:
    """OpenAI's model object and toolrun's fields; ``ready``: it answers without a download (remote or weights here)."""
    return {
        "id": entry.name,
        "object": "model",
        "created": created,
        "owned_by": "toolrun",
        "ready": ready,
        "function_calling": entry.function_calling,
        "context_window": entry.context_window,
    }


@endpoint(API, "models", openai_error)
async def list_models(request: Request, state: ServerState) -> Response:
    created = int(state.started_at)
    data = [_openai_model(e, created, state.ai.ready(e.name)) for e in state.ai.catalog]
    return JSONResponse({"object": "list", "data": data})


@endpoint(API, "model", openai_error)
async def get_model(request: Request, state: ServerState) -> Response:
    name = request.path_params["model"]
    if name not in state.ai.catalog:
        raise ModelNotFoundError(f"no model named {name!r}; GET /v1/models lists them", where="model")
    entry = state.ai.catalog.get(name)
    return JSONResponse(_openai_model(entry, int(state.started_at), state.ai.ready(entry.name)))


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        # Workers AI's own OpenAI-compatible endpoint, so base_url=".../accounts/ID/ai/v1" works too.
        Route("/client/v4/accounts/{account_id}/ai/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/client/v4/accounts/{account_id}/ai/v1/models", list_models, methods=["GET"]),
    ]
