"""The ``toolrun`` command line, in-process (typer's runner) and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from server_testing import SCRIPTED, scripted_ai
from typer.testing import CliRunner

import toolrun.ai
from toolrun import DEFAULT_MODEL
from toolrun.cli import app

runner = CliRunner()


def one_line(text: str) -> str:
    """Rich wraps at 80 columns under the test runner; compare text, not layout."""
    return " ".join(text.split())


TOOLS_FILE = textwrap.dedent('''
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: City name
        """
        return f"21°C and sunny in {city}"

    NOT_A_TOOL = 3
''')


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "weather_tools.py"
    path.write_text(TOOLS_FILE)
    return path


@pytest.fixture
def scripted_binding(monkeypatch: pytest.MonkeyPatch):
    """`toolrun run` builds its own AsyncAI: hand it the scripted one instead."""
    ai, engine = scripted_ai()
    monkeypatch.setattr(toolrun.ai, "AsyncAI", lambda *a, **k: ai)
    return engine


def test_python_dash_m_and_every_help_has_examples() -> None:
    top = subprocess.run([sys.executable, "-m", "toolrun", "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0, top.stderr
    for command in ("serve", "run", "models", "pull"):
        assert command in top.stdout
        help_text = runner.invoke(app, [command, "--help"], terminal_width=120).output
        assert "Examples" in help_text and f"toolrun {command}" in help_text, command


def test_run_narrates_tool_calls_and_results(scripted_binding, tools_file: Path) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "Weather in Lisbon?", "--tool", f"{tools_file}:get_weather"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "It is 21°C and sunny in Lisbon in Lisbon."
    assert '→ get_weather(city="Lisbon")' in result.stderr
    assert "← get_weather: 21°C and sunny in Lisbon" in result.stderr
    assert "2 model calls" in result.stderr
    # The tool really ran: its result reached the model's second request.
    assert scripted_binding.requests[-1].messages[-1]["content"] == "21°C and sunny in Lisbon"


def test_run_streams_and_reads_stdin(scripted_binding) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "-", "--stream"], input="one two three\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "echo: one two three"


def test_run_json_output(scripted_binding, tools_file: Path) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "Weather?", "--tool", f"{tools_file}:get_weather", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert out["total_usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("{file}:nope", "has no attribute 'nope'; it has get_weather"),
        ("{file}:NOT_A_TOOL", "must be a dict, a Tool or a function"),
        ("/no/such/file.py:f", "no such file"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("nocolon", "expected module:function"),
    ],
)
def test_run_bad_tool_reference_is_one_clear_line(scripted_binding, tools_file: Path, ref: str, words: str) -> None:
    result = runner.invoke(app, ["run", SCRIPTED, "hi", "--tool", ref.format(file=tools_file)])
    assert result.exit_code == 1
    assert words in one_line(result.stderr) and "Traceback" not in result.output


def test_models_filters_and_json() -> None:
    table = runner.invoke(app, ["models", "--function-calling"])
    assert table.exit_code == 0
    assert DEFAULT_MODEL in table.stdout and "mistral-7b-instruct-v0.1" not in table.stdout
    found = json.loads(runner.invoke(app, ["models", "--search", "hermes", "--json"]).stdout)
    assert [m["name"] for m in found] == ["@hf/nousresearch/hermes-2-pro-mistral-7b"]
    none = runner.invoke(app, ["models", "--search", "zzz-nothing"])
    assert none.exit_code == 0 and "No model matches" in none.stderr


def test_pull_unknown_model_and_cached_model(async_ai) -> None:
    unknown = runner.invoke(app, ["pull", "@nope/none"])
    assert unknown.exit_code == 1 and "model_not_found" in unknown.stderr
    cached = runner.invoke(app, ["pull", "default"])  # async_ai fetched it already
    assert cached.exit_code == 0, cached.output
    assert "already here" in one_line(cached.stderr)


def test_serve_refuses_public_host_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLRUN_API_KEYS", raising=False)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without an API key" in one_line(result.stderr)


def test_serve_refuses_an_empty_api_key_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLRUN_API_KEYS", raising=False)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--api-key", ""])
    assert result.exit_code == 1
    assert "--api-key: an API key must not be empty" in one_line(result.stderr)
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)


@pytest.mark.model
def test_run_on_the_real_model(tools_file: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolrun",
            "run",
            "default",
            "What's the weather in Lisbon?",
            "--tool",
            f"{tools_file}:get_weather",
            "--temperature",
            "0",
            "--max-tokens",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "→ get_weather(city=" in done.stderr and "← get_weather: 21°C and sunny" in done.stderr
    assert "21" in done.stdout


def test_serve_merges_flags_config_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import toolrun.server

    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "0.0.0.0"\nport = 9999\napi_keys_env = "BENCH_KEYS"\nmax_queue = 3\n')
    monkeypatch.setenv("TOOLRUN_CONFIG", str(config))
    monkeypatch.delenv("TOOLRUN_API_KEYS", raising=False)
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(toolrun.server, "serve", lambda *a, **k: calls.append((a, k)))

    refused = runner.invoke(app, ["serve"])  # 0.0.0.0 from the config, and BENCH_KEYS is unset
    assert refused.exit_code == 1 and "without an API key" in one_line(refused.stderr)
    assert calls == []

    monkeypatch.setenv("BENCH_KEYS", "k1, k2")
    started = runner.invoke(app, ["serve", "--port", "8000", "--api-key", "k0", "--max-tokens-cap", "99"])
    assert started.exit_code == 0, started.output
    (((host, port), options),) = calls
    assert (host, port) == ("0.0.0.0", 8000)  # the flag beat the config's port
    assert options["api_keys"] == ["k0", "k1", "k2"]
    assert (options["max_queue"], options["max_tokens_cap"], options["max_body_bytes"]) == (3, 99, 4 * 1024 * 1024)


def test_server_config_section_is_checked(tmp_path: Path) -> None:
    from toolrun._errors import InvalidInputError
    from toolrun.server import read_server_section

    config = tmp_path / "config.toml"
    assert read_server_section(tmp_path / "absent.toml") == {}
    config.write_text('[server]\nmax_queue = "lots"\n')
    with pytest.raises(InvalidInputError, match="max_queue must be an integer, not str"):
        read_server_section(config)
    config.write_text("[server]\nmax_qeue = 3\n")
    with pytest.raises(InvalidInputError, match=r"unknown keys \['max_qeue'\]"):
        read_server_section(config)


def test_run_with_an_openapi_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, github_standin) -> None:
    from toolrun.engines.scripted import ScriptedReply

    spec = {
        "openapi": "3.0.3",
        "info": {"title": "users", "version": "1"},
        "servers": [{"url": github_standin.url}],
        "paths": {
            "/users/{username}": {
                "get": {
                    "operationId": "getUser",
                    "summary": "Get a user",
                    "parameters": [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "the user"}},
                }
            },
            "/orgs/{org}": {
                "get": {
                    "operationId": "getOrg",
                    "summary": "Get an organisation",
                    "parameters": [{"name": "org", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "the org"}},
                }
            },
        },
    }
    spec_file = tmp_path / "users.json"
    spec_file.write_text(json.dumps(spec))

    def script(request):
        last = request.messages[-1]
        if request.tools and last["role"] == "user":
            return ScriptedReply(calls=[(request.tools[0].name, {"path": {"username": "torvalds"}})])
        return ScriptedReply(text="Linus lives in " + json.loads(last["content"])["location"])

    ai, _ = scripted_ai(script)
    monkeypatch.setattr(toolrun.ai, "AsyncAI", lambda *a, **k: ai)
    result = runner.invoke(
        app, ["run", SCRIPTED, "Where does torvalds live?", "--openapi", str(spec_file), "--match", "/users/"]
    )
    assert result.exit_code == 0, result.output
    assert "1 tool:" in result.stderr  # --match kept /users/{username} and dropped /orgs/{org}
    assert '"location": "Portland, OR"' in one_line(result.stderr)
    assert result.stdout.strip() == "Linus lives in Portland, OR"
    assert "/users/torvalds" in github_standin.requests
