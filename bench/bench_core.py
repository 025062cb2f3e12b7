"""Core engine benchmarks, each a ratio measured side by side in one run (absolute times are noisy here).

1. decode tokens/s through ``AI.run`` vs llama-cpp-python called directly (same GGUF, prompt, settings);
2. grammar-constrained vs unconstrained tool-call generation (the same call, with and without the grammar);
3. time to first token of a tool loop's second round vs the same request on a cold KV cache.

Run: ``make bench`` (all benchmarks) or ``.venv/bin/python bench/bench_core.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import replace
from types import SimpleNamespace

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun._types import normalize_messages, normalize_tools
from toolrun.engines import GenerationRequest, SamplingParams
from toolrun.engines.turn import RequestGrammars

PROMPT = [{"role": "user", "content": "Write a detailed, step by step explanation of how a hash map works."}]
TOOL = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "description": "Forecast days"},
        },
        "required": ["city", "unit", "days"],
    },
}
CALL_PROMPT = [{"role": "user", "content": "What's the weather going to be in Paris for the next 3 days, in celsius?"}]


async def decode_rate(engine, request) -> tuple[float, int]:
    """Tokens per second after the first token, and tokens generated."""
    first = None
    n = 0
    async for event in engine.generate(request):
        if "usage" in event:
            n = event["usage"]["completion_tokens"]
        elif first is None:
            first = time.perf_counter()
    return (n - 1) / (time.perf_counter() - first), n


def direct_rate(llm, prompt: str, max_tokens: int) -> tuple[float, int]:
    llm.reset()  # same cold start as our side gets after the cache is cleared
    first = None
    n = 0
    for _ in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0, stream=True):
        n += 1
        if first is None:
            first = time.perf_counter()
    return (n - 1) / (time.perf_counter() - first), n


async def generation_rate(engine, request) -> float:
    """Completion tokens per second over the whole request (the prompt is already cached)."""
    start = time.perf_counter()
    n = 0
    async for event in engine.generate(request):
        if "usage" in event:
            n = event["usage"]["completion_tokens"]
    return n / (time.perf_counter() - start)


async def first_event_seconds(engine, request) -> float:
    start = time.perf_counter()
    async for _ in engine.generate(request):
        return time.perf_counter() - start
    return float("nan")


async def main(reps: int) -> None:
    ai = AsyncAI()
    engine = await ai.engine(DEFAULT_MODEL)
    import llama_cpp

    # llama-cpp-python as its users run it: its own Llama object on the same GGUF and thread count.
    direct = llama_cpp.Llama(
        model_path=engine.model_path, n_ctx=4096, n_batch=512, n_threads=engine.n_threads, verbose=False
    )
    greedy = SamplingParams(max_tokens=128, temperature=0)

    # 1. decode through AI.run's engine vs llama-cpp-python directly, interleaved.
    text_request = GenerationRequest(normalize_messages(PROMPT), sampling=greedy)
    prompt = engine.render_prompt(text_request).plain_text()
    ours, theirs = [], []
    for _ in range(reps):
        engine.clear_cache()
        ours.append((await decode_rate(engine, text_request))[0])
        theirs.append(direct_rate(direct, prompt, 128)[0])
    print(
        f"decode tok/s   toolrun {statistics.median(ours):6.1f}   llama-cpp-python {statistics.median(theirs):6.1f}"
        f"   ratio {statistics.median(ours) / statistics.median(theirs):.3f}  (goal >= 0.97)"
    )

    # 2. the same tool call with the grammar (tool_choice=required) and without it (the model's own output).
    as_users_run_it = engine.policy
    # One call each way (a tried extra call would be timed but not counted), and no relevance hold either:
    # without a grammar the model writes a ```json fence that closes only at the end of its output, where a
    # held call is dropped; what is measured here is the grammar's cost alone.
    engine.policy = replace(engine.policy, try_another_call=False, check_relevance=False)
    tools = normalize_tools([TOOL])
    constrained = GenerationRequest(normalize_messages(CALL_PROMPT), tools, tool_choice="required", sampling=greedy)
    free = GenerationRequest(normalize_messages(CALL_PROMPT), tools, tool_choice="auto", sampling=greedy)
    free_engine_grammar = engine.grammars.for_request
    with_g, without_g = [], []
    async for _ in engine.generate(constrained):  # warm the prompt into the KV cache
        pass
    for _ in range(reps):
        with_g.append(await generation_rate(engine, constrained))
        # The call, with no grammar at all.
        engine.grammars.for_request = lambda request: RequestGrammars(SimpleNamespace(text=None, exact=False))
        try:
            without_g.append(await generation_rate(engine, free))
        finally:
            engine.grammars.for_request = free_engine_grammar
    print(
        f"tool-call tok/s grammar {statistics.median(with_g):6.1f}   free {statistics.median(without_g):6.1f}"
        f"   ratio {statistics.median(with_g) / statistics.median(without_g):.3f}  (goal >= 0.9)"
    )

    engine.policy = as_users_run_it

    # 3. TTFT of a tool loop's second round: warm (prefix in the KV cache) vs cold.
    first_round = await ai.run(DEFAULT_MODEL, {"messages": CALL_PROMPT, "tools": [TOOL], "temperature": 0})
    call = first_round["tool_calls"][0]
    second = CALL_PROMPT + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"forecast": ["sun", "rain", "sun"]})},
    ]
    second_request = GenerationRequest(
        normalize_messages(second), tools, sampling=SamplingParams(max_tokens=1, temperature=0)
    )
    first_request = GenerationRequest(normalize_messages(CALL_PROMPT), tools, sampling=greedy)
    warm, cold = [], []
    for _ in range(reps):
        async for _ in engine.generate(first_request):  # round one fills the cache
            pass
        warm.append(await first_event_seconds(engine, second_request))
        engine.clear_cache()
        cold.append(await first_event_seconds(engine, second_request))
    print(
        f"round-2 TTFT   warm {statistics.median(warm) * 1000:6.0f} ms   cold {statistics.median(cold) * 1000:6.0f} ms"
        f"   ratio {statistics.median(warm) / statistics.median(cold):.3f}  (goal <= 0.3)"
    )
    direct.close()
    await ai.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    asyncio.run(main(parser.parse_args().reps))
