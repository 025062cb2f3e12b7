"""Deciding call-or-answer through upstreams by what each offers (issue #28's one behaviour change).

``python -m llama_cpp.server`` returns no token probabilities: the remote engine asks a one-token greedy
probe with a ``logit_bias`` on the call openers' tokens (found with ``/extras/tokenize``) instead of
following the model's first token. llama.cpp's ``llama-server`` returns them (``n_probs``) and also has
``/tokenize`` and ``logit_bias``: both ways are run through it. One server start per module and upstream;
the C++ server comes from ``bench/llama_server.py``'s cache (built once, from the llama.cpp that
llama-cpp-python vendors: a long build on 2 cores, so the tests skip until it is there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import LlamaServer, cached_llama_server
from remote_testing import LlamaCppPythonServer, ThreadServer, served_entry
from seed_testing import SEED_MESSAGES, SEED_TOOL
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from stubs import Stub, sse_response

from toolrun import DEFAULT_MODEL
from toolrun._types import normalize_tools
from toolrun.ai import AsyncAI, Catalog, collect
from toolrun.engines import GenerationRequest, SamplingParams
from toolrun.engines.remote import _openai
from toolrun.engines.remote._probe import opener_bias
from toolrun.engines.turn import CallPolicy

JUDGED = "@remote/judged"
RUNS = 20


@pytest.fixture(scope="module")
def gguf(async_ai: AsyncAI) -> str:
    return async_ai.weights(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def python_server(gguf: str) -> Iterator[LlamaCppPythonServer]:
    server = LlamaCppPythonServer(gguf).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cpp_server(gguf: str) -> Iterator[LlamaServer]:
    binary = cached_llama_server()
    if binary is None:
        pytest.skip("llama-server is not built yet: run `.venv/bin/python bench/llama_server.py`")
    with LlamaServer(binary, gguf).start() as server:
        yield server


def judged_catalog(url: str, upstream: str) -> Catalog:
    """The default GGUF at ``url`` with the local default model's judgement (``call_threshold`` 0.15), as an
    entry that names no chat template: toolrun renders llama-cpp-python's prompts with the format's
    fallback template (the server reports none), on which the 0.5B followed greedily refuses the seed
    ("I'm sorry, but I can't assist with that."; 0 calls in 3 at 0.6 before the probe); llama-server
    reports the GGUF's own at ``/props``."""
    catalog = Catalog()
    catalog.add(served_entry(JUDGED, url, tool_parsing="toolrun", upstream=upstream, judged=True))
    return catalog


async def seed_calls(ai: AsyncAI, runs: int) -> list[list[tuple[str, str]]]:
    """The seed example ``runs`` times at default sampling (temperature 0.6, no seed): each run's calls.

    32 tokens hold the call (~23) and cut short the further call the policy then tries after it (a
    repeat here, dropped either way), which was a third of each run on 2 CPU cores."""
    outcomes = []
    for _ in range(runs):
        out = await ai.run(JUDGED, {"messages": SEED_MESSAGES, "tools": [SEED_TOOL], "max_tokens": 32})
        outcomes.append([(c["name"], str(c["arguments"].get("username", "")).lower()) for c in out["tool_calls"]])
    return outcomes


def seed_call_count(outcomes: list[list[tuple[str, str]]]) -> int:
    return sum(calls == [("getGithubUser", "cloudflare")] for calls in outcomes)


async def answers_in_text(ai: AsyncAI) -> str:
    """A question the seed's tool cannot answer: it comes back in text, with no call."""
    out = await ai.run(
        JUDGED,
        {"messages": [{"role": "user", "content": "What is the capital of France?"}], "tools": [SEED_TOOL],
         "temperature": 0, "max_tokens": 48},
    )  # fmt: skip
    assert out["tool_calls"] == [], out
    assert out["finish_reason"] == "stop"
    return str(out["response"])


# ------------------------------------------------------------------- the rule


def test_opener_bias_is_the_thresholds_negative_log_odds() -> None:
    # Greedy picks an opener iff max_opener + b > max_other, i.e. odds(best opener : best other) > τ/(1-τ).
    assert opener_bias(0.5) == 0.0
    assert opener_bias(0.15) == pytest.approx(1.7346, abs=1e-4)
    assert opener_bias(0.85) == pytest.approx(-1.7346, abs=1e-4)
    assert opener_bias(1.0) == -100.0 and opener_bias(0.0) == 100.0


#: A stand-in model that refuses when followed greedily: its best text token ("I", logit 1.0) beats its
#: best opener token ('{"', logit 0.0); opener odds e^-1 = 0.37 clear τ = 0.15's 0.18 but not τ = 0.5's 1.
VOCABULARY = {'{"': 4913, "<": 27, "<tool_call>": 151657, "```": 73594, "{": 90}
CALL_TEXT = '{"name": "getGithubUser", "arguments": {"username": "cloudflare"}}'


