"""The scheduler on the real model: what a program evaluates does not depend on what decodes beside it,
nor on what an earlier request left to reuse (slow: ``-m model``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun.engines.llamacpp._model import LlamaModel
from toolrun.engines.llamacpp._scheduler import Job, Need, Scheduler, SequenceHandle
from toolrun.engines.llamacpp._slots import REPACKED_ROW_GROUP

pytestmark = pytest.mark.model

PROMPT = (
    "<|im_start|>user\nName three rivers in Europe and say where each one rises.<|im_end|>\n<|im_start|>assistant\n"
)
DETOUR = (
    "<|im_start|>user\nIs calling a function that converts currencies the right way to answer "
    '"How tall is Mont Blanc?"? Answer yes or no.<|im_end|>\n<|im_start|>assistant\n'
)

ANSWERED = PROMPT + "The Danube, the Rhine and the Loire.<|im_end|>\n"  # 34 tokens: a row group and 2
FOLLOW_UP = "<|im_start|>user\nWhere does the Rhine rise?<|im_end|>\n<|im_start|>assistant\n"


Program = Callable[[SequenceHandle], Generator[Need, None, None]]


@contextmanager
def scheduler_on(model: LlamaModel, n_slots: int, cache_bytes: int = 0, row_group: int = 1) -> Iterator[Scheduler]:
    """A scheduler over ``model``'s weights with 1,024-token slots and 2 threads, closed afterwards."""
    scheduler = Scheduler(
        model.model, n_slots=n_slots, n_ctx_seq=1024, n_threads=2, cache_bytes=cache_bytes, row_group=row_group
    )
    try:
        yield scheduler
    finally:
        scheduler.close()


def run_together(scheduler: Scheduler, programs: list[Program]) -> None:
    """Submit every program at once and wait for all of them."""
    left = threading.Semaphore(0)
    errors: list[BaseException] = []

    def done(error: BaseException | None) -> None:
        if error is not None:
            errors.append(error)
        left.release()

    with scheduler._cond:  # the worker admits them all in the same step
        for program in programs:
            scheduler.submit(Job(program, threading.Event(), done))
    for _ in programs:
        assert left.acquire(timeout=300)
    assert not errors, errors


def greedy_writer(prompt: list[int], steps: int) -> Program:
    """A request that decodes ``steps`` greedy tokens, one per step."""

    def program(seq: SequenceHandle) -> Generator[Need, None, None]:
        yield seq.prompt(prompt)
        for _ in range(steps):
            yield seq.eval([int(np.argmax(seq.logits()))])

    return program


def detour(prompt: list[int], question: list[int], seen: list[Any]) -> Program:
    """A request that writes a few tokens, then evaluates a whole new question in one go (as the engine
    does to ask the model about its call, or to answer in text) and records the logits that follow."""

    def program(seq: SequenceHandle) -> Generator[Need, None, None]:
        yield seq.prompt(prompt)
        for _ in range(3):
            yield seq.eval([int(np.argmax(seq.logits()))])
        seq.truncate(0)
        yield seq.eval(question)
        seen.append(seq.logits().copy())

    return program


def test_a_many_token_evaluation_gives_the_same_bits_beside_other_requests(model: LlamaModel) -> None:
    with scheduler_on(model, n_slots=4) as scheduler:
        prompt = model.tokenize(PROMPT.encode(), special=True)
        question = model.tokenize(DETOUR.encode(), special=True)
        assert len(question) > 16
        alone: list[Any] = []
        run_together(scheduler, [detour(prompt, question, alone)])
        scheduler.clear()
        beside: list[Any] = []
        others = [greedy_writer(model.tokenize(f"Count to {n}:".encode()), 24) for n in (10, 20, 30)]
        run_together(scheduler, [*others, detour(prompt, question, beside)])
        assert np.array_equal(beside[0], alone[0])


def count_decodes(scheduler: Scheduler) -> list[int]:
    """Record the size of every batch the scheduler's context decodes from now on."""
    sizes: list[int] = []
    decode = scheduler.context.decode

    def counted() -> None:
        sizes.append(scheduler.context.batch.n)
        decode()

    scheduler.context.decode = counted  # type: ignore[method-assign]
    return sizes


def first_logits(prompt: list[int], seen: list[Any]) -> Program:
    """A request that evaluates its prompt and records the logits of its first token."""

    def program(seq: SequenceHandle) -> Generator[Need, None, None]:
        yield seq.prompt(prompt)
        seen.append(seq.logits().copy())

    return program


@pytest.fixture(scope="module")
def repacked_model() -> Iterator[LlamaModel]:
    loaded = LlamaModel(AsyncAI().weights(DEFAULT_MODEL), batch_invariant=False)
    yield loaded
    loaded.close()


def test_with_repacked_weights_a_reused_prefix_gives_the_same_bits_as_cold(repacked_model: LlamaModel) -> None:
    """The second prompt extends the first, whose last tokens llama.cpp's repacked kernels computed
    apart from the rest (``n % 4``): reused as they are, those would change the second's logits."""
    with scheduler_on(repacked_model, n_slots=1, row_group=REPACKED_ROW_GROUP) as scheduler:
        first = repacked_model.tokenize(ANSWERED.encode(), special=True)
        second = first + repacked_model.tokenize(FOLLOW_UP.encode(), special=True)
        assert len(first) % REPACKED_ROW_GROUP != 0
        cold: list[Any] = []
        run_together(scheduler, [first_logits(second, cold)])
        scheduler.clear()
        warm: list[Any] = []
        run_together(scheduler, [first_logits(first, [])])
        run_together(scheduler, [first_logits(second, warm)])
        assert scheduler.stats.reused_tokens >= len(first) - REPACKED_ROW_GROUP
        assert np.array_equal(warm[0], cold[0])


