"""Load GBNF grammars in the real llama.cpp, in a child process, and ask them which texts they accept.

A grammar llama.cpp cannot parse may crash the process that loads it (a stack overflow
in its recursive parser is a SIGSEGV), so grammars are loaded in a subprocess: a crash
fails the test instead of killing pytest. One subprocess loads the default model's
vocabulary once (``vocab_only``) and checks a whole batch.

A text is accepted when every one of its tokens passes the grammar sampler in turn and
the end-of-generation token is then allowed (the grammar is complete); a token that
fails is never accepted (llama.cpp aborts on accepting a token its grammar refuses).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

_CHILD = r"""
import ctypes, json, sys
import llama_cpp as lc

llm = lc.Llama(sys.argv[1], vocab_only=True, verbose=False)
vocab = llm._model.vocab
eos = llm.token_eos()

def tokens(text):
    data = text.encode("utf-8")
    buffer = (lc.llama_token * (len(data) + 8))()
    n = lc.llama_tokenize(vocab, data, len(data), buffer, len(data) + 8, False, False)
    return list(buffer[:n])

def allowed(sampler, token):
    one = (lc.llama_token_data * 1)(lc.llama_token_data(token, 0.0, 0.0))
    array = lc.llama_token_data_array(one, 1, -1, False)
    lc.llama_sampler_apply(sampler, ctypes.byref(array))
    return one[0].logit != float("-inf")

def accepts(grammar, text):
    sampler = lc.llama_sampler_init_grammar(vocab, grammar, b"root")
    try:
        for token in tokens(text):
            if not allowed(sampler, token):
                return False
            lc.llama_sampler_accept(sampler, token)
        return allowed(sampler, eos)
    finally:
        lc.llama_sampler_free(sampler)

for line in sys.stdin:
    job = json.loads(line)
    grammar = job["grammar"].encode("utf-8")
    sampler = lc.llama_sampler_init_grammar(vocab, grammar, b"root")
    loaded = bool(sampler)
    if loaded:
        lc.llama_sampler_free(sampler)
    answer = {"loaded": loaded, "accepts": [accepts(grammar, t) for t in job["texts"]] if loaded else []}
    print(json.dumps(answer), flush=True)
"""


@dataclass(frozen=True)
class GrammarVerdict:
    loaded: bool
    accepts: list[bool]


@cache
def vocab_model_path() -> str:
    """The default model's GGUF: its vocabulary tokenises the texts the way generation does."""
    from toolrun import AI, DEFAULT_MODEL

    return AI().weights(DEFAULT_MODEL)


def check_grammars(jobs: list[tuple[str, list[str]]], *, timeout: float = 600) -> list[GrammarVerdict]:
    """For each (grammar, texts): whether llama.cpp loads the grammar, and which texts it accepts.

    Fails (AssertionError) when the child process dies, naming the signal: that is the crash under test.
    """
    payload = "".join(json.dumps({"grammar": g, "texts": texts}) + "\n" for g, texts in jobs)
    # A generous bound, far above the few seconds a batch takes: it only stops a hang.
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, vocab_model_path()],
        input=payload,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, (
        f"llama.cpp's process ended with {done.returncode} after {len(lines)} of {len(jobs)} grammars "
        f"(a negative number is the signal that killed it); stderr: {done.stderr[-2000:]}"
    )
    assert len(lines) == len(jobs)
    return [GrammarVerdict(**json.loads(line)) for line in lines]


class GrammarChild:
    """One long-lived llama.cpp child process, asked one grammar at a time (for hypothesis, which
    needs each example's verdict to shrink a failure). After a crash, the next question starts a new one."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def check(self, grammar: str, texts: list[str] | None = None) -> GrammarVerdict:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, vocab_model_path()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # llama.cpp prints each refused grammar whole
                text=True,
            )
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps({"grammar": grammar, "texts": texts or []}) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            pass
        line = process.stdout.readline()
        assert line, f"llama.cpp's process died on this grammar (exit {process.wait()}): {grammar[:2000]}"
        return GrammarVerdict(**json.loads(line))

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=60)
