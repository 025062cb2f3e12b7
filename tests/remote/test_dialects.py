"""Toolrun-mode requests in each upstream's dialect, against stubs that answer in that dialect.

vLLM, SGLang and llama.cpp's server are not on this machine; the stubs check what
toolrun sends them (the documented fields: vLLM's ``structured_outputs``, SGLang's
``ebnf``, llama.cpp's ``/completion`` with ``grammar``) and answer in their shapes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from seed_testing import SEED_PROMPT, SEED_TOOL
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from stubs import Stub, sse_response

from toolrun.ai import Catalog, collect
from toolrun.engines import GenerationRequest
from toolrun.engines.remote import OpenAICompatibleEngine
from toolrun.engines.remote._openai import xgrammar_gbnf
from toolrun.engines.turn import CallPolicy
from toolrun.formats import get_format
from toolrun.server import read_server_section

CALL = '<tool_call>\n{"name": "getGithubUser", "arguments": {"username": "cloudflare"}}\n</tool_call>'


def seed_request(**kwargs: Any) -> GenerationRequest:
    from toolrun._types import normalize_tools

    return GenerationRequest(
        messages=[{"role": "user", "content": SEED_PROMPT}], tools=normalize_tools([SEED_TOOL]), **kwargs
    )


def completion_chunks(pieces: list[str], usage: dict[str, int] | None = None) -> Response:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    if usage:
        chunks.append({"choices": [], "usage": usage})
    return sse_response(chunks)


def split(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(
    ("upstream", "grammar_field"),
    [("vllm", ("structured_outputs", "grammar")), ("sglang", ("ebnf",)), ("llama-cpp-python", ("grammar",))],
)
async def test_required_call_is_one_constrained_completion(serve, upstream: str, grammar_field: tuple[str, ...]):
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        return completion_chunks(
            split(CALL), usage={"prompt_tokens": 150, "completion_tokens": 24, "total_tokens": 174}
        )

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream=upstream)
    try:
        events = [e async for e in engine.generate(seed_request(tool_choice="required"))]
    finally:
        await engine.aclose()
    body = stub.requests[0]
    grammar = body
    for key in grammar_field:
        grammar = grammar[key]
    assert isinstance(grammar, str) and "root ::=" in grammar and "getGithubUser" in grammar
    if upstream in ("vllm", "sglang"):
        # xgrammar refuses empty alternatives (``space ::= | " "``); they go as "" instead.
        assert not re.search(r"::=\s*\|", grammar) and 'space ::= "" |' in grammar
    if upstream == "vllm":  # and llama.cpp's own, which vLLM ignores and llama-server in the same pool reads
        assert "root ::=" in body["grammar"] and xgrammar_gbnf(body["grammar"]) == grammar
    assert body["prompt"].endswith("<|im_start|>assistant\n") and "getGithubUser" in body["prompt"]
    assert body["stream"] is True and "<|im_end|>" in body["stop"]
    if upstream in ("vllm", "sglang"):
        assert body["skip_special_tokens"] is False and body["stream_options"] == {"include_usage": True}
    else:
        assert body["repeat_penalty"] == 1.0 and body["min_p"] == 0.0  # not llama-cpp-python's defaults
    deltas = "".join(e["tool_call_delta"]["arguments"] for e in events if "tool_call_delta" in e)
    calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
    assert [(c["name"], c["arguments"]) for c in calls] == [("getGithubUser", {"username": "cloudflare"})]
    assert json.loads(deltas) == calls[0]["arguments"]
    assert events[-1]["usage"] == {"prompt_tokens": 150, "completion_tokens": 24, "total_tokens": 174}
    assert events[-1]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("first_pieces", "prefix"),
    [
        (["Let me look. ", "<tool_call>", '\n{"name": ', '"getGithubUser"'], "Let me look. "),  # tags after text
        (["```", "json\n", '{"name": ', '"getGithubUser"'], ""),  # drift: a fence at the start
    ],
)
async def test_auto_call_is_written_again_under_the_grammar(serve, first_pieces: list[str], prefix: str) -> None:
    """When the model opens a call, that stream closes and the call is written again from the
    opener — the same text continued — under the grammar."""

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            assert "structured_outputs" not in body  # auto: free text first
            return completion_chunks(first_pieces + ["x"] * 50)
        return completion_chunks(split(CALL))

    stub = Stub(answer)
    server = serve(stub.app())
    # call_threshold 0: no first-token decision, so the free text itself opens the call.
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="vllm", policy=CallPolicy(call_threshold=0.0))
    try:
        events = [e async for e in engine.generate(seed_request())]
    finally:
        await engine.aclose()
    assert stub.count == 2
    first, second = stub.requests
    assert second["prompt"] == first["prompt"] + prefix
    assert "structured_outputs" in second and second["max_tokens"] == first["max_tokens"] - (1 if prefix else 0)
    assert "".join(e.get("response", "") for e in events if "usage" not in e) == prefix
    calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
    assert [(c["name"], c["arguments"]) for c in calls] == [("getGithubUser", {"username": "cloudflare"})]


async def test_llama_cpp_server_dialect(serve) -> None:
    """``/completion`` with llama.cpp's fields, the template from ``/props``, its chunk shape."""
    template = get_format("hermes").fallback_template.replace("# Tools", "# Tools (from /props)")

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if req.url.path == "/props":
            return JSONResponse({"chat_template": template, "eos_token": "<|im_end|>", "bos_token": ""})
        assert req.url.path == "/completion"
        pieces = [{"content": p, "stop": False} for p in split(CALL)]
        pieces.append({"content": "", "stop": True, "stop_type": "eos", "tokens_evaluated": 99, "tokens_predicted": 21})
        return sse_response(pieces)

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="llama.cpp")  # a trailing /v1 is fine
    try:
        out = dict(await collect(engine.generate(seed_request(tool_choice="required"))))
    finally:
        await engine.aclose()
    body = stub.requests[1]
    assert "# Tools (from /props)" in body["prompt"]
    assert body["n_predict"] == 256 and body["cache_prompt"] is True and "root ::=" in body["grammar"]
    assert "<tool_call>" in body["preserved_tokens"]
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [("getGithubUser", {"username": "cloudflare"})]
    assert out["usage"] == {"prompt_tokens": 99, "completion_tokens": 21, "total_tokens": 120}


