"""MCP servers as tools, against real servers: stdio children and Streamable HTTP on 127.0.0.1.

No mocks: the servers are mcp_test_servers.py, written with the SDK's server side.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import signal
import sys
import time

import pytest
from _servers import HttpStandIn, same_answer
from mcp_testing import SCRIPTED, process_gone, scripted_ai, server_command

from toolrun import InvalidInputError
from toolrun.embedded import run_with_tools, run_with_tools_sync
from toolrun.engines.scripted import ScriptedReply
from toolrun.tools import Tool, create_tools_from_mcp, create_tools_from_mcp_sync
from toolrun.tools.mcp import EMPTY_RESULT, MCPServerError

WEATHER = server_command("weather")
TEXT = "The weather in Austin is 31 degrees Celsius and sunny."


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


async def server_pid(tools: list[Tool], name: str = "pid") -> int:
    return int(await by_name(tools)[name].function())


async def eventually(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


# ------------------------------------------------------------------ list and call


async def test_stdio_lists_the_tools_and_calls_one(call_log) -> None:
    async with create_tools_from_mcp(command=WEATHER, env=call_log.env) as tools:
        weather = by_name(tools)["get_weather"]
        assert weather.description.startswith("Gets weather information of a particular city.")
        assert weather.parameters["properties"]["city"]["type"] == "string"
        assert weather.parameters["required"] == ["city"]
        assert await weather.function({"city": "Austin"}) == TEXT
        assert await weather.function(city="Austin") == TEXT  # keywords, as run_with_tools passes them
        pid = await server_pid(tools)
    assert call_log.calls()[0]["name"] == "get_weather" and call_log.calls()[0]["arguments"] == {"city": "Austin"}
    assert process_gone(pid)  # stopped and reaped when the block ended


async def test_streamable_http_lists_and_calls_with_headers(http_server, call_log) -> None:
    server = http_server("weather", env=call_log.env)
    async with create_tools_from_mcp(url=server.url, headers={"X-Api-Key": "k"}) as tools:
        assert {"get_weather", "forecast", "media"} <= set(by_name(tools))
        assert await by_name(tools)["get_weather"].function({"city": "Austin"}) == TEXT
    assert server.process.poll() is None  # leaving the block disconnects; the server is not ours to stop


async def test_a_2025_era_server_works_too() -> None:
    """Most servers in the wild speak the 2025 handshake: the SDK falls back to it."""
    made = create_tools_from_mcp(command=server_command("weather", "--legacy"))
    async with made as tools:
        assert made._toolset._connections[0]._client.protocol_version == "2025-11-25"  # the era under test
        assert await by_name(tools)["get_weather"].function({"city": "Austin"}) == TEXT


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_every_page_of_the_listing_is_read(transport, http_server) -> None:
    spec = {"command": server_command("paged")} if transport == "stdio" else {"url": http_server("paged").url}
    async with create_tools_from_mcp(**spec) as tools:
        assert [t.name for t in tools] == [f"tool_{i:03d}" for i in range(250)]  # three pages of 100
        assert await tools[249].function({"x": 7}) == 'tool_249 got {"x": 7}'


async def test_match_patterns_keep_matching_tool_names() -> None:
    async with create_tools_from_mcp(command=server_command("paged"), match_patterns=[r"_00\d$", "tool_249"]) as tools:
        assert [t.name for t in tools] == [f"tool_00{i}" for i in range(10)] + ["tool_249"]


# ------------------------------------------------------------------ results


async def test_results_become_the_text_the_model_reads() -> None:
    async with create_tools_from_mcp(command=WEATHER, max_response_bytes=1000) as tools:
        call = {name: t.function for name, t in by_name(tools).items()}
        assert await call["media"]() == "\n".join(
            [
                "Here is the chart.",
                "[image: image/png, 3,000 bytes]",
                "[audio: audio/wav, 1,000 bytes]",
                "[resource link: file:///data/report.pdf (report.pdf, application/pdf, 123,456 bytes)]",
                "[resource: file:///data/notes.txt, text/plain]\nnote one",
                "[resource: file:///data/blob.bin, application/octet-stream, 5,000 bytes]",
            ]
        )
        # Structured content as compact JSON, once, though the server also sent it as indented text.
        assert json.loads(await call["forecast"](city="Oslo", days=2)) == {
            "city": "Oslo",
            "days": [{"day": 1, "high_c": 30}, {"day": 2, "high_c": 31}],
        }
        assert "\n" not in await call["forecast"](city="Oslo", days=2)
        assert await call["structured_only"]() == '{"temperature_c": 31, "sky": "clear"}'
        assert await call["nothing"]() == EMPTY_RESULT
        big = await call["big"](size=5000)
        assert big.endswith("\n[response truncated: showing the first 1000 bytes of 5500 bytes]")
        assert big.startswith("abcdefghié" * 90) and len(big.split("\n")[0].encode()) <= 1000


async def test_failures_are_error_json_and_the_server_goes_on() -> None:
    async with create_tools_from_mcp(command=WEATHER) as tools:
        call = {name: t.function for name, t in by_name(tools).items()}
        assert json.loads(await call["fail"](reason="no such city")) == {
            "error": "Error executing tool fail: no such city"
        }
        assert json.loads(await call["crash"]()) == {"error": "Error executing tool crash"}
        # An argument of the wrong type: the server refuses it, the model reads why.
        assert "error" in json.loads(await call["get_weather"](city=["not", "a", "string"]))
        assert json.loads(await call["get_weather"]("Austin")) == {"error": "the arguments must be an object, not str"}
        assert await call["get_weather"](city="Austin") == TEXT


async def test_a_hanging_tool_times_out_and_the_server_stays_usable(call_log) -> None:
    async with create_tools_from_mcp(command=WEATHER, timeout=1, env=call_log.env) as tools:
        sleep = by_name(tools)["sleep"]
        assert sleep.timeout == 2.0  # a second above: its own answer beats run_with_tools' timeout
        started = time.perf_counter()
        assert json.loads(await sleep.function(seconds=600)) == {"error": "the MCP tool call timed out after 1s"}
        assert time.perf_counter() - started < 30  # hang guard: normally 1 s (30x); the tool sleeps 600 s
        assert await by_name(tools)["get_weather"].function(city="Austin") == TEXT
        assert await sleep.function(seconds=0.01) == "slept 0.01"


async def test_a_cancelled_call_leaves_the_server_usable() -> None:
    async with create_tools_from_mcp(command=WEATHER, timeout=None) as tools:
        call = asyncio.create_task(by_name(tools)["sleep"].function(seconds=600))
        await asyncio.sleep(0.5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await by_name(tools)["get_weather"].function(city="Austin") == TEXT


async def test_cancelling_the_whole_block_stops_the_server_during_a_hanging_call() -> None:
    pids: list[int] = []

    async def use() -> None:
        async with create_tools_from_mcp(command=WEATHER, timeout=None) as tools:
            pids.append(await server_pid(tools))
            await by_name(tools)["sleep"].function(seconds=600)

    task = asyncio.create_task(use())
    assert await eventually(lambda: bool(pids))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process_gone(pids[0])


# ------------------------------------------------------------------ servers that die


async def test_a_killed_stdio_server_turns_into_error_results() -> None:
    async with create_tools_from_mcp(command=WEATHER) as tools:
        pid = await server_pid(tools)
        os.kill(pid, signal.SIGKILL)
        answer = json.loads(await by_name(tools)["get_weather"].function(city="Austin"))
        assert "closed" in answer["error"] and "python" in answer["error"]
        answer = json.loads(await by_name(tools)["get_weather"].function(city="Austin"))
        assert "closed" in answer["error"]
    assert process_gone(pid)


async def test_a_killed_http_server_turns_into_error_results(http_server) -> None:
    server = http_server("weather")
    async with create_tools_from_mcp(url=server.url, timeout=20) as tools:
        assert await by_name(tools)["get_weather"].function(city="Austin") == TEXT
        server.kill()
        for _ in range(2):  # the failing call, then one on the connection that failure ended
            answer = json.loads(await by_name(tools)["get_weather"].function(city="Austin"))
            assert server.url in answer["error"]


async def test_a_server_dying_mid_run_becomes_tool_errors_and_the_run_finishes(call_log) -> None:
    replies = [
        ScriptedReply(calls=[("exit_now", {})]),
        ScriptedReply(calls=[("get_weather", {"city": "Austin"})]),
        ScriptedReply(text="The weather service is down."),
    ]
    ai, engine = scripted_ai(replies)
    async with create_tools_from_mcp(command=WEATHER, env=call_log.env) as tools:
        out = await run_with_tools(
            ai, SCRIPTED, {"messages": [{"role": "user", "content": "What's the weather in Austin?"}], "tools": tools}
        )
    results = [m["content"] for m in out["messages"] if m["role"] == "tool"]
    assert len(results) == 2 and all("error" in json.loads(r) for r in results), results
    assert [c["name"] for c in call_log.calls()] == ["exit_now"]  # the second call found no server
    assert out["response"] == "The weather service is down."
    assert {t.name for t in engine.requests[0].tools} >= {"get_weather", "exit_now"}


# ------------------------------------------------------------------ several servers


async def test_two_servers_with_clashing_names_are_refused_and_both_stopped() -> None:
    made = create_tools_from_mcp(servers=[{"command": WEATHER}, {"command": WEATHER}])
    with pytest.raises(InvalidInputError, match=r"two MCP tools are named 'get_weather'.*prefix") as caught:
        await made.__aenter__()
    assert caught.value.where == "servers[1]"
    # no_child_left_behind checks that the servers that did start were stopped


async def test_two_servers_with_prefixes_work_side_by_side(http_server) -> None:
    servers = [{"command": WEATHER, "prefix": "a_"}, {"url": http_server("weather").url, "prefix": "b_"}]
    async with create_tools_from_mcp(servers=servers) as tools:
        names = set(by_name(tools))
        assert {"a_get_weather", "b_get_weather", "a_pid", "b_pid"} <= names and "get_weather" not in names
        assert await server_pid(tools, "a_pid") != await server_pid(tools, "b_pid")
        assert await by_name(tools)["b_get_weather"].function(city="Austin") == TEXT


async def test_one_server_failing_to_start_stops_the_others() -> None:
    with pytest.raises(MCPServerError, match="could not be started"):
        async with create_tools_from_mcp(
            servers=[{"command": WEATHER}, {"command": [sys.executable, "-c", "raise SystemExit(3)"]}]
        ):
            pass


# ------------------------------------------------------------------ tools that change


@pytest.mark.parametrize("era", ["2026", "2025"])
async def test_a_list_changed_notice_updates_the_tool_list_in_place(era) -> None:
    command = WEATHER if era == "2026" else server_command("weather", "--legacy")
    async with create_tools_from_mcp(command=command) as tools:
        assert "fresh" not in by_name(tools)
        assert await by_name(tools)["add_tool"].function(name="fresh") == "added"
        assert await eventually(lambda: "fresh" in by_name(tools))
        assert await by_name(tools)["fresh"].function() == "I am fresh"
        assert by_name(tools)["fresh"].description == "The tool fresh."


# ------------------------------------------------------------------ hostile servers


class RecordingServer(HttpStandIn):
    """A loopback HTTP server that records every request: a schema's $ref must never reach it."""

    def __init__(self) -> None:
        super().__init__(same_answer())
        self.requests = self.paths
        self.url = f"{self.url}/schema.json"


