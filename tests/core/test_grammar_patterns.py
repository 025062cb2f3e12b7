"""JSON Schema ``pattern`` in grammars: translated by toolrun, loaded by the real llama.cpp.

Every grammar here is loaded by llama.cpp in a child process (see grammar_testing): before
the translation, ``^a{0,20000}$`` killed the process that loaded it with SIGSEGV, and
``^\\d{5}$`` gave a grammar llama.cpp refused.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from grammar_testing import check_grammars

from toolrun._types import ToolSpec, normalize_tools
from toolrun.formats import get_format, schema_grammar
from toolrun.formats._grammar import MAX_GRAMMAR_CHARS, GrammarBuilder
from toolrun.formats._pattern import (
    MAX_PATTERN_DEPTH,
    MAX_PATTERN_UNITS,
    PatternNotExpressible,
    translate_pattern,
)

CORPUS = Path(__file__).parent / "data" / "openapi_patterns.json"

# Patterns from issue #27: crashers (SIGSEGV), bombs (22 s, 2 GB) and common ones llama.cpp refused.
ISSUE_PATTERNS = {
    "^a{0,20000}$": False,  # pattern -> whether the grammar enforces it exactly
    "^(ab|c){0,20000}$": False,
    "^a{100000000}$": False,
    "^a{1000000000}$": False,
    "^\\d{5}$": True,
    "^\\w+$": True,
    "^\\S+@\\S+\\.\\S+$": True,
    "(a)\\1": False,
    "^a{0,2000}$": True,
    "(" * 500 + "a" + ")" * 500: False,
}


def tool_with(pattern: str) -> dict[str, Any]:
    return {
        "name": "zip_lookup",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": pattern}, "n": {"type": "integer"}},
            "required": ["code"],
        },
    }


def string_grammar(pattern: str) -> GrammarBuilder:
    builder = GrammarBuilder()
    builder.arguments_rule(normalize_tools([tool_with(pattern)])[0])
    return builder


def test_issue_patterns_give_grammars_llama_cpp_loads() -> None:
    grammars = []
    for pattern, exact in ISSUE_PATTERNS.items():
        if pattern.startswith("((("):  # refused by the schema check (see test_schema_bounds); the builder copes too
            builder = GrammarBuilder()
            rule = builder.arguments_rule(ToolSpec("t", "", tool_with(pattern)["parameters"]))
            text, got_exact = builder.render(rule), builder.exact
        else:
            grammar = get_format("hermes").grammar(normalize_tools([tool_with(pattern)]))
            text, got_exact = grammar.text, grammar.exact
        assert got_exact is exact, pattern
        # Work bounds, in bytes: the 10**8 count once took 2 GB; a fallback is a few hundred bytes.
        assert len(text) < 20_000, (pattern, len(text))
        grammars.append((text, []))
    verdicts = check_grammars(grammars)
    assert [v.loaded for v in verdicts] == [True] * len(grammars)


def test_each_property_falls_back_on_its_own() -> None:
    """A pattern that cannot be expressed makes that property any string; its neighbours stay enforced."""
    tool = normalize_tools(
        [
            {
                "name": "t",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "zip": {"type": "string", "pattern": "^\\d{5}$"},
                        "echo": {"type": "string", "pattern": "(a)\\1"},
                        "unit": {"enum": ["c", "f"]},
                    },
                    "required": ["zip", "echo", "unit"],
                },
            }
        ]
    )[0]
    builder = GrammarBuilder()
    text = builder.render(builder.arguments_rule(tool))
    assert builder.exact is False
    assert "[0-9]{5}" in text and '"\\"c\\""' in text  # the zip code and the enum are still in the grammar
    assert re.search(r"^args-0-echo ::= string$", text, re.M)
    base = GrammarBuilder()
    only_zip = normalize_tools([tool_with("^\\d{5}$")])[0]
    base.render(base.arguments_rule(only_zip))
    assert base.exact is True


# Patterns whose translation is exact, with strings that match them (search semantics: no ^ or $
# means anything may come before or after). Mutations of these give near misses on both sides.
EXACT_CASES: dict[str, list[str]] = {
    "^\\d{5}$": ["12345"],
    "^\\w+$": ["abc_09"],
    "^\\S+@\\S+\\.\\S+$": ["me@example.com", 'a"b@c\\d.e'],
    "^[A-Z]{2}-\\d{3,}$": ["AB-123", "ZZ-00000"],
    "^(ab|c){0,3}$": ["", "abc", "cab", "ababab"],
    "^a{0,2000}$": ["", "a" * 2000],
    "abc": ["xxabcyy", "abc"],
    "^abc": ["abcdef"],
    "abc$": ["xyzabc"],
    "^$": [""],
    "": ["anything"],
    '^"\\\\$': ['"\\'],
    "^[^a]$": ["b", "\n", '"'],
    "^.$": ["x", "\t", "\\"],
    "^[\\s]+$": [" \t\n"],
    "^\\D\\W$": ["a!"],
    "^(?:x|y)+?z*$": ["xyxzz"],
    "^a$|^b$": ["a", "b"],
    "^[\\x00-\\x1f]+$": ["\x01\n\x1f"],
    "^[a-c-]{2}$": ["a-", "-c"],
    "^é+ñ$": ["ééñ"],
    "^(a|)b{2,4}$": ["bb", "abbbb"],
}
ALPHABET = list('abcxyz150AZ-_@. \n\t"\\éñ')


def mutations(seed: str, rng: random.Random, count: int) -> list[str]:
    found = []
    for _ in range(count):
        text = list(seed)
        for _ in range(rng.randint(1, 3)):
            where = rng.randint(0, len(text))
            choice = rng.random()
            if choice < 0.4 or not text:
                text.insert(where, rng.choice(ALPHABET))
            elif choice < 0.7:
                del text[min(where, len(text) - 1)]
            else:
                text[min(where, len(text) - 1)] = rng.choice(ALPHABET)
        found.append("".join(text))
    return found


def test_exact_translations_accept_exactly_what_python_re_matches() -> None:
    rng = random.Random(27)
    jobs = []
    expected = []
    for pattern, seeds in EXACT_CASES.items():
        texts = sorted({t for s in seeds for t in [s, *mutations(s, rng, 25)]} - {""} | set(seeds))
        # Python's "$" also matches before a final newline; the grammar does not (it is stricter, never looser).
        texts = [t for t in texts if not t.endswith("\n") or "$" not in pattern]
        if re.search(r"\\[dDwW]", pattern):  # ASCII classes: stricter than Python's Unicode ones
            texts = [t for t in texts if t.isascii()]
        jobs.append(
            (schema_grammar({"type": "string", "pattern": pattern}), [json.dumps(t, ensure_ascii=False) for t in texts])
        )
        expected.append([re.search(pattern, t) is not None for t in texts])
    verdicts = check_grammars(jobs)
    for (pattern, _), verdict, want, (_, texts) in zip(EXACT_CASES.items(), verdicts, expected, jobs, strict=True):
        assert verdict.loaded, pattern
        wrong = [t for t, got, w in zip(texts, verdict.accepts, want, strict=True) if got != w]
        assert not wrong, (pattern, wrong)
        assert (any(want) and not all(want)) or pattern == "", pattern  # both sides were tried


def test_json_escapes_in_the_string_are_the_pattern_s_characters() -> None:
    """The grammar matches JSON text: a quote in the pattern is \\" in the output, a newline \\n."""
    grammar = schema_grammar({"type": "string", "pattern": '^a"b\\nc$'})
    [verdict] = check_grammars([(grammar, ['"a\\"b\\nc"', '"a"b\nc"', '"a\\"b\\\\nc"'])])
    assert verdict.accepts == [True, False, False]


