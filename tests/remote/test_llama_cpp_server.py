"""Function calling through a real upstream: ``python -m llama_cpp.server`` serving the default GGUF.

One upstream per module, on a free port of 127.0.0.1; both tool-parsing modes
run through it. In ``toolrun`` mode toolrun renders the prompt with the GGUF's
own template, parses, and constrains calls with the server's ``grammar``; in
``native`` mode the server's chat handler does it all (it calls a tool only
when ``tool_choice`` names it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from remote_testing import LlamaCppPythonServer, served_entry
from seed_testing import SEED_PROMPT, SEED_TOOL

from toolrun import DEFAULT_MODEL, EngineError, run_with_tools
from toolrun.ai import AsyncAI, Catalog

pytestmark = pytest.mark.model

TOOLRUN = "@remote/toolrun-mode"
JUDGED = "@remote/toolrun-mode-judged"
NATIVE = "@remote/native-mode"
NAMED = {"type": "function", "function": {"name": "getGithubUser"}}
NAMED_PY = {"type": "function", "function": {"name": "get_github_user"}}
CLOUDFLARE = {
    "login": "cloudflare",
    "name": "Cloudflare",
    "type": "Organization",
    "public_repos": 513,
    "location": "San Francisco",
}


@pytest.fixture(scope="module")
def gguf(async_ai: AsyncAI) -> str:
    return async_ai.weights(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def upstream(gguf: str) -> Iterator[LlamaCppPythonServer]:
    server = LlamaCppPythonServer(gguf).start()
    yield server
    server.stop()


def catalog_for(url: str, gguf: str) -> Catalog:
    catalog = Catalog()
    catalog.add(served_entry(TOOLRUN, url, tool_parsing="toolrun", gguf=gguf))
    catalog.add(served_entry(JUDGED, url, tool_parsing="toolrun", gguf=gguf, judged=True))
    catalog.add(served_entry(NATIVE, url, tool_parsing="native"))
    return catalog


@pytest.fixture(scope="module")
def catalog(upstream: LlamaCppPythonServer, gguf: str) -> Catalog:
    return catalog_for(upstream.url, gguf)


def seed_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": SEED_PROMPT}],
        "tools": [SEED_TOOL],
        "temperature": 0,
        "max_tokens": 64,
        **extra,
    }


def get_github_user(username: str) -> dict[str, Any]:
    """Provides publicly available information about someone with a GitHub account.

    Args:
        username: The handle for the GitHub user account.
    """
    get_github_user.calls.append(username)  # type: ignore[attr-defined]
    return CLOUDFLARE if username.lower() == "cloudflare" else {"message": "Not Found"}


# ------------------------------------------------------------ toolrun mode


async def test_toolrun_mode_seed_example_returns_its_call(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        out = await ai.run(TOOLRUN, seed_inputs())
        assert [c["name"] for c in out["tool_calls"]] == ["getGithubUser"]
        assert out["tool_calls"][0]["arguments"]["username"].lower() == "cloudflare"
        assert out["finish_reason"] == "tool_calls"


async def test_toolrun_mode_streamed_call(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        stream = await ai.run(TOOLRUN, seed_inputs(stream=True, tool_choice="required"))
        events = [e async for e in stream]
        deltas = [e["tool_call_delta"] for e in events if "tool_call_delta" in e]
        calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
        assert [c["name"] for c in calls] == ["getGithubUser"]
        # Arguments streamed while the grammar constrained them, and they join to the checked call.
        assert deltas and {d["id"] for d in deltas} == {calls[0]["id"]}
        assert json.loads("".join(d["arguments"] for d in deltas)) == calls[0]["arguments"]
        assert events[-1]["finish_reason"] == "tool_calls"


async def test_toolrun_mode_embedded(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        get_github_user.calls = []  # type: ignore[attr-defined]
        out = await run_with_tools(
            ai,
            TOOLRUN,
            {
                "messages": [{"role": "user", "content": SEED_PROMPT}],
                "tools": [get_github_user],
                "temperature": 0,
                "max_tokens": 96,
            },
        )
        assert [u.lower() for u in get_github_user.calls] == ["cloudflare"]  # type: ignore[attr-defined]
        assert out["response"].strip() and not out.get("tool_calls")


async def test_toolrun_mode_plain_text_streams(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        stream = await ai.run(
            TOOLRUN,
            {
                "messages": [{"role": "user", "content": "Say hello in French, one word."}],
                "stream": True,
                "temperature": 0,
                "max_tokens": 12,
            },
        )
        events = [e async for e in stream]
        text = "".join(e.get("response", "") for e in events)
        assert text.strip() and len([e for e in events if e.get("response")]) >= 1
        assert events[-1]["usage"]["completion_tokens"] >= 1


# ------------------------------------- toolrun mode, the local engine's judgement

AREA = {
    "name": "calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {
        "type": "object",
        "properties": {"base": {"type": "number"}, "height": {"type": "number"}},
        "required": ["base", "height"],
    },
}
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_judged_remote_answers_in_text_when_the_call_does_not_fit(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        for stream in (False, True):
            inputs = {
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "tools": [AREA],
                "temperature": 0,
                "max_tokens": 64,
                "stream": stream,
            }
            if stream:
                events = [e async for e in await ai.run(JUDGED, inputs)]
                assert not any("tool_calls" in e or "tool_call_delta" in e for e in events), events
                text = "".join(e.get("response") or "" for e in events)
                assert events[-1]["finish_reason"] == "stop"
            else:
                out = await ai.run(JUDGED, inputs)
                assert out["tool_calls"] == [], out
                text = out["response"]
            assert "paris" in text.lower()


async def test_judged_remote_keeps_a_call_that_fits_and_tries_more(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        out = await ai.run(JUDGED, seed_inputs())
        assert [(c["name"], c["arguments"]["username"].lower()) for c in out["tool_calls"]] == [
            ("getGithubUser", "cloudflare")
        ]
        out = await ai.run(
            JUDGED,
            {
                "messages": [{"role": "user", "content": "What's the weather in Paris, London and Tokyo?"}],
                "tools": [WEATHER],
                "temperature": 0,
                "max_tokens": 128,
            },
        )
        cities = sorted(c["arguments"]["city"].lower() for c in out["tool_calls"])
        assert len(cities) == 3 and all(any(n in c for c in cities) for n in ("paris", "london", "tokyo")), out
        assert out["finish_reason"] == "tool_calls" and out["usage"]["completion_tokens"] > 20


# ------------------------------------------------------------- native mode


async def test_native_mode_traditional_call(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        out = await ai.run(NATIVE, seed_inputs(tool_choice=NAMED))
        assert [c["name"] for c in out["tool_calls"]] == ["getGithubUser"]
        assert out["tool_calls"][0]["arguments"]["username"].lower() == "cloudflare"


async def test_native_mode_streamed_call(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        stream = await ai.run(NATIVE, seed_inputs(tool_choice=NAMED, stream=True))
        events = [e async for e in stream]
        assert not any("tool_call_delta" in e for e in events)  # the upstream parsed: nothing promised early
        calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
        assert [c["name"] for c in calls] == ["getGithubUser"]
        assert calls[0]["arguments"]["username"].lower() == "cloudflare"


async def test_native_mode_embedded(catalog: Catalog) -> None:
    async with AsyncAI(catalog=catalog) as ai:
        get_github_user.calls = []  # type: ignore[attr-defined]
        out = await run_with_tools(
            ai,
            NATIVE,
            {
                "messages": [{"role": "user", "content": SEED_PROMPT}],
                "tools": [get_github_user],
                "tool_choice": NAMED_PY,
                "temperature": 0,
                "max_tokens": 96,
            },
        )
        assert [u.lower() for u in get_github_user.calls] == ["cloudflare"]  # type: ignore[attr-defined]
        assert out["response"].strip()


# ------------------------------------------------------- crash and restart


async def test_upstream_killed_mid_answer_then_restarted(gguf: str) -> None:
    server = LlamaCppPythonServer(gguf).start()
    ai = AsyncAI(catalog=catalog_for(server.url, gguf))
    try:
        stream = await ai.run(
            TOOLRUN,
            {
                "messages": [{"role": "user", "content": "Count from 1 to 100, in words."}],
                "stream": True,
                "temperature": 0,
                "max_tokens": 300,
            },
        )
        first = await stream.__anext__()
        assert first.get("response") is not None
        server.kill()
        with pytest.raises(EngineError) as caught:
            async for _ in stream:
                pass
        assert server.url in str(caught.value)  # the error names the upstream
        server.start()  # same port
        out = await ai.run(TOOLRUN, seed_inputs())
        assert [c["name"] for c in out["tool_calls"]] == ["getGithubUser"]
    finally:
        await ai.aclose()
        server.stop()
