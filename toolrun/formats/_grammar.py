"""GBNF grammars for tool calls, from the tools' JSON Schemas.

The schema-to-GBNF conversion is llama.cpp's own (``llama_cpp.llama_grammar``),
imported lazily so the formats layer stays usable without llama.cpp loaded
(a remote engine never needs a grammar). Two deliberate departures:

* whitespace between JSON tokens may be a space or a newline plus a little
  indentation, so a model that pretty-prints its JSON keeps its own most
  likely tokens: the engine samples unconstrained first and only pays for the
  grammar when that token is rejected, so a grammar that agrees with the
  model's habits is also a fast grammar;
* a ``pattern`` is translated by :mod:`._pattern` (bounded, and exact where it
  can be) instead of the converter's own ``_visit_pattern``, which writes counts
  out as nested groups (``a{0,20000}`` crashed llama.cpp's parser) and passes
  ``\\d`` through as text llama.cpp refuses; one it cannot express makes that
  property "any JSON string", validated after the call;
* a schema feature the converter cannot handle, or a tool whose rules would take
  the grammar past :data:`MAX_GRAMMAR_CHARS`, degrades that tool's arguments to
  "any JSON object" instead of failing the request.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .._types import ToolSpec
from ._pattern import PatternNotExpressible, translate_pattern

log = logging.getLogger("toolrun.formats")

# Like llama.cpp's C++ converter: one space, or a newline and some indentation.
SPACE_RULE = '"" | " " | "\\n" [ \\t]{0,20}'  # "" rather than an empty alternative: xgrammar reads it too


def literal(text: str) -> str:
    """A GBNF string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


class GrammarBuilder:
    """Collects rules for one grammar: each tool's argument rule plus the format's own rules."""

    def __init__(self) -> None:
        self._converter: Any = _converter_class()()
        self._args_rules: dict[str, str] = {}
        #: Whether every tool's schema is enforced by the grammar in full (see CallGrammar).
        self.exact = True

    def arguments_rule(self, tool: ToolSpec) -> str:
        """The name of the rule matching a JSON object valid for ``tool``'s parameters."""
        if tool.name in self._args_rules:
            return self._args_rules[tool.name]
        base = f"args-{len(self._args_rules)}"
        # A private, plain copy. Its references were checked to be local when the tool was
        # normalised; the converter's own remote fetching is off too (allow_fetch=False).
        schema: Any = json.loads(json.dumps(tool.parameters))
        snapshot = dict(self._converter._rules)
        snapshot_chars = self._converter.text_chars
        self._converter.patterns_exact = True
        try:
            if _has_remote_ref(schema):  # never reached through the binding, which refuses them first
                raise ValueError("a $ref outside the schema")
            if not _fully_enforced(schema) or _loosen_large_counts(schema):
                self.exact = False
            schema = self._converter.resolve_refs(schema, f"tool:{tool.name}")
            rule: str = self._converter.visit(schema, base)
            if self._converter.text_chars > MAX_GRAMMAR_CHARS:
                raise ValueError(f"the grammar would pass {MAX_GRAMMAR_CHARS} characters")
            if not self._converter.patterns_exact:
                self.exact = False
        except Exception as exc:  # noqa: BLE001 - any converter failure means "too fancy", never a runtime error
            log.warning("tool %r: schema not expressible as a grammar (%s); using any JSON object", tool.name, exc)
            self._converter._rules = snapshot
            self._converter.text_chars = snapshot_chars
            self.exact = False
            rule = self._converter.visit({"type": "object"}, base + "-loose")
        self._args_rules[tool.name] = rule
        return rule

    def add_rule(self, name: str, body: str) -> str:
        added: str = self._converter._add_rule(name, body)
        return added

    def alternatives(self, tools: Iterable[ToolSpec], render_call: Callable[[str, str], str]) -> str:
        """A rule matching one call of any of ``tools``.

        ``render_call(name_json, args_rule)`` gives one tool's body; ``name_json`` is
        a GBNF literal of the tool's name as a JSON string (quotes included).
        """
        bodies = [render_call(literal(json.dumps(t.name)), self.arguments_rule(t)) for t in tools]
        return self.add_rule("call", " | ".join(f"( {b} )" for b in bodies))

    def render(self, root: str) -> str:
        self._converter._rules["root"] = root
        text: str = self._converter.format_grammar()
        return text