def refusing_upstream() -> Stub:
    async def answer(n: int, request: Request, body: dict[str, Any]) -> Response:
        if request.url.path == "/extras/tokenize":
            text = body["input"]
            return JSONResponse({"tokens": [VOCABULARY[text]] if text in VOCABULARY else [1, 2]})
        if "grammar" in body:  # the call, written under the grammar
            return sse_response([{"choices": [{"text": CALL_TEXT, "finish_reason": "stop"}]}])
        if body["max_tokens"] == 1:  # a probe: the best of '{"' (0.0 + bias) and "I" (1.0)
            bias = float(body.get("logit_bias", {}).get("4913", 0.0))
            pick = '{"' if 0.0 + bias > 1.0 else "I"
            return sse_response([{"choices": [{"text": pick, "finish_reason": "length"}]}])
        return sse_response([{"choices": [{"text": " cannot help with that.", "finish_reason": "stop"}]}])

    return Stub(answer)


@pytest.mark.parametrize(("threshold", "calls"), [(0.15, True), (0.5, False)])
async def test_the_probe_decides_at_the_thresholds_log_odds(threshold: float, calls: bool) -> None:
    stub = refusing_upstream()
    server = ThreadServer(stub.app())
    engine = _openai.OpenAICompatibleEngine(
        server.url + "/v1", "m", upstream="llama-cpp-python", policy=CallPolicy(call_threshold=threshold)
    )
    request = GenerationRequest(
        messages=SEED_MESSAGES, tools=normalize_tools([SEED_TOOL]), sampling=SamplingParams(temperature=0.0)
    )
    try:
        out = dict(await collect(engine.generate(request)))
    finally:
        await engine.aclose()
        server.stop()
    probes = [r for r in stub.requests if r.get("max_tokens") == 1]
    assert probes[0]["temperature"] == 0.0 and probes[0]["repeat_penalty"] == 1.0  # greedy on the raw logits
    assert probes[0]["logit_bias"] == {str(t): pytest.approx(opener_bias(threshold)) for t in VOCABULARY.values()}
    if calls:  # followed greedily, this model would have answered "I cannot help with that."
        calls_made = [(c["name"], c["arguments"]) for c in out["tool_calls"]]
        assert calls_made == [("getGithubUser", {"username": "cloudflare"})]
    else:
        assert out["tool_calls"] == [] and out["response"] == "I cannot help with that."


# ---------------------------------------------------- llama-cpp-python's server


@pytest.mark.model
async def test_opener_tokens_come_from_the_upstreams_tokenizer(python_server: LlamaCppPythonServer) -> None:
    engine = _openai.OpenAICompatibleEngine(python_server.url + "/v1", "default", upstream="llama-cpp-python")
    try:
        route = engine.dialect.tokenize
        assert route is not None

        async def tokenize(text: str) -> list[int] | None:
            return await engine._tokenize(route, text)

        texts = set((await engine.probe.opener_tokens(tokenize)).values())
    finally:
        await engine.aclose()
    # The tokens that carry the 0.5B's call mass on the seed (measured with the local engine's scan), and
    # the format's own tag, a special token.
    assert {'{"', "<", "```", "{\n", "<tool_call>", " {"} <= texts
    assert not texts & {"I", "The", "Cloud", " I"}


@pytest.mark.model
async def test_seed_call_comes_back_through_llama_cpp_python(python_server: LlamaCppPythonServer) -> None:
    async with AsyncAI(catalog=judged_catalog(python_server.url, "llama-cpp-python")) as ai:
        outcomes = await seed_calls(ai, RUNS)
    assert seed_call_count(outcomes) >= RUNS - 1, outcomes


#: Why the France question is a known miss of the 0.5B on every path, local included.
FRANCE_XFAIL = pytest.mark.xfail(
    reason="not the probe's doing: the local engine on the same GGUF calls getGithubUser('france') here too "
    "(greedy and at 0.6), since the 0.5B puts more first-token mass on call openers for this question (0.62 "
    "locally, 0.58 through llama-server; 0.50 with ChatML's fallback) than for the seed (0.55, 0.52; 0.23): "
    "no first-token threshold answers this in text and calls the seed, and the relevance check keeps the "
    "call because the user said 'France' (docs/vllm.md, 'The France question')",
    strict=False,
)


@FRANCE_XFAIL
@pytest.mark.model
async def test_a_question_without_a_tool_answers_in_text_through_llama_cpp_python(
    python_server: LlamaCppPythonServer,
) -> None:
    async with AsyncAI(catalog=judged_catalog(python_server.url, "llama-cpp-python")) as ai:
        assert "paris" in (await answers_in_text(ai)).lower()


# ------------------------------------------------------------- llama.cpp's server


@pytest.mark.model
@pytest.mark.parametrize("means", ["n_probs", "probe"])
async def test_seed_call_comes_back_through_llama_server(
    cpp_server: LlamaServer, means: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if means == "probe":  # as a llama-server that returned no probabilities would be asked
        dialect = dataclasses.replace(_openai.DIALECTS["llama.cpp"], logprobs=None)
        monkeypatch.setitem(_openai.DIALECTS, "llama.cpp", dialect)
    async with AsyncAI(catalog=judged_catalog(cpp_server.url, "llama.cpp")) as ai:
        outcomes = await seed_calls(ai, RUNS)
    assert seed_call_count(outcomes) >= RUNS - 1, outcomes


@FRANCE_XFAIL
@pytest.mark.model
async def test_a_question_without_a_tool_answers_in_text_through_llama_server(cpp_server: LlamaServer) -> None:
    async with AsyncAI(catalog=judged_catalog(cpp_server.url, "llama.cpp")) as ai:
        assert "paris" in (await answers_in_text(ai)).lower()