def test_budget_and_depth_are_where_the_documentation_says() -> None:
    def units_ok(pattern: str) -> bool:
        try:
            translate_pattern(pattern, lambda name, body: name, "p")
        except PatternNotExpressible:
            return False
        return True

    assert MAX_PATTERN_UNITS == 4096 and MAX_PATTERN_DEPTH == 32
    assert units_ok("^(a{0,64}){0,64}$")  # 4096 units
    assert not units_ok("^(a{0,64}){0,65}$")
    assert not units_ok("^((a{0,16}){0,16}){0,17}$")
    assert units_ok("(" * 32 + "a" + ")" * 32)
    assert not units_ok("(" * 33 + "a" + ")" * 33)
    for unexpressible in ["(?=a)b", "(?<!a)b", "\\bword\\b", "(?i)abc", "(?i:a)", "(a)\\1", "a++", "(?>a)", "^(a*)*$"]:
        assert not units_ok(unexpressible), unexpressible


def test_a_huge_grammar_makes_that_tool_any_object() -> None:
    """The whole grammar's text is bounded: past MAX_GRAMMAR_CHARS the tool takes any JSON object."""
    words = [f"{i:06d}" + "x" * 250 for i in range(MAX_GRAMMAR_CHARS // 250 + 10)]
    tools = normalize_tools(
        [
            {"name": "small", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}},
            {"name": "huge", "parameters": {"type": "object", "properties": {"w": {"enum": words}}}},
        ]
    )
    grammar = get_format("hermes").grammar(tools)
    assert len(grammar.text) < 100_000 and grammar.exact is False
    assert "args-0-a" in grammar.text and "args-1-loose" in grammar.text
    [verdict] = check_grammars([(grammar.text, [])])
    assert verdict.loaded


def test_pattern_free_grammars_are_unchanged() -> None:
    """Byte for byte what llama.cpp's own converter writes (with toolrun's whitespace rule)."""
    from llama_cpp.llama_grammar import SchemaConverter

    from toolrun.formats._grammar import SPACE_RULE

    schemas: list[Any] = [
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}},
        {"type": "object", "properties": {"u": {"enum": ["c", "f"]}, "s": {"type": "string", "minLength": 2}}},
        {
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/point"}, "n": {"anyOf": [{"type": "null"}, {"type": "number"}]}},
            "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}}},
        },
        {"type": "object", "properties": {"d": {"type": "string", "format": "date"}, "b": {"type": "boolean"}}},
    ]
    for schema in schemas:
        converter: Any = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        converter._rules["space"] = SPACE_RULE
        rule = converter.visit(converter.resolve_refs(json.loads(json.dumps(schema)), "tool:response"), "args-0")
        converter._rules["root"] = rule
        assert schema_grammar(schema) == converter.format_grammar()


