"""Llama 3.1+ JSON tool calls: ``{"name": ..., "parameters": {...}}``, optionally after ``<|python_tag|>``.

Meta's JSON-based tool calling; several calls in one turn are separated by
``;`` (as vLLM's llama3_json parser reads them).
"""

from __future__ import annotations

from .._types import ToolSpec
from ._base import CallGrammar, ParseResult, ToolCallFormat
from ._grammar import GrammarBuilder
from ._json import coerce_calls, scan_json

# Meta's llama 3.1 prompt for JSON tool calling, trimmed to what toolrun renders.
FALLBACK_TEMPLATE = """\
{{- bos_token }}
{%- set rest = messages %}
{%- set system = '' %}
{%- if messages[0].role == 'system' %}{% set system = messages[0].content %}{% set rest = messages[1:] %}{% endif %}
<|start_header_id|>system<|end_header_id|>

{% if tools %}Environment: ipython
{% endif %}{{ system }}<|eot_id|>
{%- for message in rest %}
{%- if loop.first and tools and message.role == 'user' %}<|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{% for tool in tools %}{{ tool | tojson(indent=4) }}

{% endfor %}{{ message.content }}<|eot_id|>
{%- elif message.role == 'assistant' and message.tool_calls %}<|start_header_id|>assistant<|end_header_id|>

{% for call in message.tool_calls %}{% if not loop.first %}; {% endif %}{"name": "{{ call.function.name }}", "parameters": {{ call.function.arguments | tojson }}}{% endfor %}<|eot_id|>
{%- elif message.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- else %}<|start_header_id|>{{ message.role }}<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"""


class Llama3JsonFormat(ToolCallFormat):
    name = "llama3_json"
    inline_openers = ("<|python_tag|>",)
    start_openers = ('{"name"', '{"type"', "{\n", "```json")
    call_closers = ("}",)
    fallback_template = FALLBACK_TEMPLATE
    call_separator = "; "

    def parse(self, text: str) -> ParseResult:
        body = text.replace("<|python_tag|>", "")
        stripped = body.strip()
        if stripped.startswith("```"):
            stripped = stripped.strip("`").removeprefix("json").removeprefix("JSON").strip()
        if not stripped.startswith(("{", "[")):
            return ParseResult(text.strip())
        calls = []
        end_at = 0
        for begin, end, value in scan_json(stripped):
            # Only JSON separated by ';' / whitespace counts: anything else means prose.
            if stripped[end_at:begin].strip(" \n;"):
                break
            found = coerce_calls(value)
            if not found:
                break
            calls.extend(found)
            end_at = end
        if not calls:
            return ParseResult(text.strip())
        return ParseResult(stripped[end_at:].strip(" \n;`"), calls)

    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> CallGrammar:
        g = GrammarBuilder()
        call = g.alternatives(tools, lambda name, args: f'"{{\\"name\\": " {name} ", \\"parameters\\": " {args} "}}"')
        return CallGrammar(g.render(f'{call} ( "; " {call} )*' if parallel else call), g.exact)