async def test_hostile_schemas_are_skipped_with_a_warning_and_never_fetched(caplog) -> None:
    recorder = RecordingServer()
    try:
        with caplog.at_level(logging.WARNING, logger="toolrun.mcp"):
            async with create_tools_from_mcp(command=server_command("hostile", recorder.url)) as tools:
                names = [t.name for t in tools]
                assert names == ["get_weather_now", "fine"]  # renamed; the rest refused
                fine = by_name(tools)["fine"]
                assert len(fine.description) == 4096 and fine.description.endswith("…")
                assert fine.schema_errors({"a": "x"}) == [] and fine.schema_errors({"a": 1})
                out = await run_with_tools(
                    scripted_ai(
                        [ScriptedReply(calls=[("get_weather_now", {"city": "A"})]), ScriptedReply(text="done")]
                    )[0],
                    SCRIPTED,
                    {"prompt": "go", "tools": tools},
                )
                assert [m["content"] for m in out["messages"] if m["role"] == "tool"] == ["called get/weather now"]
    finally:
        recorder.close()
    assert recorder.requests == []
    skipped = {r.getMessage().split("tool '")[1].split("'")[0] for r in caplog.records if "skipped" in r.getMessage()}
    assert skipped == {"remote_ref", "file_ref", "too_deep", "bad_schema"}
    assert any("points outside the schema" in r.getMessage() and "remote_ref" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ sync face


def test_the_sync_face_with_run_with_tools_sync(call_log) -> None:
    replies = [ScriptedReply(calls=[("get_weather", {"city": "Austin"})]), ScriptedReply(text="31 and sunny")]
    ai, _ = scripted_ai(replies)
    with create_tools_from_mcp_sync(command=WEATHER, env=call_log.env) as tools:
        out = run_with_tools_sync(ai, SCRIPTED, {"prompt": "Weather in Austin?", "tools": tools})
        pid = asyncio.run(server_pid(tools))  # any other loop can call them too
    assert [m["content"] for m in out["messages"] if m["role"] == "tool"] == [TEXT]
    assert out["response"] == "31 and sunny"
    assert call_log.calls()[0]["arguments"] == {"city": "Austin"}
    assert process_gone(pid)


def test_the_sync_face_reports_a_server_that_will_not_start() -> None:
    with (
        pytest.raises(MCPServerError, match="could not be started"),
        create_tools_from_mcp_sync(command=[sys.executable, "-c", "raise SystemExit(3)"]),
    ):
        pass


def test_the_sync_face_takes_exactly_the_async_faces_arguments() -> None:
    # One list of arguments serves both faces: help() shows them, and they are checked alike.
    sync, async_ = inspect.signature(create_tools_from_mcp_sync), inspect.signature(create_tools_from_mcp)
    assert sync.parameters == async_.parameters
    assert sync.return_annotation == "MCPToolsSync"
    with pytest.raises(TypeError, match="comand"):
        create_tools_from_mcp_sync(comand=WEATHER)
    with pytest.raises(InvalidInputError, match="prefix"):
        create_tools_from_mcp_sync(command=WEATHER, prefix="no spaces")


# ------------------------------------------------------------------ starting fails clearly


async def test_a_missing_command_is_one_clear_error() -> None:
    with pytest.raises(MCPServerError, match="could not be started: FileNotFoundError"):
        async with create_tools_from_mcp(command=["toolrun-no-such-mcp-server"]):
            pass


async def test_nothing_listening_at_the_url_is_one_clear_error() -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MCPServerError, match=re.escape(f"http://127.0.0.1:{port}/mcp could not be started")):
        async with create_tools_from_mcp(url=f"http://127.0.0.1:{port}/mcp"):
            pass


