"""Mistral (v0.3 tokenizer and later): ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``."""

from __future__ import annotations

from .._types import ToolSpec
from ._base import CallGrammar, ParseResult, ToolCallFormat
from ._grammar import GrammarBuilder
from ._json import coerce_calls, scan_json

# Mistral's instruct format with tools, as its v3 tokenizer lays it out.
FALLBACK_TEMPLATE = """\
{{- bos_token }}
{%- set system = messages[0].content if messages[0].role == 'system' else '' %}
{%- set rest = messages[1:] if messages[0].role == 'system' else messages %}
{%- set last_user = namespace(i=-1) %}
{%- for m in rest %}{% if m.role == 'user' %}{% set last_user.i = loop.index0 %}{% endif %}{% endfor %}
{%- for message in rest %}
{%- if message.role == 'user' %}
{%- if tools and loop.index0 == last_user.i %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}
[INST]{% if system and loop.index0 == last_user.i %}{{ system }}

{% endif %}{{ message.content }}[/INST]
{%- elif message.role == 'assistant' and message.tool_calls %}[TOOL_CALLS][
{%- for call in message.tool_calls %}{% if not loop.first %}, {% endif %}{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}{% endfor %}]{{ eos_token }}
{%- elif message.role == 'tool' %}[TOOL_RESULTS]{"content": {{ message.content | tojson }}}[/TOOL_RESULTS]
{%- else %}{{ message.content }}{{ eos_token }}
{%- endif %}
{%- endfor %}"""


class MistralFormat(ToolCallFormat):
    name = "mistral"
    inline_openers = ("[TOOL_CALLS]",)
    start_openers = ('[{"name"', '{"name"', "```json")
    call_closers = ("]",)
    fallback_template = FALLBACK_TEMPLATE
    call_separator = ", "
    # [INST], [TOOL_CALLS], [AVAILABLE_TOOLS], … and the sentence markers.
    control_pattern = r"\[/?[A-Z_]{2,32}\]|</?s>"

    def parse(self, text: str) -> ParseResult:
        pos = text.find("[TOOL_CALLS]")
        if pos != -1:
            before, body = text[:pos], text[pos + len("[TOOL_CALLS]") :]
        else:
            stripped = text.lstrip()
            if stripped.startswith("```"):
                stripped = stripped.strip("`").removeprefix("json").removeprefix("JSON")
            if not stripped.lstrip().startswith(("[", "{")):
                return ParseResult(text.strip())
            before, body = "", stripped
        for _, end, value in scan_json(body):
            calls = coerce_calls(value)
            if calls:
                return ParseResult((before + body[end:]).strip(" \n`"), calls)
            break
        return ParseResult(text.strip())

    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> CallGrammar:
        g = GrammarBuilder()
        call = g.alternatives(tools, lambda name, args: f'"{{\\"name\\": " {name} ", \\"arguments\\": " {args} "}}"')
        inner = f'{call} ( ", " {call} )*' if parallel else call
        return CallGrammar(g.render(f'"[TOOL_CALLS][" {inner} "]"'), g.exact)
