"""JSON Schema ``pattern`` as GBNF, within a fixed budget.

A ``pattern`` comes from whoever sends the tool, so its translation must never
crash llama.cpp (whose grammar parser recurses once per nested group), never
take minutes or gigabytes (``a{100000000}``), and never produce text that
llama.cpp rejects later, out of reach of any Python ``except``. So:

* the regex is parsed by Python's own parser (``re._parser``, the one ``re``
  compiles with: the validator's ``regex`` module reads the same syntax) and
  translated node by node; repetitions become GBNF's ``x{m,n}`` over a single
  symbol, which llama.cpp expands into flat rules, never into nested groups;
* the grammar matches the JSON text of the string: ``"``, ``\\`` and control
  characters appear in their JSON-escaped form, so the output is valid JSON;
* JSON Schema's ``pattern`` is a search: without ``^`` the string may start
  with anything, without ``$`` it may end with anything;
* what cannot be expressed, or not within :data:`MAX_PATTERN_UNITS` and
  :data:`MAX_PATTERN_DEPTH`, raises :class:`PatternNotExpressible`; the caller
  falls back to "any JSON string" for that property and has the call validated.

The grammar may accept fewer strings than the regex (``\\d`` is ``[0-9]`` here,
Unicode digits for Python), never more unless :attr:`PatternGrammar.exact` says so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._schema import pattern_nesting

#: The most a pattern may cost once its repetitions are unrolled: every character, class or ``.``
#: counts 1, a repetition multiplies its part by its largest count (``(ab|c){0,100}`` is 300). This
#: bounds the grammar's rules and how many parse states llama.cpp may have to track at once while
#: sampling (nested counts multiply those). Real patterns from 130 OpenAPI documents stay under 200.
MAX_PATTERN_UNITS = 4096
#: How deeply groups and repetitions may nest: llama.cpp's parser and sampler recurse per level.
MAX_PATTERN_DEPTH = 32
#: The largest count a ``{m,n}`` may have: llama.cpp refuses more (its MAX_REPETITION_THRESHOLD).
MAX_PATTERN_REPEAT = 2000
#: Patterns longer than this are not parsed at all (the parser's work is linear in the text).
MAX_PATTERN_LENGTH = 4 * MAX_PATTERN_UNITS

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
# Characters that a JSON string must escape: they are never written raw inside a grammar class.
_JSON_SPECIAL = ((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))
_SHORT_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
# For each of \d \w \s: code points surely in it (ASCII: a subset of Python's Unicode classes), and
# where known, a set surely holding all of it. \s is every character str.isspace() or the regex module
# call white space (plus U+180E, U+200B and U+FEFF, which older Unicode versions did).
_CATEGORY_SUBSETS: dict[str, tuple[tuple[int, int], ...]] = {
    "DIGIT": ((0x30, 0x39),),
    "WORD": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "SPACE": ((0x09, 0x0D), (0x20, 0x20)),
}
_CATEGORY_SUPERSETS: dict[str, tuple[tuple[int, int], ...]] = {
    "SPACE": (
        (0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x180E, 0x180E),
        (0x2000, 0x200B), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
        (0xFEFF, 0xFEFF),
    ),
}  # fmt: skip
_ANCHORS_AT_START = ("AT_BEGINNING", "AT_BEGINNING_STRING")
_ANCHORS_AT_END = ("AT_END", "AT_END_STRING")
#: One character of a JSON string, for the parts an unanchored pattern leaves open (control characters
#: escaped, as JSON wants them).
ANY_JSON_CHAR = '[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u00" [01] [0-9a-fA-F])'

Ranges = list[tuple[int, int]]


class PatternNotExpressible(ValueError):
    """The pattern uses a feature GBNF cannot express, or exceeds the budget."""


@dataclass(frozen=True)
class PatternGrammar:
    """A GBNF rule body matching the JSON string (quotes included) for a pattern."""

    body: str
    #: False where the grammar may accept strings the pattern rejects (``\\D`` is "not [0-9]" here).
    exact: bool


@dataclass(frozen=True)
class _Piece:
    text: str  # a GBNF expression
    units: int
    nullable: bool  # matches the empty string
    atomic: bool  # a single GBNF symbol, safe to put a repetition after
    json_literal: str | None = None  # the JSON text, for a plain literal (merged with its neighbours)


_EMPTY = _Piece('""', 0, True, True, "")


def translate_pattern(pattern: str, add_rule: Callable[[str, str], str], name: str) -> PatternGrammar:
    """GBNF for a JSON string that ``pattern`` matches (a search, like JSON Schema's).

    ``add_rule(name, body)`` adds a helper rule and returns the name it got.
    Raises :class:`PatternNotExpressible`; never anything else for any string.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternNotExpressible(f"longer than {MAX_PATTERN_LENGTH} characters")
    if pattern_nesting(pattern) > MAX_PATTERN_DEPTH:
        raise PatternNotExpressible(f"groups nested deeper than {MAX_PATTERN_DEPTH}")
    try:
        parsed: Any = re._parser.parse(pattern)  # type: ignore[attr-defined]  # re's own parser, unstubbed
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternNotExpressible(f"not a regular expression Python reads: {exc}") from None
    if parsed.state.flags & ~re.UNICODE:
        raise PatternNotExpressible("inline flags such as (?i)")
    return _Translator(add_rule, name).whole(list(parsed))


class _Translator:
    def __init__(self, add_rule: Callable[[str, str], str], name: str) -> None:
        self._add_rule = add_rule
        self._name = name
        self.exact = True

    def whole(self, items: list[Any]) -> PatternGrammar:
        alternatives: list[str] = []
        units = 0
        for alternative in _top_alternatives(items):
            starts, body, ends = _strip_anchors(alternative)
            piece = self._sequence(body, 0)
            units += piece.units
            _check_units(units)
            parts = [piece.text] if piece.text != '""' else []
            any_char = "" if starts and ends else self._add_rule("pattern-any-char", ANY_JSON_CHAR)
            if not starts:
                parts.insert(0, f"{any_char}*")
            if not ends and (starts or parts != [f"{any_char}*"]):
                parts.append(f"{any_char}*")
            alternatives.append(" ".join(parts) or '""')
        inner = alternatives[0] if len(alternatives) == 1 else "( " + " | ".join(alternatives) + " )"
        return PatternGrammar(f'"\\"" {inner} "\\"" space', self.exact)

    def _sequence(self, items: Sequence[Any], depth: int) -> _Piece:
        if depth > MAX_PATTERN_DEPTH:
            raise PatternNotExpressible(f"nested deeper than {MAX_PATTERN_DEPTH}")
        pieces: list[_Piece] = []
        for op, argument in items:
            piece = self._node(op.name, argument, depth)
            last = pieces[-1] if pieces else None
            if last is not None and last.json_literal is not None and piece.json_literal is not None:
                pieces[-1] = _literal(last.json_literal + piece.json_literal, last.units + piece.units)
            else:
                pieces.append(piece)
        units = sum(p.units for p in pieces)
        _check_units(units)
        pieces = [p for p in pieces if p.text != '""']
        if not pieces:
            return _Piece('""', units, True, True, "")
        if len(pieces) == 1:
            return pieces[0]
        return _Piece(" ".join(p.text for p in pieces), units, all(p.nullable for p in pieces), False)

    def _node(self, op: str, argument: Any, depth: int) -> _Piece:
        if op == "LITERAL":
            return self._char_set([(argument, argument)], over=False)
        if op == "NOT_LITERAL":
            return self._char_set(_complement([(argument, argument)]), over=False)
        if op == "ANY":  # '.' without DOTALL: anything but a newline
            return self._char_set(_complement([(0x0A, 0x0A)]), over=False)
        if op == "IN":
            ranges, over = _class_ranges(argument)
            return self._char_set(ranges, over=over)
        if op == "BRANCH":
            branches = [self._sequence(b, depth + 1) for b in argument[1]]
            units = sum(b.units for b in branches)
            _check_units(units)
            if len(branches) == 1:
                return branches[0]
            # Parenthesised here, so that no other piece ever holds a top-level "|".
            text = "( " + " | ".join(b.text for b in branches) + " )"
            return _Piece(text, units, any(b.nullable for b in branches), False)
        if op == "SUBPATTERN":
            _group, add_flags, del_flags, inner = argument
            if add_flags or del_flags:
                raise PatternNotExpressible("scoped flags such as (?i:…)")
            return self._sequence(inner, depth + 1)
        if op in ("MAX_REPEAT", "MIN_REPEAT"):  # greedy or lazy: the same strings match either way
            low, high, inner = argument
            return self._repeat(low, high, self._sequence(inner, depth + 1))
        raise PatternNotExpressible(_UNSUPPORTED.get(op, f"the regex feature {op}"))

    def _repeat(self, low: int, high: int, item: _Piece) -> _Piece:
        unbounded = high == re._constants.MAXREPEAT  # type: ignore[attr-defined]
        if low > MAX_PATTERN_REPEAT or (not unbounded and high > MAX_PATTERN_REPEAT):
            raise PatternNotExpressible(f"a count above {MAX_PATTERN_REPEAT}")
        if high == 0 or item.text == '""':
            return _EMPTY
        if unbounded and item.nullable:
            # "(a*)*" would be a left-recursive rule, which llama.cpp refuses.
            raise PatternNotExpressible("an unbounded repetition of a part that may be empty")
        units = item.units * max(1, low + 1 if unbounded else high)
        _check_units(units)
        symbol = item.text if item.atomic else self._add_rule(f"{self._name}-part", item.text)
        if unbounded:
            suffix = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        elif low == high:
            suffix = "" if low == 1 else f"{{{low}}}"
        else:
            suffix = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
        return _Piece(symbol + suffix, units, low == 0 or item.nullable, False)

    def _char_set(self, ranges: Ranges, *, over: bool) -> _Piece:
        """One character of ``ranges`` (surrogates left out), as JSON text. ``over``: the ranges hold more
        than Python's class does (an ASCII-only ``\\D``), so the grammar is not exact."""
        ranges = _subtract(ranges, [_SURROGATES])
        if not ranges:
            raise PatternNotExpressible("a character class that no JSON text can match")
        if over:
            self.exact = False
        if ranges[0][0] == ranges[0][1] and len(ranges) == 1:
            return _literal(_json_char(ranges[0][0]), 1)
        plain = _subtract(ranges, list(_JSON_SPECIAL))
        special = _intersect(ranges, list(_JSON_SPECIAL))
        options: list[str] = []
        if plain:
            options.append(_gbnf_class(plain))
        for low, high in special:
            options.extend(_gbnf_literal(_json_char(c)) for c in range(low, high + 1))
        if len(options) == 1:
            return _Piece(options[0], 1, False, True)
        body = " | ".join(options)
        # Named by content, so every property with the same class shares one rule.
        digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return _Piece(self._add_rule(f"pattern-char-{digest}", body), 1, False, True)


_UNSUPPORTED = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a lookaround",
    "ASSERT_NOT": "a lookaround",
    "AT": "an anchor or word boundary inside the pattern",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive repetition",
}


