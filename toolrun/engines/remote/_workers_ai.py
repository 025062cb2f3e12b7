"""Cloudflare Workers AI as an engine: models by Cloudflare's names, run on Cloudflare.

``POST {base}/accounts/{account_id}/ai/run/{model}`` with the model's inputs —
what ``env.AI.run(model, inputs)`` takes in a Worker — authenticated with an
API token. ``base`` is ``https://api.cloudflare.com/client/v4`` unless
``CLOUDFLARE_BASE_URL`` (or ``base_url=``) replaces it, as in Cloudflare's own
SDK: a ``toolrun serve`` for tests, or an AI Gateway (a base ending in
``/workers-ai``, the gateway's provider URL, gets ``/{model}`` appended instead).

Answers come in several shapes and are all normalised here: ``result.response``
as text or, in JSON mode, an object; ``result.tool_calls`` as ``{name,
arguments: {...}}`` or OpenAI's ``{id, type, function: {name, arguments:
"<json>"}}``; an OpenAI-style ``result.choices``; ``usage``. Text-only requests
stream (SSE); requests with tools are sent whole, since Workers AI's models
differ in how (and whether) they stream calls. Cloudflare's error envelope maps
to toolrun's errors (:mod:`._errors`); capacity errors (429, code 3040) are
retried after their ``Retry-After``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..._errors import ModelUnavailableError
from ..._wire import Event, final_event, openai_tool_choice, workers_ai_message, workers_ai_tool
from .._base import Engine, GenerationRequest, NamedTool
from .._registry import EngineSpec, register_engine
from ..turn import without_repeats
from ._calls import CallAccumulator
from ._errors import cloudflare_error, cloudflare_stream_error
from ._http import RetryPolicy, Timeouts, UpstreamPool, connection_policy
from ._openai import finish_reason

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
BASE_URL_ENV = "CLOUDFLARE_BASE_URL"


@dataclass(frozen=True)
class WorkersAICredentials:
    """An account, its API token and the API base. The token never appears in a repr."""

    account_id: str
    api_token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __repr__(self) -> str:
        return f"WorkersAICredentials(account_id={self.account_id!r}, api_token='***', base_url={self.base_url!r})"

    @classmethod
    def resolve(
        cls, account_id: str | None = None, api_token: str | None = None, base_url: str | None = None
    ) -> WorkersAICredentials:
        """Arguments first, then ``CLOUDFLARE_ACCOUNT_ID`` / ``CLOUDFLARE_API_TOKEN`` / ``CLOUDFLARE_BASE_URL``."""
        account = account_id or os.environ.get(ACCOUNT_ENV, "").strip()
        token = api_token or os.environ.get(TOKEN_ENV, "").strip()
        base = base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        missing = []
        if not account:
            missing.append(f"{ACCOUNT_ENV} (or account_id=)")
        if not token:
            missing.append(f"{TOKEN_ENV} (or api_token=)")
        if missing:
            raise ModelUnavailableError(
                "Workers AI needs your Cloudflare account id and an API token with Workers AI permission: set "
                + " and ".join(missing)
            )
        if not base.startswith(("https://", "http://")):
            raise ModelUnavailableError(f"{BASE_URL_ENV} must be an http(s) URL")
        return cls(account, token, base.rstrip("/"))

    def run_root(self) -> str:
        """The URL that ``/{model}`` is appended to."""
        if self.base_url.endswith("/workers-ai"):
            return self.base_url  # AI Gateway: .../v1/{account}/{gateway}/workers-ai/{model}
        return f"{self.base_url}/accounts/{self.account_id}/ai/run"


class WorkersAIEngine(Engine):
    """One Workers AI model (see the module doc)."""

    def __init__(
        self,
        model: str,
        credentials: WorkersAICredentials,
        *,
        context_window: int | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.context_window = context_window
        self.account_id = credentials.account_id
        self.pool = UpstreamPool(
            [credentials.run_root()],
            headers={"Authorization": f"Bearer {credentials.api_token}"},
            timeouts=timeouts,
            retry=retry,
            transport=transport,
            read_error=lambda name, status, body: cloudflare_error(name, status, body),
            payload_error=cloudflare_stream_error,
            secrets=[credentials.api_token],
        )

    def __repr__(self) -> str:
        return f"WorkersAIEngine({self.model!r}, at={self.pool.names[0]!r})"

    async def aclose(self) -> None:
        await self.pool.aclose()

    # ------------------------------------------------------------- inputs

    def inputs(self, request: GenerationRequest) -> dict[str, Any]:
        """The body of ``ai/run``: Workers AI's input schema, sending only what differs from its defaults."""
        s = request.sampling
        inputs: dict[str, Any]
        if request.raw_prompt is not None:
            inputs = {"prompt": request.raw_prompt, "raw": True}
        else:
            inputs = {"messages": [workers_ai_message(m) for m in request.messages]}
        inputs["max_tokens"] = s.max_tokens
        inputs["temperature"] = s.temperature
        if s.top_p != 1.0:
            inputs["top_p"] = s.top_p
        if s.top_k > 0:
            inputs["top_k"] = s.top_k
        if s.seed is not None:
            inputs["seed"] = s.seed
        if s.repetition_penalty != 1.0:
            inputs["repetition_penalty"] = s.repetition_penalty
        if s.frequency_penalty:
            inputs["frequency_penalty"] = s.frequency_penalty
        if s.presence_penalty:
            inputs["presence_penalty"] = s.presence_penalty
        if request.uses_tools:
            inputs["tools"] = [workers_ai_tool(t) for t in request.tools]
            choice = request.tool_choice
            if isinstance(choice, NamedTool):
                inputs["tool_choice"] = openai_tool_choice(choice.name)
            elif choice == "required":
                inputs["tool_choice"] = "required"
            if not request.parallel_tool_calls:
                inputs["parallel_tool_calls"] = False
        if request.response_schema is not None:
            inputs["response_format"] = {"type": "json_schema", "json_schema": dict(request.response_schema)}
        if not request.uses_tools and request.response_schema is None:
            inputs["stream"] = True
        return inputs

    # ---------------------------------------------------------- answers

    def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        # Workers AI parses calls itself: repeats of answered calls are dropped here, as the turn policy does.
        return without_repeats(self._generate, request)

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        calls = CallAccumulator()
        prompt_tokens = completion_tokens = 0
        pieces = 0
        reported_finish: str | None = None
        payloads = self.pool.stream("/" + self.model, self.inputs(request))
        async with aclosing(payloads):
            async for payload in payloads:
                for part in _parts(payload):
                    text, tool_calls, usage, finish = _normalise(part)
                    if text:
                        pieces += 1
                        yield {"response": text}
                    calls.add(tool_calls)
                    if usage is not None:
                        prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        completion_tokens = int(usage.get("completion_tokens") or 0)
                    reported_finish = finish or reported_finish
        for event in calls.events(self.pool.names[0]):
            yield event
        yield final_event(
            prompt_tokens, completion_tokens or pieces, finish_reason(reported_finish or "stop", calls.count > 0)
        )


