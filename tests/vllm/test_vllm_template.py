"""Which chat template toolrun mode renders with on vLLM (a loopback stand-in: no vLLM needed).

vLLM reports the served model's template at ``GET /tokenizer_info`` when started with
``--enable-tokenizer-info-endpoint``. Before, toolrun always used the format's ChatML fallback on vLLM,
on which the 0.5B's first-token odds of calling the seed's tool are half its own template's (docs/vllm.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from _servers import UvicornThread, free_port
from seed_testing import SEED_MESSAGES, SEED_TOOL
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from toolrun import EngineError
from toolrun._types import normalize_tools
from toolrun.ai import collect
from toolrun.engines import GenerationRequest, SamplingParams
from toolrun.engines.remote import RetryPolicy
from toolrun.engines.remote._http import MAX_ROUTE_BODY
from toolrun.engines.remote._openai import OpenAICompatibleEngine
from toolrun.formats import get_format

#: The model's own template, told apart from the fallback by a line of its own.
OWN_TEMPLATE = get_format("hermes").fallback_template.replace("# Tools", "# Tools (the served model's own)")


def stand_in(prompts: list[str], *, reports: bool, busy: int = 0) -> Starlette:
    """A vLLM that reports its template (or, started without the flag, answers 404) and writes "Hello.";
    the first ``busy`` asks for the template are answered 503, as a proxy in front of a loading vLLM does."""
    asked: list[int] = []

    async def tokenizer_info(request: Request) -> Response:
        asked.append(1)
        if len(asked) <= busy:
            return Response("vLLM is loading", status_code=503)
        if not reports:
            return Response(status_code=404)
        return JSONResponse({"chat_template": OWN_TEMPLATE, "eos_token": "<|im_end|>", "bos_token": "<|endoftext|>"})

    async def completions(request: Request) -> Response:
        body = await request.json()
        prompts.append(body["prompt"])
        chunks = [{"choices": [{"text": "Hello.", "finish_reason": "stop"}]}]
        return Response("".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n",
                        media_type="text/event-stream")  # fmt: skip

    return Starlette(
        routes=[Route("/tokenizer_info", tokenizer_info), Route("/v1/completions", completions, methods=["POST"])]
    )


def seed_request() -> GenerationRequest:
    return GenerationRequest(
        messages=SEED_MESSAGES, tools=normalize_tools([SEED_TOOL]), sampling=SamplingParams(temperature=0.0)
    )


async def generate(url: str, retry: RetryPolicy | None = None) -> dict[str, Any]:
    engine = OpenAICompatibleEngine(url + "/v1", "m", upstream="vllm", retry=retry)
    try:
        return dict(await collect(engine.generate(seed_request())))
    finally:
        await engine.aclose()


@pytest.mark.parametrize("reports", [True, False])
async def test_toolrun_mode_renders_with_the_template_vllm_reports(
    reports: bool, caplog: pytest.LogCaptureFixture
) -> None:
    prompts: list[str] = []
    server = UvicornThread(stand_in(prompts, reports=reports))
    try:
        with caplog.at_level(logging.WARNING, logger="toolrun.engines.remote"):
            out = await generate(server.url)
    finally:
        server.stop()
    assert out["response"] == "Hello." and prompts
    if reports:
        assert all("# Tools (the served model's own)" in p for p in prompts)
        assert not caplog.records
    else:  # as before: the format's fallback, and a warning that says how to get the model's own
        assert not any("the served model's own" in p for p in prompts)
        assert "--enable-tokenizer-info-endpoint" in caplog.text


FAST = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05)


async def test_a_template_lookup_answered_503_is_retried_not_pinned_to_the_fallback() -> None:
    # The template found is kept for the engine's life: a 503 burst (a vLLM still loading behind a proxy)
    # once made toolrun render with ChatML's fallback from then on, halving the 0.5B's odds of calling.
    prompts: list[str] = []
    server = UvicornThread(stand_in(prompts, reports=True, busy=2))
    try:
        out = await generate(server.url, FAST)
    finally:
        server.stop()
    assert out["response"] == "Hello." and prompts
    assert all("# Tools (the served model's own)" in p for p in prompts)


async def test_a_template_lookup_still_refused_after_the_retries_is_a_clear_error() -> None:
    prompts: list[str] = []
    server = UvicornThread(stand_in(prompts, reports=True, busy=FAST.max_retries + 1))
    try:
        with pytest.raises(EngineError, match=r"could not read the chat template from .*/tokenizer_info: HTTP 503"):
            await generate(server.url, FAST)
        out = await generate(server.url, FAST)  # not pinned: the next engine's lookup gets the template
    finally:
        server.stop()
    assert prompts and all("# Tools (the served model's own)" in p for p in prompts)
    assert out["response"] == "Hello."


async def test_a_dead_upstream_met_by_the_template_lookup_is_set_aside() -> None:
    # The lookup once had retries of its own that left the pool's health alone: a dead upstream it met
    # was not counted, so the completions after it went there again to find out.
    prompts: list[str] = []
    server = UvicornThread(stand_in(prompts, reports=True))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connections are refused
    eject_at_once = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05, failures_to_eject=1, cooldown=60)
    engine = OpenAICompatibleEngine([server.url + "/v1", dead], "m", upstream="vllm", retry=eject_at_once)
    dead_upstream = engine.pool.upstreams[1]  # the pool's first pick goes to the second URL: the lookup meets it
    try:
        template = await engine.prompt_template()
        assert "# Tools (the served model's own)" in template.source
        assert dead_upstream.failures == 1 and dead_upstream.down_until > time.monotonic()
        for _ in range(3):
            out = dict(await collect(engine.generate(seed_request())))
            assert out["response"] == "Hello."
    finally:
        await engine.aclose()
        server.stop()
    # Every completion went straight to the live one: an attempt at the dead one would count a failure.
    assert prompts and dead_upstream.failures == 1


async def test_a_template_lookup_that_finds_no_upstream_names_the_route_never_the_key() -> None:
    secret = "sk-template-lookup-3f9a7c"
    dead = f"http://user:pw-{secret}@127.0.0.1:{free_port()}/v1"
    engine = OpenAICompatibleEngine(dead, "m", upstream="vllm", api_key=secret, retry=FAST)
    try:
        with pytest.raises(EngineError, match=r"could not read the chat template from .*/tokenizer_info: ") as caught:
            await engine.prompt_template()
    finally:
        await engine.aclose()
    assert "/v1/tokenizer_info" not in str(caught.value)  # the route is asked at the server's root
    assert secret not in str(caught.value) and secret not in repr(caught.value.args)
    assert engine.pool.upstreams[0].failures == FAST.max_retries + 1


async def test_a_template_lookup_that_runs_on_is_cut_at_its_cap() -> None:
    # A misbehaving server at /tokenizer_info streams 256 MiB: the lookup stops reading at the cap (nothing
    # is held past it), closes the connection and says so, without retrying.
    block = b"x" * 65536
    total = 256 * 2**20
    sent = [0]  # bytes of the template sent so far

    async def runs_on(request: Request) -> Response:
        async def chunks() -> Any:
            yield b'{"chat_template": "'
            while sent[0] < total and not await request.is_disconnected():
                sent[0] += len(block)
                yield block
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="application/json")

    server = UvicornThread(Starlette(routes=[Route("/tokenizer_info", runs_on)]))
    engine = OpenAICompatibleEngine(server.url + "/v1", "m", upstream="vllm", retry=FAST)
    try:
        with pytest.raises(EngineError, match=r"/tokenizer_info answered more than 8 MiB"):
            await engine.prompt_template()
    finally:
        await engine.aclose()
        server.stop()
    assert MAX_ROUTE_BODY < sent[0] < total  # the server was cut off, not read to its end
