"""Stand-ins for the ``ai`` object that run_with_tools drives (imported by the tests of this folder)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def reply(text: str = "", *calls: tuple[str, Any], usage: int = 10) -> dict[str, Any]:
    """An ``AI.run`` result: text and/or tool calls ``(name, arguments)`` (Workers AI shape, no ids)."""
    return {
        "response": text,
        "tool_calls": [{"name": name, "arguments": args} for name, args in calls],
        "usage": {"prompt_tokens": usage, "completion_tokens": 1, "total_tokens": usage + 1},
    }


class ScriptedAI:
    """``run(model, inputs)`` answers from a script and records (a deep copy of) each request.

    A script item is a reply dict or a function of the request returning one. A
    streaming request gets the reply's text back as events, word by word.
    """

    def __init__(self, *script: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    async def run(self, model: str, inputs: dict[str, Any]) -> Any:
        self.requests.append(copy.deepcopy(inputs))
        if not self.script:
            raise AssertionError(f"the script ran out at request {len(self.requests)}: {inputs['messages'][-1]}")
        item = self.script.pop(0)
        answer = item(inputs) if callable(item) else item
        if inputs.get("stream"):
            return self._events(answer)
        return answer

    @staticmethod
    async def _events(answer: dict[str, Any]):
        for i, word in enumerate(answer["response"].split(" ")):
            yield {"response": word if i == 0 else " " + word}
        yield {"response": "", "usage": answer["usage"], "finish_reason": "stop"}


class SyncScriptedAI(ScriptedAI):
    """The same script behind a blocking ``run`` (like toolrun's ``AI``); streams are plain iterators."""

    def run(self, model: str, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        self.requests.append(copy.deepcopy(inputs))
        answer = self.script.pop(0)
        if inputs.get("stream"):
            words = answer["response"].split(" ")
            return iter(
                [{"response": w if i == 0 else " " + w} for i, w in enumerate(words)]
                + [{"response": "", "usage": answer["usage"], "finish_reason": "stop"}]
            )
        return answer


class FirstReplyScripted:
    """The real model, except that the first request gets a scripted reply.

    The binding's grammar and call validation make the real model unable to
    name a tool that does not exist or break a schema, so those turns are
    injected; everything after them (reading the error, retrying, answering)
    is the real model's own work.
    """

    def __init__(self, ai: Any, first: dict[str, Any]) -> None:
        self.ai = ai
        self.first: dict[str, Any] | None = first
        self.requests: list[dict[str, Any]] = []

    async def run(self, model: str, inputs: dict[str, Any]) -> Any:
        self.requests.append(copy.deepcopy(inputs))
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return await self.ai.run(model, inputs)
