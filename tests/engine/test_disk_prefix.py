"""Warm prefixes on disk: the file format never trusted, and a restarted engine restoring a tool list.

The first half needs no model; the second (``-m model``) runs the default model in several engines in turn,
sharing one directory, as successive ``toolrun run`` processes would.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun._types import normalize_messages, normalize_tools
from toolrun.engines import GenerationRequest, SamplingParams
from toolrun.engines.llamacpp import LlamaCppEngine
from toolrun.engines.llamacpp._disk_prefix import SUFFIX, DiskPrefixStore, RejectedFile, decode, encode, file_name
from toolrun.engines.llamacpp._model import LlamaModel
from toolrun.formats import get_format

KEY = {"model": {"path": "/models/a.gguf", "size": 1000, "mtime_ns": 1}, "layout": {"n_ctx_seq": 2048}}
OTHER_MODEL = {**KEY, "model": {"path": "/models/a.gguf", "size": 1001, "mtime_ns": 1}}
TOKENS = list(range(300))
STATE = bytes(range(256)) * 40


def store(directory: Path, key: dict[str, Any] = KEY, budget: int = 1 << 20) -> DiskPrefixStore:
    return DiskPrefixStore(directory, budget, key)


def saved_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


# ---------------------------------------------------------------- the file format, no model


def test_a_written_prefix_is_found_by_a_new_store_and_loaded_whole(tmp_path: Path) -> None:
    path = store(tmp_path).write(TOKENS, STATE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a prefix holds a system prompt's KV
    later = store(tmp_path)  # another process
    prompt = [*TOKENS, 7, 8, 9]
    assert later.best(prompt) == (tuple(TOKENS), 300)
    assert later.load(TOKENS) == STATE
    assert later.stats.disk_read_bytes == len(STATE) and later.stats.disk_rejected == 0


def test_a_corrupt_payload_is_deleted_not_loaded(tmp_path: Path) -> None:
    path = store(tmp_path).write(TOKENS, STATE)
    data = bytearray(path.read_bytes())
    data[-100] ^= 1  # one bit of the KV
    path.write_bytes(bytes(data))
    later = store(tmp_path)
    assert later.best(TOKENS) is not None  # the header alone looks fine
    assert later.load(TOKENS) is None
    assert not path.exists() and later.stats.disk_rejected == 1
    assert later.best(TOKENS) is None


@pytest.mark.parametrize("keep", [0, 10, 60, -1], ids=["empty", "in-fixed-header", "in-header", "payload-short"])
def test_a_truncated_file_is_deleted_not_loaded(tmp_path: Path, keep: int) -> None:
    path = store(tmp_path).write(TOKENS, STATE)
    path.write_bytes(path.read_bytes()[:keep])
    later = store(tmp_path)
    assert later.best(TOKENS) is None and later.load(TOKENS) is None
    assert not path.exists() and later.stats.disk_rejected == 1


def test_a_file_written_for_another_model_is_never_loaded(tmp_path: Path) -> None:
    ours = store(tmp_path)
    theirs = store(tmp_path, OTHER_MODEL)
    their_file = theirs.write(TOKENS, STATE)
    assert ours.best(TOKENS) is None  # another configuration's files are not even read
    assert their_file.exists()  # nor deleted: they are that model's
    # The same bytes under the name this store would look for (a valid checksum, the wrong key): deleted.
    forged = tmp_path / file_name(ours.config_digest, TOKENS)
    forged.write_bytes(their_file.read_bytes())
    assert ours.best(TOKENS) is None and ours.load(TOKENS) is None
    assert not forged.exists() and ours.stats.disk_rejected == 1


def test_a_file_holding_other_tokens_than_its_name_says_is_deleted(tmp_path: Path) -> None:
    ours = store(tmp_path)
    other = [*TOKENS[:-1], 99999]
    (tmp_path / file_name(ours.config_digest, TOKENS)).write_bytes(encode(KEY, other, STATE))
    assert ours.best(TOKENS) is None and ours.load(TOKENS) is None
    assert saved_files(tmp_path) == [] and ours.stats.disk_rejected == 1
    path = ours.write(TOKENS, STATE)
    with pytest.raises(RejectedFile, match="other tokens"):  # asked for other tokens than the file holds
        decode(path, KEY, other, 1 << 20)


def test_oldest_files_are_evicted_to_stay_within_the_budget(tmp_path: Path) -> None:
    one_file = len(encode(KEY, TOKENS, STATE))
    small = store(tmp_path, budget=2 * one_file + 100)
    prompts = [[n, *TOKENS] for n in range(3)]
    for age, tokens in enumerate(prompts):
        path = small.write(tokens, STATE)
        os.utime(path, (1000 + age, 1000 + age))  # written in this order
    assert [small.holds(p) for p in prompts] == [False, True, True]
    assert sum(p.stat().st_size for p in saved_files(tmp_path)) <= small.budget_bytes
    assert small.stats.disk_evictions == 1
    # A load makes a file the most recent: the next write evicts the other one.
    assert small.load(prompts[1]) == STATE
    small.write([9, *TOKENS], STATE)
    assert small.holds(prompts[1]) and not small.holds(prompts[2])


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = store(tmp_path)

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ours.write(TOKENS, STATE)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    # The background writer logs the failure and goes on.
    monkeypatch.setattr(os, "replace", crash)
    assert ours.save(TOKENS, STATE)
    ours.flush()
    assert list(tmp_path.iterdir()) == [] and ours.stats.disk_writes == 0


def test_a_temporary_file_left_by_a_dead_process_is_cleaned_up(tmp_path: Path) -> None:
    stale = tmp_path / f".tmp-dead{SUFFIX}"
    stale.write_bytes(b"half a file")
    os.utime(stale, (1000, 1000))
    fresh = tmp_path / f".tmp-writing{SUFFIX}"  # another process writing right now
    fresh.write_bytes(b"half a file")
    ours = store(tmp_path)
    assert ours.best(TOKENS) is None
    ours.write(TOKENS, STATE)
    assert not stale.exists() and fresh.exists()


def test_saves_are_written_in_the_background_once(tmp_path: Path) -> None:
    ours = store(tmp_path)
    assert ours.save(TOKENS, STATE)
    ours.flush()
    assert ours.holds(TOKENS) and ours.stats.disk_writes == 1
    assert not ours.save(TOKENS, STATE)  # already there
    assert not ours.save([1, *TOKENS], bytes(2 << 20))  # larger than the whole budget
    # A longer prefix replaces the ones it extends, as in the RAM cache.
    assert ours.save([*TOKENS, 1, 2], STATE)
    ours.flush()
    assert not ours.holds(TOKENS) and len(saved_files(tmp_path)) == 1
    ours.clear()
    assert saved_files(tmp_path) == [] and ours.best(TOKENS) is None


def test_a_file_larger_than_the_budget_is_not_read(tmp_path: Path) -> None:
    path = store(tmp_path, budget=10 << 20).write(TOKENS, STATE)
    tiny = store(tmp_path, budget=len(STATE) - 1)  # the same configuration, a smaller budget
    assert tiny.best(TOKENS) is None and not path.exists()


def test_metrics_report_the_disk_counters() -> None:
    from toolrun.server._metrics import Metrics

    class Engine:
        def stats(self) -> dict[str, int]:
            return {"disk_hits": 2, "disk_restored_tokens": 900, "disk_rejected": 1}

    metrics = Metrics()
    metrics.watch_engines(lambda: {"@local/model": Engine()})
    text = metrics.render().decode()
    assert 'toolrun_prefix_disk_hits_total{model="@local/model"} 2.0' in text
    assert 'toolrun_prefix_disk_restored_tokens_total{model="@local/model"} 900.0' in text
    assert 'toolrun_prefix_disk_rejected_total{model="@local/model"} 1.0' in text


# ---------------------------------------------------------------- the scheduler's hooks, on a stand-in context


class _FakeBatch:
    def __init__(self) -> None:
        self.entries: list[tuple[int, int, int]] = []

    @property
    def n(self) -> int:
        return len(self.entries)

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        self.entries.append((token, pos, seq))
        return len(self.entries) - 1


class _FakeContext:
    """What the scheduler asks of llama.cpp, over plain lists: a state is the JSON of a sequence's (pos, token)s."""

    def __init__(self, model: Any, *, n_seq: int, n_ctx_seq: int, n_threads: int, n_batch: int) -> None:
        self.n_ctx_seq, self.n_batch = n_ctx_seq, n_batch
        self.cells: dict[int, list[tuple[int, int]]] = {seq: [] for seq in range(n_seq)}
        self.batch = _FakeBatch()
        self.decodes: list[int] = []

    def decode(self) -> None:
        for token, pos, seq in self.batch.entries:
            assert pos == len(self.cells[seq])
            self.cells[seq].append((pos, token))
        self.decodes.append(self.batch.n)
        self.batch = _FakeBatch()

    def logits(self, index: int) -> Any:
        import numpy as np

        return np.zeros(4, dtype=np.float32)

    def remove(self, seq: int, start: int = 0, end: int = -1) -> None:
        del self.cells[seq][start:]

    def save(self, seq: int) -> bytes:
        import json

        return json.dumps(self.cells[seq]).encode()

    def restore(self, seq: int, state: bytes) -> None:
        import json

        from toolrun._errors import EngineError

        try:
            self.cells[seq] = [tuple(cell) for cell in json.loads(state)]  # type: ignore[misc]
        except ValueError:
            self.cells[seq] = []
            raise EngineError("llama.cpp could not restore sequence") from None

    def close(self) -> None:
        pass


