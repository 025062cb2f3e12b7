"""What a request carries is turned into tokens and grammars before it reaches the scheduler's thread.

That thread decodes for every request at once: a 1 MB tool description tokenized there, or a large
schema's grammar built there, would stall everyone else's tokens while it ran (issue #27's soak sends
both while ordinary requests are in flight).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from toolrun import DEFAULT_MODEL
from toolrun._errors import ContextOverflowError

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.model
async def test_prompts_and_grammars_are_made_off_the_decoding_thread(async_ai: Any, monkeypatch) -> None:
    engine = await async_ai.engine(DEFAULT_MODEL)
    threads: list[str] = []
    prompt_tokens = engine.prompt_tokens

    def recording_prompt(request: Any, **options: Any) -> Any:
        threads.append(threading.current_thread().name)
        return prompt_tokens(request, **options)

    monkeypatch.setattr(engine, "prompt_tokens", recording_prompt)
    built: list[str] = []
    for_request = engine.grammars.for_request

    def recording_grammars(request: Any) -> Any:
        built.append(threading.current_thread().name)
        return for_request(request)

    monkeypatch.setattr(engine.grammars, "for_request", recording_grammars)
    inputs = {
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 32,
    }
    await async_ai.run(DEFAULT_MODEL, inputs)
    assert threads and built
    assert all(name != "toolrun-llama" for name in threads + built), threads + built


@pytest.mark.model
async def test_a_prompt_over_the_context_is_refused_before_it_is_queued(async_ai: Any) -> None:
    engine = await async_ai.engine(DEFAULT_MODEL)
    huge = {**WEATHER, "description": " ".join(f"word{i}" for i in range(20_000))}
    inputs = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": [huge], "max_tokens": 8}
    before = engine.stats()["queued"], engine.stats().get("cache_misses", 0)
    with pytest.raises(ContextOverflowError):
        await async_ai.run(DEFAULT_MODEL, inputs)
    assert (engine.stats()["queued"], engine.stats().get("cache_misses", 0)) == before  # never scheduled


def test_an_oversized_piece_is_refused_after_a_few_chunks_not_tokenized_whole() -> None:
    from toolrun.engines.llamacpp._engine import _COUNT_CHUNK_CHARS, _count_past

    tokenized: list[int] = []

    def words(text: str) -> list[int]:
        tokenized.append(len(text))
        return [0] * len(text.split())

    text = " ".join(f"word{i}" for i in range(200_000))  # ~1.5 MB, 200,000 "tokens"
    assert _count_past(text, 8_000, words) is not None
    assert max(tokenized) <= _COUNT_CHUNK_CHARS and sum(tokenized) < len(text) / 4  # stopped early
    tokenized.clear()
    assert _count_past(text, 250_000, words) is None  # it fits: counted to the end, refused nothing
    assert sum(tokenized) <= len(text)
