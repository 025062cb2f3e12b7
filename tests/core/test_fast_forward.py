"""Grammar fast-forward: the text a call grammar forces, found byte by byte on llama.cpp's own grammar
sampler over the default model's vocabulary (weights only, no context: quick), and the lookup drafts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from seed_testing import SEED_TOOL

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun._types import ToolSpec
from toolrun.engines.llamacpp._fast_forward import GrammarProbe
from toolrun.engines.llamacpp._lookup import PromptLookup
from toolrun.engines.llamacpp._model import LlamaModel
from toolrun.engines.llamacpp._speculative import Speculation, SpeculationStats, call_skeletons
from toolrun.formats import get_format


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    loaded = LlamaModel(AsyncAI().weights(DEFAULT_MODEL), batch_invariant=True)
    yield loaded
    loaded.close()


@pytest.fixture()
def grammar(model: LlamaModel) -> Iterator[Any]:
    import llama_cpp as lc

    made: list[Any] = []

    def build(*tools: dict[str, Any]) -> Any:
        text = get_format("hermes").grammar([ToolSpec(**t) for t in tools]).text
        sampler = lc.llama_sampler_init_grammar(model._model.vocab, text.encode(), b"root")
        made.append(sampler)
        return sampler

    yield build
    for sampler in made:
        lc.llama_sampler_free(sampler)


def _accept(model: LlamaModel, sampler: Any, text: str) -> None:
    import llama_cpp as lc

    for token in model.tokenize(text.encode(), add_bos=False, special=False):
        lc.llama_sampler_accept(sampler, token)


def _enum_tool(*members: str) -> dict[str, Any]:
    return {
        "name": "pick",
        "parameters": {
            "type": "object",
            "properties": {"choice": {"type": "string", "enum": list(members)}},
            "required": ["choice"],
        },
    }


@pytest.mark.model
def test_the_seed_call_is_forced_up_to_its_first_free_byte(model: LlamaModel, grammar: Any) -> None:
    probe = GrammarProbe(model)
    sampler = grammar(SEED_TOOL)
    assert probe.forced_bytes(sampler) == b'<tool_call>\n{"name": "getGithubUser", "arguments": {'
    _accept(model, sampler, '<tool_call>\n{"name": "getGithubUser", "arguments": {"username": "cloudflare"}}')
    # After the last brace: a newline and the closing tag, then either the end or another call.
    assert probe.forced_bytes(sampler) == b"\n</tool_call>"
    # The probe works on a copy: the sampler itself has not moved.
    assert probe.forced_bytes(sampler) == b"\n</tool_call>"


@pytest.mark.model
def test_forced_tokens_are_the_models_plain_spelling(model: LlamaModel, grammar: Any) -> None:
    """llama.cpp's grammar spells a closing tag in plain pieces, never as the special token: the forced
    draft does too, or the model would reject every closing-tag draft."""
    probe = GrammarProbe(model)
    sampler = grammar(SEED_TOOL)
    _accept(model, sampler, '<tool_call>\n{"name": "getGithubUser", "arguments": {"username": "x"}}')
    tokens = probe.forced_tokens(sampler)
    assert model.detokenize(tokens).decode() == "\n</tool_call>"
    assert probe.admitted_prefix(sampler, tokens) == len(tokens)


@pytest.mark.model
def test_an_enum_is_forced_only_as_far_as_its_members_agree(model: LlamaModel, grammar: Any) -> None:
    probe = GrammarProbe(model)
    sampler = grammar(_enum_tool("north-east", "north-west"))
    _accept(model, sampler, '<tool_call>\n{"name": "pick", "arguments": {"choice":')
    _accept(model, sampler, ' "')
    assert probe.forced_bytes(sampler) == b"north-"
    one = grammar(_enum_tool("Zürich café"))
    _accept(model, one, '<tool_call>\n{"name": "pick", "arguments": {"choice": "')
    forced = probe.forced_bytes(one)
    assert forced.startswith("Zürich café".encode())  # whole multi-byte characters, then the closing quote
    assert model.detokenize(probe.forced_tokens(one)).decode().startswith("Zürich café")


@pytest.mark.model
def test_a_forced_span_that_ends_inside_a_token_is_held_back_for_the_model(model: LlamaModel, grammar: Any) -> None:
    """The forced text ends at ' {' but the model writes ' {"' as one token: the draft's last forced
    token is held back and the call skeleton's ' {"' offered in its place (verification decides)."""
    probe = GrammarProbe(model)
    sampler = grammar(SEED_TOOL)
    skeleton = model.tokenize(call_skeletons([ToolSpec(**SEED_TOOL)]).encode(), add_bos=False, special=False)
    speculation = Speculation(probe, [], SpeculationStats(), skeleton)
    draft = speculation.draft(sampler, room=40)
    text = model.detokenize(draft).decode()
    assert text.startswith('<tool_call>\n{"name": "getGithubUser", "arguments": {"username')
    forced_only = model.detokenize(probe.forced_tokens(sampler)).decode()
    assert forced_only.endswith(" {") and ' {"' in text  # the merge the forced text alone would miss


def test_lookup_drafts_what_followed_the_latest_occurrence() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 7, 8])
    lookup.extend([2, 3])
    assert lookup.draft(3) == [7, 8, 2]  # the latest "2 3" was followed by 7 8, then what was written
    lookup.extend([4])
    assert lookup.draft(2) == [5, 9]  # the longest n-gram first: "2 3 4", though "3 4" is there too
    assert lookup.draft(2, after=[5, 9, 2]) == [3, 7]  # as if 5 9 2 were written already


def test_lookup_prefers_the_output_then_the_preferred_text_then_the_prompt() -> None:
    assert PromptLookup([1, 2], preferred=[5, 6]).draft(2) == []  # nothing crosses from one text to the other
    assert PromptLookup([2, 7, 1, 2], preferred=[2, 8]).draft(1) == [8]
    lookup = PromptLookup([2, 7, 1], preferred=[2, 8])
    lookup.extend([2, 9, 2])
    assert lookup.draft(1) == [9]


def test_call_skeletons_hold_each_key_with_a_placeholder() -> None:
    text = call_skeletons([ToolSpec(**SEED_TOOL)])
    assert text == '{"name": "getGithubUser", "arguments": {"username": ""}}'


def test_metrics_read_the_speculation_counters() -> None:
    from toolrun.engines.llamacpp._speculative import SpeculationStats
    from toolrun.server._metrics import Metrics

    class Engine:
        def stats(self) -> dict[str, int]:
            return SpeculationStats(forced=30, forced_accepted=28, drafted=9, accepted=4, verifications=7).as_dict()

    metrics = Metrics()
    metrics.watch_engines(lambda: {"@local/m": Engine()})
    text = metrics.render().decode()
    assert 'toolrun_speculative_forced_accepted_tokens_total{model="@local/m"} 28.0' in text
    assert 'toolrun_speculative_accepted_tokens_total{model="@local/m"} 4.0' in text