def _run_prompt(scheduler: Any, prompt: list[int], persist: int) -> None:
    import threading

    from toolrun.engines.llamacpp._scheduler import Job

    ended = threading.Event()
    errors: list[BaseException] = []

    def program(seq: Any) -> Any:
        yield seq.prompt(prompt)

    def done(error: BaseException | None) -> None:
        if error is not None:
            errors.append(error)
        ended.set()

    job = Job(program, threading.Event(), done)
    job.persist = persist
    scheduler.submit(job)
    assert ended.wait(30)
    assert not errors, errors


def _scheduler(monkeypatch: pytest.MonkeyPatch, directory: Path) -> Any:
    from toolrun.engines.llamacpp import _scheduler as module

    monkeypatch.setattr(module, "SequenceContext", _FakeContext)
    scheduler = module.Scheduler(None, n_slots=2, n_ctx_seq=4096, n_threads=1, cache_bytes=1 << 20)
    scheduler.attach_disk(store(directory, budget=16 << 20))
    return scheduler


def test_the_scheduler_saves_the_shared_prefix_once_and_a_new_one_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = list(range(1000, 1700))  # system prompt and tools: 700 tokens
    first, second = [*shared, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [*shared, *range(20, 60)]
    before = _scheduler(monkeypatch, tmp_path)
    _run_prompt(before, first, persist=len(shared))
    # Cut where the shared part ends (512 + 188, then the question), and only that part saved.
    assert before.context.decodes == [512, 188, 10]
    before.close()
    (path,) = saved_files(tmp_path)
    assert decode(path, KEY, shared, 1 << 30)[0] == shared
    assert before.stats.disk_writes == 1 and before.stats.disk_misses == 1

    after = _scheduler(monkeypatch, tmp_path)  # a new process
    _run_prompt(after, second, persist=len(shared))
    assert after.stats.disk_hits == 1 and after.stats.disk_restored_tokens == len(shared)
    assert after.prefilled_tokens == len(second) - len(shared) and after.stats.disk_writes == 0
    assert after.context.cells[0] == list(enumerate(second))  # the KV a cold run would hold
    after.close()


def test_a_state_the_context_refuses_is_evaluated_instead_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = list(range(1000, 1300))
    prompt = [*shared, *range(20, 40)]
    store(tmp_path).write(shared, b"not a state")  # a whole file (checksum right) that the context refuses
    scheduler = _scheduler(monkeypatch, tmp_path)
    _run_prompt(scheduler, prompt, persist=len(shared))
    assert scheduler.stats.disk_hits == 0 and scheduler.stats.disk_rejected == 1
    assert scheduler.prefilled_tokens == len(prompt)
    assert scheduler.context.cells[0] == list(enumerate(prompt))
    scheduler.close()
    (path,) = saved_files(tmp_path)  # rebuilt from the evaluation
    assert decode(path, KEY, shared, 1 << 30)[1] == json_state(shared)


def json_state(tokens: list[int]) -> bytes:
    import json

    return json.dumps([[pos, token] for pos, token in enumerate(tokens)]).encode()


def test_a_short_shared_prefix_is_not_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = _scheduler(monkeypatch, tmp_path)
    _run_prompt(scheduler, list(range(200)), persist=100)  # under 128 tokens: not worth a file
    scheduler.close()
    assert saved_files(tmp_path) == [] and scheduler.context.decodes == [200]


# ---------------------------------------------------------------- a restarted engine, on the real model

TOOLS = [
    {
        "name": name,
        "description": f"{description} Use it whenever the user asks about this; never guess the answer.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, as the user wrote it."},
                "days": {"type": "integer", "description": "How many days ahead, from 0 (today) to 14."},
                "units": {"type": "string", "enum": ["metric", "imperial"], "description": "The units to answer in."},
            },
            "required": ["city"],
        },
    }
    for name, description in [
        ("get_forecast", "The weather forecast for a city."),
        ("get_alerts", "Severe weather alerts in force for a city."),
        ("get_air_quality", "The air quality index and main pollutants for a city."),
        ("get_pollen", "Pollen counts by plant for a city."),
    ]
]
FIRST = "Will it rain in Lisbon tomorrow?"
SECOND = "What is the air quality in Porto today?"