#: The most text (rule names and bodies) one grammar may hold. A tool whose rules would take it past
#: this gets "any JSON object" instead: ordinary tools take a few hundred bytes to a few kilobytes
#: each, and llama.cpp parses and keeps every byte, for every request that uses the grammar.
MAX_GRAMMAR_CHARS = 2 * 1024 * 1024


@functools.cache
def _converter_class() -> Any:
    """llama.cpp's converter with patterns translated by :mod:`._pattern` and its text counted
    (a class made on first use: llama.cpp is imported lazily)."""
    from llama_cpp.llama_grammar import PRIMITIVE_RULES, SchemaConverter

    class BoundedConverter(SchemaConverter):
        def __init__(self) -> None:
            base: Any = super()  # llama-cpp-python's converter is untyped
            base.__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
            self._rules["space"] = SPACE_RULE
            #: Characters of rule names and bodies added so far (see MAX_GRAMMAR_CHARS).
            self.text_chars = 0
            #: False once a pattern was not translated exactly, or not at all.
            self.patterns_exact = True

        def _add_rule(self, name: str, rule: str) -> str:
            count = len(self._rules)
            base: Any = super()
            key: str = base._add_rule(name, rule)
            if len(self._rules) > count:
                self.text_chars += len(key) + len(rule) + 5  # " ::= "
            return key

        def _visit_pattern(self, pattern: Any, name: str) -> str:
            added: list[str] = []

            def add_rule(rule_name: str, body: str) -> str:
                count = len(self._rules)
                key = self._add_rule(rule_name, body)
                if len(self._rules) > count:
                    added.append(key)
                return key

            try:
                if not isinstance(pattern, str):
                    raise PatternNotExpressible("not a string")
                translated = translate_pattern(pattern, add_rule, name)
            except PatternNotExpressible as exc:
                log.info("pattern %.80r not expressible as a grammar (%s); any string, validated after", pattern, exc)
                for key in added:  # helper rules of the abandoned translation
                    self.text_chars -= len(key) + len(self._rules.pop(key)) + 5
                self.patterns_exact = False
                return self._add_rule(name, self._add_primitive("string", PRIMITIVE_RULES["string"]))
            self.patterns_exact = self.patterns_exact and translated.exact
            return self._add_rule(name, translated.body)

    return BoundedConverter


# Keywords llama.cpp's converter turns into grammar rules that allow exactly what the schema allows
# (annotations included). Anything else — numeric bounds, uniqueItems, not, if/then, formats, oneOf's
# "exactly one" — the grammar ignores or approximates, so a call may still fail validation.
_ENFORCED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "$ref",
        "$defs",
        "definitions",
        "$schema",
        "$id",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
    }
)


def _fully_enforced(schema: Any) -> bool:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and _pattern_enforced(node):
                    continue  # translated exactly or not, GrammarBuilder learns from the converter
                if key not in _ENFORCED:
                    return False
                if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                    stack.extend(value.values())
                elif key in ("items", "additionalProperties", "anyOf"):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return True


# Keywords the converter acts on before it looks at "pattern", or that it ignores once it has.
_BEFORE_PATTERN = ("$ref", "oneOf", "anyOf", "allOf", "const", "enum", "properties", "additionalProperties")
_BESIDE_PATTERN = ("items", "prefixItems", "minLength", "maxLength")


def _pattern_enforced(node: dict[str, Any]) -> bool:
    """Whether the converter builds ``node``'s rule from its ``pattern`` and nothing else it would leave out."""
    return node.get("type", "string") == "string" and not any(k in node for k in _BEFORE_PATTERN + _BESIDE_PATTERN)


#: llama.cpp's converter writes ``maxLength: 65535`` out as 65,535 optional repetitions (half a megabyte
#: of grammar per field; ``minLength: 10**7`` would be 50 MB). Past this, a count is left to validation.
MAX_GRAMMAR_COUNT = 256
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")


def _loosen_large_counts(schema: Any) -> bool:
    """Drop counts above :data:`MAX_GRAMMAR_COUNT` from ``schema`` (a private copy), in place; True if any was."""
    loosened = False
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in _COUNTS:
                value = node.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_GRAMMAR_COUNT:
                    del node[key]
                    loosened = True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return loosened


def schema_grammar(schema: Any) -> str:
    """GBNF for one JSON value matching ``schema`` (``response_format``)."""
    builder = GrammarBuilder()
    rule = builder.arguments_rule(ToolSpec("response", "", schema))
    return builder.render(rule)


def _has_remote_ref(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