def corpus_patterns() -> list[str]:
    data = json.loads(CORPUS.read_text(encoding="utf-8"))
    assert data["documents"] == 130
    return [entry["pattern"] for entry in data["patterns"]]


def test_every_pattern_of_the_openapi_corpus_gives_a_grammar_llama_cpp_loads() -> None:
    patterns = corpus_patterns()
    assert len(patterns) == len(set(patterns)) >= 40
    grammars = []
    exact = 0
    for pattern in patterns:
        grammar = get_format("hermes").grammar(normalize_tools([tool_with(pattern)]))
        exact += grammar.exact
        grammars.append((grammar.text, []))
    verdicts = check_grammars(grammars)
    rejected = [p for p, v in zip(patterns, verdicts, strict=True) if not v.loaded]
    assert rejected == []
    # Most are translated exactly (the rest: lookarounds, Unicode classes, huge counts...).
    assert exact >= len(patterns) * 0.8, (exact, len(patterns))


@pytest.mark.model
def test_the_model_fills_a_zip_code_pattern(ai: Any) -> None:
    """issue #27: with tool_choice required, ^\\d{5}$ was a 502 (llama.cpp refused the grammar)."""
    from toolrun import DEFAULT_MODEL

    inputs = {
        "messages": [{"role": "user", "content": "Look up the zip code 90210."}],
        "tools": [tool_with("^\\d{5}$")],
        "tool_choice": "required",
        "max_tokens": 64,
    }
    result = ai.run(DEFAULT_MODEL, inputs)
    [call] = result["tool_calls"]
    assert re.fullmatch(r"\d{5}", call["arguments"]["code"])
