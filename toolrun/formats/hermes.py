"""Hermes / Qwen 2.5: calls as JSON inside ``<tool_call>`` … ``</tool_call>`` tags (ChatML).

Used by NousResearch's Hermes 2 Pro / Hermes 3 and by Qwen 2.5 (the embedded
default model). The 0.5B Qwen often drifts to a fenced ```json block or a bare
JSON object; the parser accepts those, and the grammar steers it back.
"""

from __future__ import annotations

import re

from .._types import ToolSpec
from ._base import CallGrammar, ParseResult, ToolCallFormat
from ._json import coerce_calls, scan_json
from ._grammar import GrammarBuilder

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)

# ChatML with the tool instructions NousResearch and Qwen train on, for GGUFs without such a template.
FALLBACK_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{% if message.content %}{{ message.content }}
{% endif %}
{%- for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user
{% endif %}<tool_response>
{{ message.content }}
</tool_response>
{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>
{% endif %}
{%- else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


class HermesFormat(ToolCallFormat):
    name = "hermes"
    inline_openers = ("<tool_call>",)
    start_openers = ("```json", "```JSON", "```\n{", '{"name"', '{\n', '[{"name"')
    call_closers = ("</tool_call>",)
    fallback_template = FALLBACK_TEMPLATE

    def parse(self, text: str) -> ParseResult:
        calls = []
        if "<tool_call>" in text:
            content = _BLOCK.sub("", text)
            for block in _BLOCK.finditer(text):
                for _, _, value in scan_json(block.group(1)):
                    calls.extend(coerce_calls(value))
                    break
            if calls:
                return ParseResult(content.replace("</tool_call>", "").strip(), calls)
            return ParseResult(text.strip())
        # Drift: a fenced JSON block or a bare JSON call at the start of the answer.
        fence = _FENCE.match(text)
        body = fence.group(1) if fence else text
        stripped = body.lstrip()
        if stripped.startswith(("{", "[")):
            rest_at = None
            for _, end, value in scan_json(body, len(body) - len(stripped)):
                calls = coerce_calls(value)
                rest_at = end
                break
            if calls:
                rest = text[fence.end():] if fence else body[rest_at:]
                return ParseResult(rest.strip(), calls)
        return ParseResult(text.strip())

    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> CallGrammar:
        g = GrammarBuilder()
        call = g.alternatives(
            tools,
            lambda name, args: f'"{{\\"name\\": " {name} ", \\"arguments\\": " {args} "}}"',
        )
        block = g.add_rule("call-block", f'"<tool_call>\\n" {call} "\\n</tool_call>"')
        root = f'{block} ( "\\n" {block} )*' if parallel else block
        return CallGrammar(g.render(root), g.exact)

