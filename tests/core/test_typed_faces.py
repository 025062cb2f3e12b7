"""What a type checker sees of the binding (issue #28, item 4): ``run`` answers ``RunResult`` or a stream of
the event types by the inputs' ``stream``, and ``AI(...)`` names its arguments. Checked with mypy itself on a
small client, the way a user's code meets toolrun."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from toolrun import AI, AsyncAI
from toolrun._errors import InvalidInputError

CLIENT = """
from typing import Any
from toolrun.ai import AI, AsyncAI, StreamInputs


async def client(aai: AsyncAI, loose: dict[str, Any], typed: StreamInputs) -> None:
    reveal_type(await aai.run("m", {"messages": [{"role": "user", "content": "hi"}], "tools": []}))
    reveal_type(await aai.run("m", {"prompt": "hi", "stream": True, "max_tokens": 5}))
    reveal_type(await aai.run("m", typed))
    reveal_type(await aai.run("m", loose))


def sync_client(ai: AI) -> None:
    reveal_type(ai.run("m", {"prompt": "hi", "stream": False}))
    for event in ai.run("m", {"prompt": "hi", "stream": True}):
        reveal_type(event)
    AI(provider="workers-ai", api_token="x")
    AI(providr="workers-ai")
"""


def test_run_is_typed_by_stream_and_ai_names_its_arguments(tmp_path: Path) -> None:
    source = tmp_path / "client.py"
    source.write_text(CLIENT)
    # In a process of its own: mypy raises the interpreter's recursion limit and never lowers it, which would
    # hide RecursionErrors that the hostile-input tests expect. The project's mypy cache makes it quick.
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(source)], capture_output=True, text=True, check=False
    ).stdout
    revealed = re.findall(r"Revealed type is \"(.+)\"", out)
    events = "TextEvent.*CallDeltaEvent.*CallEvent.*FinalEvent"
    assert len(revealed) == 6, out
    assert revealed[0].startswith("TypedDict(toolrun._wire.RunResult"), revealed[0]
    assert re.match(rf"typing.AsyncGenerator\[.*{events}.*, None\]$", revealed[1]), revealed[1]
    assert re.match(rf"typing.AsyncGenerator\[.*{events}.*, None\]$", revealed[2]), revealed[2]
    # Inputs whose stream is not known until run time: one or the other, for the caller to tell apart.
    assert revealed[3].startswith("TypedDict(toolrun._wire.RunResult") and "AsyncGenerator" in revealed[3]
    assert revealed[4].startswith("TypedDict(toolrun._wire.RunResult"), revealed[4]
    assert re.match(rf"TypedDict\(toolrun._wire.{events}", revealed[5]), revealed[5]
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'Unexpected keyword argument "providr" for "AI"' in errors[0], out


def test_help_shows_ai_the_arguments_of_async_ai() -> None:
    # AI takes AsyncAI's arguments whole (one list of them); help() and IDEs see that list, not **arguments.
    assert inspect.signature(AI) == inspect.signature(AsyncAI)
    assert "provider" in inspect.signature(AI).parameters


def test_an_ai_that_cannot_be_built_leaves_no_event_loop_thread() -> None:
    def loop_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "toolrun-ai"}

    before = loop_threads()
    with pytest.raises(InvalidInputError, match="provider"):
        AI(provider="no-such-provider")
    assert loop_threads() <= before
