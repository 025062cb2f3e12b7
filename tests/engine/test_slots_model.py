"""Slots and warm prefixes on the real model: reuse never changes a greedy answer (slow: ``-m model``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun._errors import ContextOverflowError
from toolrun._types import normalize_messages, normalize_tools
from toolrun.engines import GenerationRequest, SamplingParams
from toolrun.engines.llamacpp import LlamaCppEngine
from toolrun.formats import get_format

pytestmark = pytest.mark.model

DOMAINS = {
    "weather": ("city", ["get_forecast", "get_alerts", "get_air_quality"]),
    "mail": ("recipient", ["send_email", "search_inbox", "archive_thread"]),
    "shop": ("product", ["find_product", "add_to_cart", "track_order"]),
}
QUESTIONS = {
    "weather": "Will it rain in Lisbon tomorrow?",
    "mail": "Send an email to ana@example.com saying the report is late.",
    "shop": "Where is my order of running shoes?",
}


def tools_of(domain: str) -> list[dict[str, Any]]:
    field, names = DOMAINS[domain]
    return [
        {
            "name": name,
            "description": f"{name.replace('_', ' ').capitalize()} in the user's {domain} account.",
            "parameters": {
                "type": "object",
                "properties": {
                    field: {"type": "string", "description": f"The {field}."},
                    "details": {"type": "string", "description": "Anything else the user said that matters."},
                },
                "required": [field],
            },
        }
        for name in names
    ]


def request(domain: str, question: str | None = None, max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(
        normalize_messages([{"role": "user", "content": question or QUESTIONS[domain]}]),
        normalize_tools(tools_of(domain)),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0),
    )


async def answer(engine: LlamaCppEngine, req: GenerationRequest) -> tuple[Any, ...]:
    """What the client sees, call ids aside: text, calls, usage and finish reason."""
    text, calls, final = "", [], {}
    async for event in engine.generate(req):
        if "tool_calls" in event:
            calls += [(c["name"], c["arguments"]) for c in event["tool_calls"]]
        elif "usage" in event:
            final = event
        elif "response" in event:
            text += event["response"]
    return text, calls, final.get("usage"), final.get("finish_reason")


@pytest.fixture(scope="module")
def weights() -> str:
    return AsyncAI().weights(DEFAULT_MODEL)


def make_engine(weights: str, **options: Any) -> LlamaCppEngine:
    engine = LlamaCppEngine(
        weights, get_format("hermes"), context_window=options.pop("context_window", 2048), n_threads=2, **options
    )
    engine.load()
    return engine


@pytest.fixture(scope="module", params=[True, False], ids=["batch-invariant", "repacked"])
def engine(weights: str, request: pytest.FixtureRequest) -> Iterator[LlamaCppEngine]:
    """Reuse is result-neutral on either kind of weights (only decoding beside others needs unrepacked ones)."""
    engine = make_engine(weights, slots=2, batch_invariant=request.param)
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture
async def fresh(engine: LlamaCppEngine) -> AsyncIterator[LlamaCppEngine]:
    engine.clear_cache()
    yield engine


async def cold(engine: LlamaCppEngine, req: GenerationRequest) -> tuple[Any, ...]:
    engine.clear_cache()
    return await answer(engine, req)


async def test_alternating_tool_sets_answer_as_cold_requests(fresh: LlamaCppEngine) -> None:
    await answer(fresh, request("weather"))
    await answer(fresh, request("mail"))
    # Each client's tool list is warm in its own slot; the questions are new.
    order = [("weather", "Is it windy in Porto today?"), ("mail", "Find the email from Bruno about the budget.")]
    before = fresh.stats()
    warm = [await answer(fresh, request(d, q)) for d, q in order]
    after = fresh.stats()
    assert after["cache_hits"] - before["cache_hits"] == 2, after
    assert after["cache_reused_tokens"] - before["cache_reused_tokens"] >= 2 * 256, after  # the tool lists
    for (domain, question), got in zip(order, warm, strict=True):
        assert got == await cold(fresh, request(domain, question)), (domain, question)


async def test_a_tool_loop_round_reuses_its_prefix_and_answers_as_cold(fresh: LlamaCppEngine) -> None:
    first = request("weather", max_tokens=48)
    text, calls, _, _ = await answer(fresh, first)
    assert calls, text
    name, arguments = calls[0]
    second = GenerationRequest(
        normalize_messages(
            [
                {"role": "user", "content": QUESTIONS["weather"]},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"rain_probability": 0.8}'},
            ]
        ),
        normalize_tools(tools_of("weather")),
        sampling=SamplingParams(max_tokens=16, temperature=0),
    )
    before = fresh.stats()["cache_reused_tokens"]
    warm = await answer(fresh, second)
    assert fresh.stats()["cache_reused_tokens"] > before
    assert warm == await cold(fresh, second)


async def test_concurrent_requests_decode_as_they_would_alone(weights: str) -> None:
    engine = make_engine(weights, slots=3)
    try:
        requests = [request(d, max_tokens=16) for d in DOMAINS]
        alone = [await cold(engine, r) for r in requests]
        engine.clear_cache()
        together = await asyncio.gather(*(answer(engine, r) for r in requests))
        assert list(together) == alone
    finally:
        await engine.aclose()


async def test_eviction_under_a_tiny_budget_keeps_answers_correct(weights: str) -> None:
    # One slot and room in RAM for one tool list: each switch saves the slot's prefix, evicting the one saved before.
    engine = make_engine(weights, slots=1, prefix_cache_mb=6)
    try:
        budget = engine.stats()["cache_budget_bytes"]
        answers = {}
        for domain in ["weather", "mail", "weather", "shop"]:  # weather comes back from RAM
            answers[domain] = await answer(engine, request(domain, max_tokens=12))
            assert engine.stats()["cache_bytes"] <= budget
        stats = engine.stats()
        assert stats["cache_restores"] == 1 and stats["cache_evictions"] >= 1 and stats["cache_saves"] >= 3, stats
        assert answers["weather"] == await cold(engine, request("weather", max_tokens=12))
    finally:
        await engine.aclose()


async def test_a_request_cancelled_while_queued_never_runs(weights: str) -> None:
    engine = make_engine(weights, slots=1)
    # A long answer holds the only slot while the second request waits: its first event proves it admitted,
    # and the second is cancelled only once the engine reports it queued, however fast or busy the machine.
    counting = GenerationRequest(
        normalize_messages([{"role": "user", "content": "Count from 1 to 200, one number per line."}]),
        [],
        sampling=SamplingParams(max_tokens=400, temperature=0),
    )
    try:
        long_one = engine.generate(counting)
        await long_one.__anext__()
        queued = engine.generate(request("mail"))
        waiting = asyncio.create_task(queued.__anext__())
        for _ in range(1000):
            if engine.stats()["queued"]:
                break
            await asyncio.sleep(0.01)
        assert engine.stats()["queued"] == 1, engine.stats()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await queued.aclose()
        assert engine.stats()["queued"] == 0
        rest = [event async for event in long_one]
        assert rest[-1]["usage"]["completion_tokens"] > 100, rest[-1]  # it held the slot all along
        stats = engine.stats()
        assert stats["cache_hits"] + stats["cache_misses"] == 1, stats  # only the first was admitted
    finally:
        await engine.aclose()


async def test_context_overflow_is_reported(weights: str) -> None:
    engine = make_engine(weights, slots=1, context_window=256)
    try:
        with pytest.raises(ContextOverflowError):
            await answer(engine, request("weather", "weather " * 300))
        with pytest.raises(ContextOverflowError):
            await answer(engine, request("weather", max_tokens=200))
    finally:
        await engine.aclose()