async def test_generic_openai_upstream_in_toolrun_mode_parses_without_a_grammar(serve) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        assert not {"grammar", "structured_outputs", "ebnf"} & set(body)
        return completion_chunks(split(CALL))

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="openai", tool_parsing="toolrun")
    try:
        events = [e async for e in engine.generate(seed_request())]
    finally:
        await engine.aclose()
    assert stub.count == 1
    assert not any("tool_call_delta" in e for e in events), "no grammar: nothing is promised before the end"
    assert [c["name"] for e in events if "tool_calls" in e for c in e["tool_calls"]] == ["getGithubUser"]


def test_defaults_per_upstream() -> None:
    modes = {
        u: OpenAICompatibleEngine("http://127.0.0.1:9/v1", "m", upstream=u).tool_parsing
        for u in ("vllm", "sglang", "llama.cpp", "llama-server", "llama-cpp-python", "openai")
    }
    assert modes == {
        "vllm": "toolrun",
        "sglang": "toolrun",
        "llama.cpp": "toolrun",
        "llama-server": "toolrun",
        "llama-cpp-python": "toolrun",
        "openai": "native",
    }


def test_the_deploy_recipe_is_a_valid_config(monkeypatch) -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    monkeypatch.setenv("TOOLRUN_API_KEYS", "k1,k2")
    catalog = Catalog.load(deploy / "toolrun.toml")
    entry = catalog.get("default")
    assert entry.remote is not None and entry.remote.upstream == "vllm" and entry.remote.tool_parsing == "toolrun"
    server = read_server_section(deploy / "toolrun.toml")
    assert server["api_keys"] == ["k1", "k2"] and server["host"] == "0.0.0.0"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    assert set(compose["services"]) == {"vllm", "toolrun", "lb"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (deploy / source).is_file(), source


def logprob_chunk(token: str, top: dict[str, float], shape: str = "legacy") -> Response:
    """One token's completion chunk with its candidates, in the legacy completions shape (OpenAI, vLLM)
    or the chat-style one llama-server's ``/v1/completions`` writes."""
    if shape == "legacy":
        logprobs: dict[str, Any] = {"tokens": [token], "token_logprobs": [top[token]], "top_logprobs": [top]}
    else:
        listed = [
            {"id": i, "token": t, "bytes": list(t.encode()), "logprob": lp} for i, (t, lp) in enumerate(top.items())
        ]
        logprobs = {"content": [{"id": 0, "token": token, "logprob": top[token], "top_logprobs": listed}]}
    return sse_response([{"choices": [{"index": 0, "text": token, "finish_reason": "length", "logprobs": logprobs}]}])


@pytest.mark.parametrize("shape", ["legacy", "llama-server"])
@pytest.mark.parametrize(("p_call", "calls"), [(0.6, True), (0.1, False)])
async def test_call_threshold_decides_from_the_upstreams_logprobs(
    serve, p_call: float, calls: bool, shape: str
) -> None:
    """As the local engine does: call when the model's probability of opening one reaches the threshold,
    whichever shape the server writes its log-probabilities in (one vLLM entry may route to llama-server)."""
    import math

    top = {"<tool_call>": math.log(p_call), "I": math.log(0.9 - p_call), "```": math.log(0.05)}

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            assert body["max_tokens"] == 1 and body["logprobs"] == 20
            return logprob_chunk("<tool_call>", top, shape)  # the sampled token does not matter: the mass does
        if calls:
            return completion_chunks(split(CALL))
        return completion_chunks([" don't", " know", "."])

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="vllm", policy=CallPolicy(call_threshold=0.3))
    try:
        out = dict(await collect(engine.generate(seed_request())))
    finally:
        await engine.aclose()
    probe, main = stub.requests
    if calls:
        assert "structured_outputs" in main and main["prompt"] == probe["prompt"]
        assert [c["name"] for c in out["tool_calls"]] == ["getGithubUser"]
    else:
        # An answer, starting with the most likely token that opens no call ("```" would: it is a fence).
        assert "structured_outputs" not in main and main["prompt"] == probe["prompt"] + "I"
        assert out["tool_calls"] == [] and out["response"] == "I don't know."


