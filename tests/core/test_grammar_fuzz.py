"""Fuzzing: JSON Schemas with patterns, counts and nesting, converted and loaded by the real llama.cpp.

Hypothesis builds the schemas (patterns from a small regex grammar with counts up to far past
the bounds, deep groups, and the features GBNF cannot express); GrammarBuilder converts each;
then a child process loads each grammar in llama.cpp (see grammar_testing), so a crash
fails the test (and hypothesis shrinks it) instead of killing pytest. Asserted: no crash, no rejection, no grammar over
the bound, and every pattern that uses an unexpressible feature leaves the builder inexact.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from grammar_testing import GrammarChild
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolrun._types import ToolSpec
from toolrun.formats._grammar import MAX_GRAMMAR_CHARS, GrammarBuilder

# Each regex piece says whether GBNF can express it; a pattern with one that cannot must fall back.
EXPRESSIBLE_ATOMS = [
    "a",
    "b",
    "\\d",
    "\\w",
    "\\s",
    "\\S",
    "\\D",
    ".",
    "[a-z]",
    '[^a"\\\\]',
    '"',
    "\\\\",
    "\\n",
    "é",
    "-",
]
UNEXPRESSIBLE_ATOMS = ["\\b", "(?=a)", "(?!b)", "(?<=a)", "\\1", "(?i:a)", "a++", "(?>a)"]
COUNTS = st.one_of(
    st.sampled_from(["?", "*", "+", "*?", "{2}", "{0,3}", "{1,}", "{0,2000}"]),
    st.integers(0, 300_000).map(lambda n: f"{{{n}}}"),
    st.tuples(st.integers(0, 50), st.integers(0, 30_000)).map(lambda mn: f"{{{mn[0]},{mn[0] + mn[1]}}}"),
)


@st.composite
def patterns(draw: st.DrawFn) -> tuple[str, bool]:
    """A regex and whether it surely holds a feature that cannot be expressed."""
    unexpressible = False

    def piece(depth: int) -> str:
        nonlocal unexpressible
        kind = draw(st.integers(0, 9 if depth < 40 else 5))
        if kind <= 4:
            return draw(st.sampled_from(EXPRESSIBLE_ATOMS))
        if kind == 5:
            if draw(st.integers(0, 6)) == 0:
                unexpressible = True
                return draw(st.sampled_from(UNEXPRESSIBLE_ATOMS))
            return draw(st.sampled_from(EXPRESSIBLE_ATOMS))
        if kind == 6:
            return piece(depth + 1) + draw(COUNTS)
        if kind == 7:
            alternatives = [sequence(depth + 1) for _ in range(draw(st.integers(1, 3)))]
            return "(" + "|".join(alternatives) + ")"
        if kind == 8:  # a deep chain of groups: past the depth bound now and then
            levels = draw(st.integers(1, 60))
            return "(?:" * levels + piece(depth + levels) + ")" * levels
        return "(" + sequence(depth + 1) + ")" + draw(COUNTS)

    def sequence(depth: int) -> str:
        return "".join(piece(depth) for _ in range(draw(st.integers(1, 3))))

    body = sequence(0)
    prefix, suffix = draw(st.sampled_from(["^", ""])), draw(st.sampled_from(["$", ""]))
    return prefix + body + suffix, unexpressible


@st.composite
def schemas(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """An object schema with pattern properties at some depth, and whether one surely cannot be expressed."""
    unexpressible = False

    def value(depth: int) -> dict[str, Any]:
        nonlocal unexpressible
        if depth < 3 and draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True))
            return {"type": "object", "properties": {n: value(depth + 1) for n in names}, "required": names[:1]}
        if depth < 3 and draw(st.integers(0, 4)) == 0:
            return {"type": "array", "items": value(depth + 1), "maxItems": draw(st.integers(0, 5))}
        pattern, bad = draw(patterns())
        unexpressible = unexpressible or bad
        return {"type": "string", "pattern": pattern}

    properties = {f"p{i}": value(1) for i in range(draw(st.integers(1, 3)))}
    return {"type": "object", "properties": properties, "required": ["p0"]}, unexpressible


@pytest.fixture(scope="module")
def llama_cpp_child() -> Iterator[GrammarChild]:
    child = GrammarChild()
    yield child
    child.close()


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(case=schemas())
def test_fuzzed_pattern_schemas_give_grammars_llama_cpp_loads(
    llama_cpp_child: GrammarChild, case: tuple[dict[str, Any], bool]
) -> None:
    schema, unexpressible = case
    builder = GrammarBuilder()
    text = builder.render(builder.arguments_rule(ToolSpec("t", "", schema)))
    assert len(text) <= MAX_GRAMMAR_CHARS
    if unexpressible:
        assert builder.exact is False, schema
    assert llama_cpp_child.check(text).loaded, text[:2000]
