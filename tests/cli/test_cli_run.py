"""``toolrun`` CLI conventions (issue #31 item 3): --version, completion, JSON tools for traditional function
calling, --threads, a busy port, and "did you mean" for models, commands and options."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from seed_testing import SEED_TOOL
from typer.testing import CliRunner

import toolrun.ai
from toolrun import __version__
from toolrun.ai import AsyncAI, Catalog, ModelEntry
from toolrun.cli import app
from toolrun.engines import GenerationRequest
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

runner = CliRunner()
SCRIPTED = "@test/scripted"
#: The seed's tool in OpenAI's nesting, to show both shapes are read.
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def one_line(text: str) -> str:
    return " ".join(text.split())


def call_the_first_tool(request: GenerationRequest) -> ScriptedReply:
    if request.tools:
        first = request.tools[0]
        argument = "username" if first.name == "getGithubUser" else "city"
        return ScriptedReply(calls=[(first.name, {argument: "cloudflare" if argument == "username" else "Lisbon"})])
    return ScriptedReply(text="no tools")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedEngine, list[dict[str, Any]]]]:
    """`toolrun run` builds its own AsyncAI: hand it a scripted one, and record the arguments it was built with."""
    ai = AsyncAI(catalog=Catalog())
    engine = ScriptedEngine(call_the_first_tool)
    ai.register(ModelEntry(name=SCRIPTED, description="Scripted replies for tests."), engine)
    built_with: list[dict[str, Any]] = []

    def build(*args: Any, **kwargs: Any) -> AsyncAI:
        built_with.append(kwargs)
        return ai

    monkeypatch.setattr(toolrun.ai, "AsyncAI", build)
    yield engine, built_with


def test_version_and_shell_completion() -> None:
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.stdout.strip() == f"toolrun {__version__}"
    top = runner.invoke(app, ["--help"], terminal_width=200).stdout
    assert "--install-completion" in top and "--show-completion" in top


def test_inline_json_tool_prints_the_calls_instead_of_running_them(scripted) -> None:
    engine, _ = scripted
    result = runner.invoke(app, ["run", SCRIPTED, "Who is Cloudflare on github?", "--tool", json.dumps(SEED_TOOL)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == 'getGithubUser(username="cloudflare")'
    assert "calls printed, not run" in result.stderr
    assert len(engine.requests) == 1  # one model call: nothing ran, no second round


def test_json_output_of_traditional_function_calling(scripted) -> None:
    result = runner.invoke(
        app, ["run", SCRIPTED, "Who is Cloudflare on github?", "--tool", json.dumps(SEED_TOOL), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    (call,) = printed["tool_calls"]
    assert call["name"] == "getGithubUser" and call["arguments"] == {"username": "cloudflare"}
    assert isinstance(call["id"], str) and call["id"]
    assert printed["response"] == "" and printed["finish_reason"] == "tool_calls"


def test_a_json_file_of_tools_in_openai_shape(scripted, tmp_path: Path) -> None:
    tools_file = tmp_path / "tools.json"
    tools_file.write_text(json.dumps([WEATHER_TOOL_OPENAI, SEED_TOOL]))
    result = runner.invoke(app, ["run", SCRIPTED, "Weather in Lisbon?", "--tool", str(tools_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tool_calls"][0]["arguments"] == {"city": "Lisbon"}
    assert "2 tools" in result.stderr


def test_traditional_mode_streams_the_text(scripted) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "hi", "--tool", json.dumps(SEED_TOOL), "--stream"])
    assert result.exit_code == 0, result.output
    assert 'getGithubUser(username="cloudflare")' in result.stdout


@pytest.mark.parametrize(
    ("tool", "words"),
    [
        ('{"name": "x", "description": "X.", "parameters": {"type": "objct"}}', "--tool: tools[0].parameters"),
        ('{"name": ', "--tool: not valid JSON"),
        ("[]", "the list of tools is empty"),
        ("/no/such/tools.json", "no such file"),
    ],
)
def test_a_bad_json_tool_is_one_clear_line(scripted, tool: str, words: str) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "hi", "--tool", tool])
    assert result.exit_code == 1, result.output
    assert words in one_line(result.stderr) and "Traceback" not in result.output


def test_mixing_schema_only_and_runnable_tools_is_refused(scripted, tmp_path: Path) -> None:
    engine, _ = scripted
    code = tmp_path / "weather_tools.py"
    code.write_text(
        textwrap.dedent('''
        def get_weather(city: str) -> str:
            """Current weather for a city."""
            return "sunny"
    ''')
    )
    result = runner.invoke(
        app, ["run", SCRIPTED, "hi", "--tool", json.dumps(SEED_TOOL), "--tool", f"{code}:get_weather"]
    )
    assert result.exit_code == 1
    assert "give one kind or the other" in one_line(result.stderr)
    assert engine.requests == []  # refused before any model call


def test_threads_reach_the_binding(scripted) -> None:
    _, built_with = scripted
    result = runner.invoke(app, ["run", SCRIPTED, "hi", "--threads", "3"])
    assert result.exit_code == 0, result.output
    assert built_with == [{"n_threads": 3}]
    assert runner.invoke(app, ["run", SCRIPTED, "hi", "--threads", "0"]).exit_code == 2  # typer's own range check


def test_a_misspelt_model_name_gets_a_suggestion() -> None:
    result = runner.invoke(app, ["run", "@local/qwen2.5-coder-05b-instruct", "hi"])
    assert result.exit_code == 1
    assert "did you mean '@local/qwen2.5-coder-0.5b-instruct'" in one_line(result.stderr)


def test_misspelt_commands_and_options_get_suggestions() -> None:
    # click (under typer) already suggests by difflib; this keeps it so.
    command = runner.invoke(app, ["rn", "default", "hi"])
    assert command.exit_code == 2 and "Did you mean 'run'?" in one_line(command.output)
    option = runner.invoke(app, ["run", "default", "hi", "--jsn"])
    assert option.exit_code == 2 and "--json" in one_line(option.output)


def test_a_busy_port_is_one_line_and_a_failure_before_the_banner() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "toolrun", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,  # a guard against a server that starts after all; it normally fails in about a second
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error (invalid_input): --port: port {port} on 127.0.0.1 is already in use; stop what holds "
        "it or choose another with --port"
    ], done.stderr
    assert "toolrun serve" not in done.stderr and "Errno" not in done.stderr and done.stdout == ""