async def test_a_server_that_never_answers_hits_the_connect_timeout() -> None:
    started = time.perf_counter()
    with pytest.raises(MCPServerError, match="within 1 s"):
        async with create_tools_from_mcp(
            command=[sys.executable, "-c", "import time; time.sleep(600)"], connect_timeout=1
        ):
            pass
    assert time.perf_counter() - started < 60  # hang guard: normally 3 s (20x); the child sleeps 600 s


async def test_a_server_that_ignores_sigterm_is_killed_and_reaped() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    with pytest.raises(MCPServerError, match="within 1 s"):
        async with create_tools_from_mcp(command=[sys.executable, "-c", stubborn], connect_timeout=1):
            pass
    # no_child_left_behind: stdin closed, SIGTERM ignored, then SIGKILL to its process group, and reaped


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({}, "command"),
        ({"command": WEATHER, "url": "http://127.0.0.1:1/mcp"}, "command"),
        ({"command": []}, "command"),
        ({"command": 3}, "command"),
        ({"url": "ftp://example.com/mcp"}, "url"),
        ({"url": "http://127.0.0.1:1/mcp", "env": {"A": "1"}}, "env"),
        ({"command": WEATHER, "headers": {"A": "1"}}, "headers"),
        ({"command": WEATHER, "headers": {"A": "1\r\nB: 2"}}, "headers"),
        ({"command": WEATHER, "prefix": "a b"}, "prefix"),
        ({"command": WEATHER, "match_patterns": ["("]}, "match_patterns[0]"),
        ({"command": WEATHER, "timeout": 0}, "timeout"),
        ({"command": WEATHER, "max_response_bytes": 0}, "max_response_bytes"),
        ({"command": WEATHER, "connect_timeout": None}, "connect_timeout"),
        ({"servers": []}, "servers"),
        ({"servers": "python server.py"}, "servers"),
        ({"servers": [{"command": WEATHER, "colour": "red"}]}, "servers[0]"),
        ({"servers": [{"command": WEATHER}], "prefix": "a_"}, "prefix"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(kwargs, where) -> None:
    with pytest.raises(InvalidInputError) as caught:
        create_tools_from_mcp(**kwargs)
    assert caught.value.where == where


def test_the_url_label_never_shows_credentials_or_a_query() -> None:
    made = create_tools_from_mcp(url="https://user:secret@example.com:8443/mcp?token=abc")
    assert repr(made) == "MCPTools(https://example.com:8443/mcp)"