@pytest.mark.parametrize(("p_call", "sampled", "calls"), [(0.55, "I", True), (0.45, "<tool_call>", False)])
async def test_an_entry_without_judgement_settings_decides_at_even_odds_not_by_the_sampled_token(
    serve, p_call: float, sampled: str, calls: bool
) -> None:
    """A remote entry in toolrun's mode that names no call_threshold (a user's config table) still decides
    from the model's probability, at 0.5, whatever token the upstream happened to sample."""
    import math

    top = {"<tool_call>": math.log(p_call), "I": math.log(1 - p_call)}

    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if n == 0:
            assert body["max_tokens"] == 1 and body["logprobs"] == 20
            return logprob_chunk(sampled, top)
        return completion_chunks(split(CALL) if calls else [" don't", " know", "."])

    stub = Stub(answer)
    server = serve(stub.app())
    catalog = Catalog()
    table = {"base_url": server.url + "/v1", "remote_model": "m", "upstream": "vllm", "tool_parsing": "toolrun"}
    catalog.update_from_config({"models": {"@my/vllm": table}}, "config.toml")
    policy = catalog.get("@my/vllm").policy
    assert policy.call_threshold == 0.5
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="vllm", policy=policy)
    try:
        out = dict(await collect(engine.generate(seed_request())))
    finally:
        await engine.aclose()
    assert [c["name"] for c in out["tool_calls"]] == (["getGithubUser"] if calls else [])
    assert ("structured_outputs" in stub.requests[1]) if calls else out["response"] == "I don't know.", out


async def test_call_threshold_with_llama_cpp_probabilities(serve) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if req.url.path == "/props":
            return JSONResponse({"chat_template": get_format("hermes").fallback_template})
        if body.get("n_probs"):
            return sse_response(
                [
                    {
                        "content": "Hello",
                        "stop": True,
                        "stop_type": "limit",
                        "completion_probabilities": [
                            {
                                "token": "Hello",
                                "logprob": -0.1,
                                "top_logprobs": [
                                    {"token": "Hello", "logprob": -0.1},
                                    {"token": "<tool_call>", "logprob": -3.0},
                                ],
                            }
                        ],
                    }
                ]
            )
        return sse_response([{"content": " there.", "stop": False}, {"content": "", "stop": True, "stop_type": "eos"}])

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(server.url, "m", upstream="llama.cpp", policy=CallPolicy(call_threshold=0.3))
    try:
        out = dict(await collect(engine.generate(seed_request())))
    finally:
        await engine.aclose()
    assert out["response"] == "Hello there." and out["tool_calls"] == []
    assert stub.requests[-1]["prompt"].endswith("<|im_start|>assistant\nHello")


async def test_call_threshold_without_a_tokenizer_follows_llama_cpp_pythons_model(serve, caplog) -> None:
    async def answer(n: int, req: Request, body: dict[str, Any]) -> Response:
        if req.url.path.endswith("/tokenize"):  # this upstream cannot tokenize: no probe can be built
            return Response(status_code=404)
        assert "logprobs" not in body
        return completion_chunks(split(CALL))  # the model opens a call at once

    stub = Stub(answer)
    server = serve(stub.app())
    engine = OpenAICompatibleEngine(
        server.url + "/v1", "m", upstream="llama-cpp-python", policy=CallPolicy(call_threshold=0.3)
    )
    try:
        out = dict(await collect(engine.generate(seed_request())))
    finally:
        await engine.aclose()
    completions = [r for r in stub.requests if "prompt" in r]
    assert completions[0]["max_tokens"] == 256  # no probe: straight to the answer (then the call, constrained)
    assert [c["name"] for c in out["tool_calls"]] == ["getGithubUser"]
    assert "did not tokenize the call openers" in caplog.text