def request(question: str) -> GenerationRequest:
    return GenerationRequest(
        normalize_messages([{"role": "user", "content": question}]),
        normalize_tools(TOOLS),
        sampling=SamplingParams(max_tokens=24, temperature=0),
    )


async def answer(engine: LlamaCppEngine, req: GenerationRequest) -> tuple[Any, ...]:
    text, calls, final = "", [], dict[str, Any]()
    async for event in engine.generate(req):
        if "tool_calls" in event:
            calls += [(c["name"], c["arguments"]) for c in event["tool_calls"]]
        elif "usage" in event:
            final = dict(event)
        elif "response" in event:
            text += event["response"]
    return text, calls, final.get("usage"), final.get("finish_reason")


async def run_once(
    weights: str, directory: Path, question: str, disk_mb: float
) -> tuple[tuple[Any, ...], dict[str, int]]:
    """A fresh engine (a new process, as far as its caches go) answering one question; its answer and stats."""
    engine = LlamaCppEngine(
        weights,
        get_format("hermes"),
        context_window=2048,
        n_threads=2,
        slots=2,
        prefix_disk_mb=disk_mb,
        prefix_disk_dir=directory,
    )
    engine.load()
    scheduler = engine._scheduler
    assert scheduler is not None
    try:
        got = await answer(engine, request(question))
    finally:
        await engine.aclose()  # waits for the disk write, as toolrun run's exit does
    stats = {name: int(value) for name, value in vars(scheduler.stats).items()}
    stats["prefilled_tokens"] = scheduler.prefilled_tokens
    stats["prompt_tokens"] = got[2]["prompt_tokens"]
    stats["disk_on"] = scheduler.disk is not None
    return got, stats


