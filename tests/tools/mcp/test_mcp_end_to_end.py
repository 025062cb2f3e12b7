"""MCP tools as users meet them: ``toolrun run --mcp`` and the real default model answering through one."""

from __future__ import annotations

import json
import shlex

import pytest
from mcp_testing import SCRIPTED, process_gone, scripted_ai, server_command
from typer.testing import CliRunner

import toolrun.ai
from toolrun import DEFAULT_MODEL
from toolrun.cli import app
from toolrun.embedded import run_with_tools
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedReply
from toolrun.tools import create_tools_from_mcp

runner = CliRunner()


def weather_script(request: GenerationRequest) -> ScriptedReply:
    """Call get_weather on the user's turn; answer with the tool's result on the tool turn."""
    last = request.messages[-1]
    if request.tools and last["role"] == "user":
        return ScriptedReply(calls=[("get_weather", {"city": "Lisbon"})])
    return ScriptedReply(text=f"Answer: {last['content']}")


@pytest.fixture
def scripted_binding(monkeypatch: pytest.MonkeyPatch):
    """`toolrun run` builds its own AsyncAI: hand it a scripted one instead."""
    ai, engine = scripted_ai(weather_script)
    monkeypatch.setattr(toolrun.ai, "AsyncAI", lambda *a, **k: ai)
    return engine


def test_cli_mcp_starts_the_server_narrates_the_call_and_stops_it(scripted_binding, call_log) -> None:
    # A stdio server gets only a few safe variables of this environment: the log path goes on its command line.
    command = shlex.join(server_command("weather")) + " --call-log " + shlex.quote(str(call_log.path))
    result = runner.invoke(app, ["run", SCRIPTED, "Weather in Lisbon?", "--mcp", command])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Answer: The weather in Lisbon is 31 degrees Celsius and sunny."
    assert "get_weather" in result.stderr.split("\n")[0]  # the tool list line names the MCP tools
    assert '→ get_weather(city="Lisbon")' in result.stderr
    assert "← get_weather: The weather in Lisbon is 31 degrees Celsius and sunny." in result.stderr
    calls = call_log.calls()
    assert [c["name"] for c in calls] == ["get_weather"]
    assert process_gone(calls[0]["pid"])  # the server was stopped when the run ended


def test_cli_mcp_url_and_a_server_that_will_not_start(scripted_binding, http_server) -> None:
    server = http_server("weather")
    result = runner.invoke(app, ["run", SCRIPTED, "Weather in Lisbon?", "--mcp-url", server.url])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Answer: The weather in Lisbon is 31 degrees Celsius and sunny."

    result = runner.invoke(app, ["run", SCRIPTED, "hi", "--mcp", "toolrun-no-such-mcp-server --stdio"])
    assert result.exit_code != 0
    assert "toolrun-no-such-mcp-server --stdio could not be started" in " ".join(result.output.split())


@pytest.mark.model
async def test_the_weather_question_on_the_default_model_through_an_mcp_tool(async_ai, call_log) -> None:
    """The seed's weather question, answered by the real model through a real MCP server, at default sampling."""
    async with create_tools_from_mcp(
        command=server_command("weather"), env=call_log.env, match_patterns=["^get_weather$"]
    ) as tools:
        assert [t.name for t in tools] == ["get_weather"]
        out = await run_with_tools(
            async_ai,
            DEFAULT_MODEL,
            {
                "messages": [{"role": "user", "content": "What's the weather in Austin, Tx?"}],
                "tools": tools,
            },
        )
    calls = call_log.calls()
    assert calls and calls[0]["name"] == "get_weather", out
    assert "austin" in calls[0]["arguments"]["city"].lower()
    results = [m["content"] for m in out["messages"] if m["role"] == "tool"]
    assert results[0].startswith("The weather in Austin") and "31 degrees Celsius" in results[0]
    assert out["response"] and json.dumps(out["response"])
    assert any(word in out["response"].lower() for word in ("31", "sunny")), out["response"]