def test_prompts_evaluated_in_one_batch_give_the_bits_they_give_alone(model: LlamaModel) -> None:
    with scheduler_on(model, n_slots=3) as scheduler:
        decodes = count_decodes(scheduler)
        prompts = [model.tokenize(text.encode(), special=True) for text in (PROMPT, ANSWERED, ANSWERED + FOLLOW_UP)]
        assert [len(p) for p in prompts] == [20, 34, 49]  # llama.cpp cuts the last into 20 + 14 + 15
        alone: list[Any] = []
        for prompt in prompts:
            scheduler.clear()
            run_together(scheduler, [first_logits(prompt, alone)])
        scheduler.clear()
        decodes.clear()
        together: list[list[Any]] = [[], [], []]
        run_together(scheduler, [first_logits(p, seen) for p, seen in zip(prompts, together, strict=True)])
        assert len(decodes) == 1  # the three prompts shared one batch
        for seen, expected in zip(together, alone, strict=True):
            assert np.array_equal(seen[0], expected)


def test_a_repeated_prompt_evaluates_nothing_and_gets_the_bits_of_a_cold_run(model: LlamaModel) -> None:
    with scheduler_on(model, n_slots=2) as scheduler:
        decodes = count_decodes(scheduler)
        prompt = model.tokenize(ANSWERED.encode(), special=True)
        cold: list[Any] = []
        run_together(scheduler, [first_logits(prompt, cold)])
        assert len(decodes) == 1
        # The slot then holds the prompt and a few decoded tokens; the same prompt again needs no decode.
        again: list[Any] = []
        run_together(scheduler, [greedy_writer(prompt, 3), first_logits(prompt, [])])
        run_together(scheduler, [first_logits(prompt, again)])
        assert scheduler.stats.reused_tokens >= len(prompt)
        assert np.array_equal(again[0], cold[0])
        before = len(decodes)
        repeated: list[Any] = []
        run_together(scheduler, [first_logits(prompt, repeated)])
        assert len(decodes) == before and np.array_equal(repeated[0], cold[0])
        # A prompt that only starts the same is evaluated (its last piece at least).
        longer: list[Any] = []
        run_together(scheduler, [first_logits(prompt + model.tokenize(FOLLOW_UP.encode(), special=True), longer)])
        assert len(decodes) > before and not np.array_equal(longer[0], cold[0])


def test_a_prompt_saved_to_ram_keeps_its_logits_and_its_repeat_evaluates_nothing(model: LlamaModel) -> None:
    # One slot: the second prompt overwrites the first, which goes to RAM with the logits it ended on.
    with scheduler_on(model, n_slots=1, cache_bytes=64 << 20) as scheduler:
        decodes = count_decodes(scheduler)
        first = model.tokenize(ANSWERED.encode(), special=True)
        second = model.tokenize(DETOUR.encode(), special=True)
        cold: list[Any] = []
        run_together(scheduler, [greedy_writer(first, 3), first_logits(first, cold)])
        run_together(scheduler, [first_logits(second, [])])
        assert scheduler.stats.saves == 1
        before = len(decodes)
        again: list[Any] = []
        run_together(scheduler, [first_logits(first, again)])
        assert scheduler.stats.restores == 1
        assert len(decodes) == before, "the restored prompt was evaluated again"
        assert np.array_equal(again[0], cold[0])


def test_a_saved_prompt_of_the_same_length_is_not_taken_for_an_exact_repeat(model: LlamaModel) -> None:
    with scheduler_on(model, n_slots=1, cache_bytes=64 << 20) as scheduler:
        saved = model.tokenize(ANSWERED.encode(), special=True)
        other = saved[:-1] + model.tokenize(b"!", special=False)  # the same length, the last token differs
        assert len(other) == len(saved) and other != saved
        cold: list[Any] = []
        run_together(scheduler, [first_logits(other, cold)])
        scheduler.clear()
        run_together(scheduler, [first_logits(saved, [])])
        run_together(scheduler, [first_logits(model.tokenize(DETOUR.encode(), special=True), [])])  # saved to RAM
        warm: list[Any] = []
        run_together(scheduler, [first_logits(other, warm)])
        assert np.array_equal(warm[0], cold[0])


def test_a_prompt_another_slot_is_generating_from_is_copied_with_its_logits(model: LlamaModel) -> None:
    with scheduler_on(model, n_slots=2) as scheduler:
        decodes = count_decodes(scheduler)
        prompt = model.tokenize(ANSWERED.encode(), special=True)
        cold: list[Any] = []
        run_together(scheduler, [first_logits(prompt, cold)])
        before = len(decodes)
        # The first request takes the slot holding the prompt and decodes; the second gets the other
        # slot, a copy of the first's prompt and its logits, and evaluates nothing.
        copied: list[Any] = []
        run_together(scheduler, [greedy_writer(prompt, 4), first_logits(prompt, copied)])
        assert scheduler.stats.restores == 1
        assert decodes[before:] == [1] * 4, "only the writer's own tokens were decoded"
        assert np.array_equal(copied[0], cold[0])