@pytest.fixture(scope="module")
def weights() -> str:
    return AsyncAI().weights(DEFAULT_MODEL)


@pytest.mark.model
async def test_a_restarted_engine_restores_the_tool_list_from_disk_and_answers_as_without(
    weights: str, tmp_path: Path, model: LlamaModel
) -> None:
    reference, off = await run_once(weights, tmp_path, SECOND, disk_mb=0)
    assert not off["disk_on"] and saved_files(tmp_path) == []

    _, first = await run_once(weights, tmp_path, FIRST, disk_mb=64)
    assert first["disk_writes"] == 1 and first["disk_hits"] == 0
    (path,) = saved_files(tmp_path)
    # Only the shared prefix (system prompt and tools) is kept: the user's question stays off the disk.
    tokens = _header_tokens(path)
    text = model.detokenize(tokens).decode()
    assert "get_pollen" in text and "Lisbon" not in text and len(tokens) >= 256

    restarted, second = await run_once(weights, tmp_path, SECOND, disk_mb=64)
    assert second["disk_hits"] == 1 and second["disk_restored_tokens"] == len(tokens), second
    assert second["prefilled_tokens"] == second["prompt_tokens"] - len(tokens), second  # the rest only
    assert second["disk_writes"] == 0  # the prefix was there already
    assert restarted == reference


