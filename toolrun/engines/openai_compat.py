"""A remote engine: any OpenAI-compatible chat-completions server (vLLM, llama-server, SGLang, ...).

Past one machine toolrun does not serve models itself; it talks to the engine
that does. The server parses tool calls with its own parser (e.g. vLLM's
``--tool-call-parser hermes``); this adapter maps its stream onto toolrun's
events, emitting each call once its arguments are complete.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .._errors import EngineError, InvalidInputError, OverloadedError
from .._wire import Event, decode_arguments, encode_arguments, final_event, new_call_id
from ._base import Engine, GenerationRequest, NamedTool

log = logging.getLogger("toolrun.engines.openai_compat")


class OpenAICompatibleEngine(Engine):
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, api_key_env: str | None = None,
                 timeout: float = 300.0, context_window: int | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.context_window = context_window
        key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = client or httpx.AsyncClient(timeout=timeout, headers=headers)

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        messages = []
        for m in request.messages:
            m = dict(m)
            if m.get("tool_calls"):
                m["tool_calls"] = [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["function"]["name"], "arguments": encode_arguments(c["function"]["arguments"])}}
                    for c in m["tool_calls"]
                ]
            messages.append(m)
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.model, "messages": messages, "stream": True, "max_tokens": s.max_tokens,
            "temperature": s.temperature, "top_p": s.top_p, "frequency_penalty": s.frequency_penalty,
            "presence_penalty": s.presence_penalty, "stream_options": {"include_usage": True},
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if request.uses_tools:
            body["tools"] = [t.as_openai() for t in request.tools]
            choice = request.tool_choice
            body["tool_choice"] = ({"type": "function", "function": {"name": choice.name}}
                                   if isinstance(choice, NamedTool) else choice)
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.response_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "response", "schema": dict(request.response_schema)}}
        return body

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        if request.raw_prompt is not None:
            raise InvalidInputError("raw prompts are not supported by chat-completions servers", where="raw")
        calls: dict[int, dict[str, Any]] = {}
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        finish = "stop"
        try:
            async with self._client.stream("POST", f"{self.base_url}/chat/completions",
                                           json=self._body(request)) as resp:
                if resp.status_code == 429:
                    raise OverloadedError(f"the remote engine at {self.base_url} is overloaded")
                if resp.status_code >= 400:
                    detail = (await resp.aread()).decode(errors="replace")[:500]
                    raise EngineError(f"{self.base_url} answered {resp.status_code}: {detail}")
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices", []):
                        delta = choice.get("delta", {})
                        if delta.get("content"):
                            yield {"response": delta["content"]}
                        for tc in delta.get("tool_calls") or []:
                            slot = calls.setdefault(tc.get("index", 0), {"id": None, "name": "", "arguments": ""})
                            slot["id"] = tc.get("id") or slot["id"]
                            fn = tc.get("function") or {}
                            slot["name"] += fn.get("name") or ""
                            slot["arguments"] += fn.get("arguments") or ""
                        finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            raise EngineError(f"the remote engine at {self.base_url} failed: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise EngineError(f"the remote engine at {self.base_url} sent invalid JSON: {exc}") from exc
        for index in sorted(calls):
            slot = calls[index]
            arguments, problem = decode_arguments(slot["arguments"])
            if arguments is None:
                log.warning("dropping a call to %r from %s: its arguments %s", slot["name"], self.base_url, problem)
                continue
            yield {"tool_calls": [{"index": index, "id": slot["id"] or new_call_id(), "name": slot["name"],
                                   "arguments": arguments}]}
        yield final_event(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                          "tool_calls" if calls else finish)

    async def aclose(self) -> None:
        await self._client.aclose()