def _check_units(units: int) -> None:
    if units > MAX_PATTERN_UNITS:
        raise PatternNotExpressible(f"larger than {MAX_PATTERN_UNITS} units once its repetitions are unrolled")


def _literal(json_text: str, units: int) -> _Piece:
    return _Piece(_gbnf_literal(json_text), units, json_text == "", True, json_text)


def _top_alternatives(items: list[Any]) -> list[list[Any]]:
    """The pattern's top-level alternatives; Python moves a shared leading ``^`` out of them (``^a$|^b$``)."""
    leading = 0
    while leading < len(items) and items[leading][0].name == "AT" and items[leading][1].name in _ANCHORS_AT_START:
        leading += 1
    rest = items[leading:]
    if len(rest) == 1 and rest[0][0].name == "BRANCH":
        return [items[:leading] + list(branch) for branch in rest[0][1][1]]
    return [items]


def _strip_anchors(items: list[Any]) -> tuple[bool, list[Any], bool]:
    """(anchored at the start, the items between the anchors, anchored at the end)."""
    start, end = 0, len(items)
    while start < end and items[start][0].name == "AT" and items[start][1].name in _ANCHORS_AT_START:
        start += 1
    while end > start and items[end - 1][0].name == "AT" and items[end - 1][1].name in _ANCHORS_AT_END:
        end -= 1
    return start > 0, items[start:end], end < len(items)