@pytest.mark.model
async def test_a_file_for_another_model_or_a_state_llama_refuses_is_rebuilt_not_used(
    weights: str, tmp_path: Path
) -> None:
    reference, _ = await run_once(weights, tmp_path, SECOND, disk_mb=0)
    await run_once(weights, tmp_path, FIRST, disk_mb=64)
    (path,) = saved_files(tmp_path)
    tokens = _header_tokens(path)
    key, state = _key_and_state(path, tokens)

    # The same KV, its header naming another model file (a valid checksum, under the name this model looks for).
    other_model = {**key, "model": {**key["model"], "size": key["model"]["size"] + 1}}
    path.write_bytes(encode(other_model, tokens, state))
    got, stats = await run_once(weights, tmp_path, SECOND, disk_mb=64)
    assert stats["disk_rejected"] == 1 and stats["disk_hits"] == 0, stats
    assert stats["prefilled_tokens"] == stats["prompt_tokens"]  # evaluated whole
    assert got == reference
    assert stats["disk_writes"] == 1 and _key_and_state(path, tokens) == (key, state)  # rebuilt, the same bits

    # The right key and a valid checksum, but a state llama.cpp cannot take: evaluated instead, file deleted.
    path.write_bytes(encode(key, tokens, state[: len(state) // 2]))
    got, stats = await run_once(weights, tmp_path, SECOND, disk_mb=64)
    assert stats["disk_rejected"] == 1 and stats["disk_hits"] == 0, stats
    assert stats["prefilled_tokens"] == stats["prompt_tokens"]
    assert got == reference


def _header_tokens(path: Path) -> list[int]:
    import json

    from toolrun.engines.llamacpp._disk_prefix import _FIXED

    data = path.read_bytes()
    header_len = _FIXED.unpack(data[: _FIXED.size])[2]
    return list(json.loads(data[_FIXED.size : _FIXED.size + header_len])["tokens"])


def _key_and_state(path: Path, tokens: list[int]) -> tuple[dict[str, Any], bytes]:
    import json

    from toolrun.engines.llamacpp._disk_prefix import _FIXED

    data = path.read_bytes()
    header_len = _FIXED.unpack(data[: _FIXED.size])[2]
    header = json.loads(data[_FIXED.size : _FIXED.size + header_len])
    key = header["key"]
    _, state = decode(path, key, tokens, 1 << 30)
    assert state is not None
    return key, state