def _parts(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The result(s) in a payload: a v4 envelope's ``result``, or the payload itself (a stream event)."""
    if "result" in payload and ("success" in payload or "errors" in payload):
        result = payload.get("result")
        return [result] if isinstance(result, Mapping) else []
    return [payload]


def _normalise(result: Mapping[str, Any]) -> tuple[str, Any, Mapping[str, Any] | None, str | None]:
    """``(text, tool_calls, usage, finish_reason)`` from any result shape Workers AI sends."""
    usage = result.get("usage") if isinstance(result.get("usage"), Mapping) else None
    choices = result.get("choices")
    if isinstance(choices, list):  # OpenAI-style result (some newer models)
        text, calls, finish = "", None, None
        for choice in choices[:1]:
            if isinstance(choice, Mapping):
                message = choice.get("message") or choice.get("delta") or {}
                content = message.get("content") if isinstance(message, Mapping) else None
                text = content if isinstance(content, str) else ""
                calls = message.get("tool_calls") if isinstance(message, Mapping) else None
                finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
        return text, calls, usage, finish
    response = result.get("response")
    if isinstance(response, str):
        text = response
    elif response is None:
        text = ""
    else:  # JSON mode: the answer as an object
        text = json.dumps(response, ensure_ascii=False)
    finish = result.get("finish_reason") if isinstance(result.get("finish_reason"), str) else None
    return text, result.get("tool_calls"), usage, finish


def _workers_ai_engine(spec: EngineSpec) -> WorkersAIEngine:
    remote, account = spec.require_remote(), spec.account
    timeouts, retry = connection_policy(remote)
    credentials = WorkersAICredentials.resolve(account.account_id, account.api_token, account.base_url)
    return WorkersAIEngine(
        remote.model, credentials, context_window=spec.context_window, timeouts=timeouts, retry=retry
    )


register_engine("workers-ai", _workers_ai_engine, source="hosted")


__all__ = ["ACCOUNT_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL", "TOKEN_ENV", "WorkersAICredentials", "WorkersAIEngine"]