def _class_ranges(items: list[Any]) -> tuple[Ranges, bool]:
    """The code points of a ``[...]`` class, and whether they may be more than Python's (see _char_set)."""
    negated = bool(items) and items[0][0].name == "NEGATE"
    ranges: Ranges = []
    over = False
    for op, argument in items[1:] if negated else items:
        kind = op.name
        if kind == "LITERAL":
            ranges.append((argument, argument))
        elif kind == "RANGE":
            ranges.append((argument[0], argument[1]))
        elif kind == "CATEGORY":
            # In a negated class, an item must cover at least all of its characters to leave out enough.
            found, exact = _category_ranges(argument.name.removeprefix("CATEGORY_"), superset=negated)
            ranges.extend(found)
            over = over or not exact
        else:
            raise PatternNotExpressible(f"the class item {kind}")
    return (_complement(ranges) if negated else _normalise(ranges)), over


def _category_ranges(category: str, *, superset: bool) -> tuple[Ranges, bool]:
    """Ranges for \\d \\D \\w \\W \\s \\S: a subset of the class (a superset if ``superset``), and whether
    that held; where it could not, the nearest ASCII answer and False."""
    positive = category.removeprefix("NOT_")
    if positive not in _CATEGORY_SUBSETS:
        raise PatternNotExpressible(f"the class {category}")
    subset, known_superset = list(_CATEGORY_SUBSETS[positive]), _CATEGORY_SUPERSETS.get(positive)
    if category == positive:
        if not superset:
            return subset, True
        return (list(known_superset), True) if known_superset else (subset, False)
    if superset:
        return _complement(subset), True
    return (_complement(list(known_superset)), True) if known_superset else (_complement(subset), False)


