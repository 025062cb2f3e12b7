"""Hermes / Qwen 2.5: calls as JSON inside ``<tool_call>`` … ``</tool_call>`` tags (ChatML).

Used by NousResearch's Hermes 2 Pro / Hermes 3 and by Qwen 2.5 (the embedded
default model). The 0.5B Qwen often drifts to a fenced ```json block or a bare
JSON object; the parser accepts those, and the grammar steers it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .._types import ToolSpec
from .._wire import FunctionCall, decode_arguments
from ._base import CallGrammar, ParseResult, ToolCallFormat
from ._grammar import GrammarBuilder
from ._json import coerce_calls, scan_json
from ._stream import StreamParser

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
# Drifts: <name>f</name> (or <function>f</function>) then <arguments>{…}</arguments> (or parameters/args).
_DRIFT_NAMED = re.compile(
    r"<(?P<tag>name|function)>\s*(?P<name>[^<>{}\n]{1,200}?)\s*</(?P=tag)>\s*"
    r"<(?P<argtag>arguments|parameters|args)>(?P<arguments>.*?)(?:</(?P=argtag)>|$)",
    re.DOTALL,
)
# <function=f>…</function> and <function>…</function> (the body: JSON, or <parameter=k>v</parameter> pairs).
_DRIFT_FUNCTION = re.compile(r"<function(?:=(?P<name>[^>\n]{1,200}))?>(?P<body>.*?)(?:</function>|$)", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]{1,200})>\n?(.*?)\n?</parameter>", re.DOTALL)
_NAMED_JSON = re.compile(r"\s*([A-Za-z_][\w.\-]{0,200})\s*(?=\{)")

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
    # Drifts open a call wherever they appear, like the real tag: ``<name>f</name><arguments>…``
    # (the 0.5B writes it), ``<function=f>{…}</function>`` and ``<function>{…}</function>``.
    inline_openers = ("<tool_call>", "<name>", "<function")
    start_openers = ("```json", "```JSON", "```\n{", '{"name"', "{\n", '[{"name"')
    call_closers = ("</tool_call>", "</arguments>", "</function>")
    fallback_template = FALLBACK_TEMPLATE
    tools_turn = ("</tools>", "<|im_end|>")
    # ChatML's <|…|> markers, and the tags Qwen2.5's vocabulary holds as tokens of their own.
    control_pattern = r"<\|[^|\s<>]{1,64}\|>|</?tool_call>|</?tool_response>"

    def __init__(self, tool_names: Sequence[str] = ()) -> None:
        #: The tools of the request, when known: a drift's name slot is checked against them.
        self.tool_names = tuple(tool_names)

    def stream_parser(self, tool_names: list[str] | None = None) -> StreamParser:
        names = tool_names or []
        return StreamParser(HermesFormat(names), self.bare_call_openers(names))

    def parse(self, text: str) -> ParseResult:
        spans = self._tagged_calls(text)
        if spans:
            found = [call for _, _, calls in spans for call in calls]
            if found:
                content, at = [], 0
                for begin, end, _ in spans:
                    content.append(text[at:begin])
                    at = end
                content.append(text[at:])
                return ParseResult("".join(content).replace("</tool_call>", "").strip(), found)
            return ParseResult(text.strip())
        # Drift: a fenced JSON block or a bare JSON call at the start of the answer.
        calls = []
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
                rest = text[fence.end() :] if fence else body[rest_at:]
                return ParseResult(rest.strip(), calls)
        return ParseResult(text.strip())

    def _tagged_calls(self, text: str) -> list[tuple[int, int, list[FunctionCall]]]:
        """Every tagged call region, in order: ``(begin, end, calls)`` (no calls where it does not parse)."""
        spans: list[tuple[int, int, list[FunctionCall]]] = []
        taken: list[tuple[int, int]] = []
        for block in _BLOCK.finditer(text):
            taken.append(block.span())
            inner = block.group(1)
            calls: list[FunctionCall] = []
            for _, _, value in scan_json(inner):
                calls = coerce_calls(value)
                break
            if not calls and not inner.lstrip().startswith(("{", "[")):
                calls = [c for _, _, c in self._drift_calls(inner)]  # <tool_call><name>f</name>…</tool_call>
            spans.append((*block.span(), calls))
        for begin, end, call in self._drift_calls(text):
            if not any(b <= begin < e for b, e in taken):
                spans.append((begin, end, [call]))
        spans.sort(key=lambda span: span[0])
        return spans

    def _drift_calls(self, text: str) -> list[tuple[int, int, FunctionCall]]:
        """Calls written in a known drift, with where each one is."""
        found: list[tuple[int, int, FunctionCall]] = []
        for match in _DRIFT_NAMED.finditer(text):
            arguments = _arguments(match.group("arguments"))
            if arguments is not None:
                found.append((*match.span(), {"name": self._tool_name(match.group("name")), "arguments": arguments}))
        for match in _DRIFT_FUNCTION.finditer(text):
            if any(b <= match.start() < e for b, e, _ in found):
                continue
            name, body = match.group("name"), match.group("body")
            if name is not None:  # <function=f>{…}</function> or <function=f><parameter=k>v</parameter>…
                arguments = _arguments(body)
                if arguments is None and "<parameter=" in body:
                    arguments = {k.strip(): _value(v) for k, v in _PARAMETER.findall(body)}
                if arguments is not None and name.strip():
                    found.append((*match.span(), {"name": self._tool_name(name), "arguments": arguments}))
                continue
            # <function>{"name": "f", "arguments": {…}}</function>, or <function>f{…}</function>
            head = _NAMED_JSON.match(body)
            if head is not None:
                arguments = _arguments(body[head.end() :])
                if arguments is not None:
                    found.append((*match.span(), {"name": self._tool_name(head.group(1)), "arguments": arguments}))
                continue
            for _, _, value in scan_json(body):
                calls = coerce_calls(value)
                if len(calls) == 1:
                    found.append((*match.span(), {**calls[0], "name": self._tool_name(calls[0]["name"])}))
                break
        found.sort(key=lambda item: item[0])
        return found

    def _tool_name(self, written: str) -> str:
        """The tool a drift's name slot means.

        Small models put other things there — ``<name>Cloudflare</name>`` for the user they look up.
        A name that is a tool's, up to case and ``-``/``_``/``.``, is that tool; with a single tool, any
        name means it (the arguments still have to pass its schema); otherwise the name stays as
        written, and the call guard drops a call to a tool that was not offered.
        """
        name = written.strip().strip("\"'")
        if not self.tool_names or name in self.tool_names:
            return name
        same = [t for t in self.tool_names if _loose(t) == _loose(name)]
        if len(same) == 1:
            return same[0]
        if len(self.tool_names) == 1:
            return self.tool_names[0]
        return name

    def grammar(self, tools: list[ToolSpec], *, parallel: bool = True) -> CallGrammar:
        g = GrammarBuilder()
        call = g.alternatives(
            tools,
            lambda name, args: f'"{{\\"name\\": " {name} ", \\"arguments\\": " {args} "}}"',
        )
        block = g.add_rule("call-block", f'"<tool_call>\\n" {call} "\\n</tool_call>"')
        root = f'{block} ( "\\n" {block} )*' if parallel else block
        return CallGrammar(g.render(root), g.exact)


def _arguments(body: str) -> dict[str, Any] | None:
    """A drift's arguments: the JSON object its body starts with (or JSON text of one), else None."""
    stripped = body.strip()
    if stripped.startswith('"'):
        try:
            inner = json.loads(stripped)
        except (ValueError, RecursionError):
            return None
        return decode_arguments(inner)[0] if isinstance(inner, str) else None
    if not stripped.startswith("{"):
        return None
    for begin, _, value in scan_json(stripped):
        return decode_arguments(value)[0] if begin == 0 else None
    return None


def _value(text: str) -> Any:
    """A ``<parameter=k>`` value: JSON when it is JSON (numbers, lists), else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()


def _loose(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(".", "")