def _normalise(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: Ranges) -> Ranges:
    result: Ranges = []
    next_free = 0
    for low, high in _normalise(ranges):
        if low > next_free:
            result.append((next_free, low - 1))
        next_free = max(next_free, high + 1)
    if next_free <= _MAX_CODE_POINT:
        result.append((next_free, _MAX_CODE_POINT))
    return result


def _intersect(ranges: Ranges, other: Ranges) -> Ranges:
    return _complement(_complement(ranges) + _complement(other))


def _subtract(ranges: Ranges, removed: Ranges) -> Ranges:
    return _intersect(ranges, _complement(removed))


def _json_char(code: int) -> str:
    """How a JSON string writes one character."""
    if code in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[code]
    if code < 0x20:
        return f"\\u{code:04x}"
    return chr(code)


def _gbnf_literal(text: str) -> str:
    """A GBNF string literal; ``text`` holds no control characters (they are JSON-escaped already)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _gbnf_char(code: int) -> str:
    if code < 0x80 and chr(code).isalnum():
        return chr(code)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _gbnf_class(ranges: Ranges) -> str:
    """A GBNF character class for ``ranges``, written as itself or as its complement, whichever is shorter."""

    def listing(rs: Ranges) -> str:
        return "".join(_gbnf_char(lo) if lo == hi else f"{_gbnf_char(lo)}-{_gbnf_char(hi)}" for lo, hi in rs)

    direct = "[" + listing(ranges) + "]"
    others = _complement(ranges)
    negated = "[^" + listing(others) + "]"
    return negated if others and len(negated) < len(direct) else direct
