"""Each format's parser: the shapes models really write, and fuzzing with model-like garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun._types import normalize_tools
from toolrun.formats import format_names, get_format


def ParsedCall(name, arguments):
    return {"name": name, "arguments": arguments}


HERMES_CASES = [
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "", [("f", {"a": 1})]),
    ('Let me look.\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>', "Let me look.", [("f", {})]),
    (
        '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n<tool_call>{"name": "g", "arguments": {"b": "x"}}'
        "</tool_call>",
        "",
        [("f", {"a": 1}), ("g", {"b": "x"})],
    ),
    ('```json\n{"name": "f", "arguments": {"a": 1}}\n```', "", [("f", {"a": 1})]),  # the 0.5B model's drift
    ('{"name": "f", "parameters": {"a": 1}}', "", [("f", {"a": 1})]),
    ('<tool_call>\n{"name": "f", "arguments": "{\\"a\\": 1}"}\n</tool_call>', "", [("f", {"a": 1})]),
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}', "", [("f", {"a": 1})]),  # cut before the closing tag
    ("The answer is 42.", "The answer is 42.", []),
    ("<tool_call>\nnot json\n</tool_call>", "<tool_call>\nnot json\n</tool_call>", []),
    ('```python\nprint({"name": 1})\n```', '```python\nprint({"name": 1})\n```', []),
    # Drifts: XML-ish tags instead of a JSON call (the 0.5B writes the first one).
    (
        '<name>get_user</name>\n<arguments>{"username": "cloudflare"}</arguments>',
        "",
        [("get_user", {"username": "cloudflare"})],
    ),
    ('Checking.\n<name>f</name><parameters>{"a": 1}</parameters> done', "Checking.\n done", [("f", {"a": 1})]),
    ('<tool_call>\n<name>f</name>\n<arguments>{"a": 1}</arguments>\n</tool_call>', "", [("f", {"a": 1})]),
    ('<function=f>{"a": 1}</function>', "", [("f", {"a": 1})]),
    (
        "<function=f>\n<parameter=city>\nOslo\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>",
        "",
        [("f", {"city": "Oslo", "days": 3})],
    ),
    ('<function>{"name": "f", "arguments": {"a": 1}}</function>', "", [("f", {"a": 1})]),
    ('<function>f</function>\n<arguments>{"a": 1}</arguments>', "", [("f", {"a": 1})]),
    ('I will.\n<function=f>{"a": 1}</function>\n<function=g>{}</function>', "I will.", [("f", {"a": 1}), ("g", {})]),
    ('<name>f</name><arguments>{"a": 1}', "", [("f", {"a": 1})]),  # cut before the closing tag
    ("<name>Ada</name> wrote the first program.", "<name>Ada</name> wrote the first program.", []),
    ("<function=f>not json</function>", "<function=f>not json</function>", []),
    ("<arguments>{}</arguments>", "<arguments>{}</arguments>", []),
]


@pytest.mark.parametrize(("text", "content", "calls"), HERMES_CASES)
def test_hermes_parse(text, content, calls):
    result = get_format("hermes").parse(text)
    assert result.content == content
    assert result.calls == [ParsedCall(n, a) for n, a in calls]


SEED_DRIFT = '<name>Cloudflare</name>\n<arguments>{"username": "cloudflare"}</arguments>'


def _streamed(fmt, text, tool_names):
    parser = fmt.stream_parser(tool_names)
    events = []
    for i in range(0, len(text), 3):
        events += parser.feed(text[i : i + 3])
    events += parser.finish()
    text_out = "".join(e.get("response", "") for e in events)
    return text_out, [(c["name"], c["arguments"]) for e in events for c in e.get("tool_calls", ())]


def test_drift_name_slot_holding_something_else_means_the_only_tool():
    """The 0.5B put the user it looks up in <name>: with one tool offered, the call is to that tool."""
    fmt = get_format("hermes")
    assert _streamed(fmt, SEED_DRIFT, ["getGithubUser"]) == ("", [("getGithubUser", {"username": "cloudflare"})])
    # Without the tools (a bare parse) the name stays as written; the call guard drops unknown tools.
    assert fmt.parse(SEED_DRIFT).calls == [ParsedCall("Cloudflare", {"username": "cloudflare"})]


def test_drift_name_slot_with_several_tools():
    fmt = get_format("hermes")
    tools = ["get_weather", "getGithubUser"]
    # A tool's name up to case and separators is that tool ...
    assert _streamed(fmt, '<name>GetWeather</name><arguments>{"city": "Oslo"}</arguments>', tools)[1] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert _streamed(fmt, '<function=get-weather>{"city": "Oslo"}</function>', tools)[1] == [
        ("get_weather", {"city": "Oslo"})
    ]
    # ... and anything else stays as written: no guessing among several tools.
    assert _streamed(fmt, SEED_DRIFT, tools)[1] == [("Cloudflare", {"username": "cloudflare"})]


@pytest.mark.parametrize(
    "drift",
    [
        '<name>getGithubUser</name>\n<arguments>{"username": "x"}</arguments>',
        '<function=getGithubUser>{"username": "x"}</function>',
        '<function>{"name": "getGithubUser", "arguments": {"username": "x"}}</function>',
    ],
)
def test_drifts_open_a_call_anywhere_and_stream_like_they_parse(drift):
    fmt = get_format("hermes")
    text = "Let me look that up.\n" + drift
    assert fmt.find_opener(text) == len("Let me look that up.\n")
    assert _streamed(fmt, text, ["getGithubUser"]) == ("Let me look that up.\n", [("getGithubUser", {"username": "x"})])
    assert fmt.parse(text).content == "Let me look that up."


def test_llama3_parse():
    fmt = get_format("llama3_json")
    r = fmt.parse('<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}')
    assert r.calls == [ParsedCall("a", {"x": 1}), ParsedCall("b", {})]
    assert fmt.parse("Paris is the capital.").calls == []
    assert fmt.parse('{"name": "a", "parameters": {"x": 1}} and then prose').calls == [ParsedCall("a", {"x": 1})]


def test_mistral_parse():
    fmt = get_format("mistral")
    r = fmt.parse('[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]')
    assert r.calls == [ParsedCall("a", {"x": 1}), ParsedCall("b", {})]
    assert fmt.parse("[1, 2, 3] are numbers").calls == []


@pytest.mark.parametrize("name", format_names())
def test_streaming_equals_complete_parse(name):
    fmt = get_format(name)
    samples = {
        "hermes": 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": "x"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>',
        "llama3_json": '{"name": "f", "parameters": {"a": "x"}}; {"name": "g", "parameters": {}}',
        "mistral": '[TOOL_CALLS][{"name": "f", "arguments": {"a": "x"}}, {"name": "g", "arguments": {}}]',
    }
    text = samples[name]
    parser = fmt.stream_parser()
    events = []
    for i in range(0, len(text), 3):  # feed in small uneven pieces, like tokens
        events += parser.feed(text[i : i + 3])
    events += parser.finish()
    streamed = [(c["name"], c["arguments"]) for e in events for c in e.get("tool_calls", ())]
    assert streamed == [(c["name"], c["arguments"]) for c in fmt.parse(text).calls]
    assert [c["index"] for e in events for c in e.get("tool_calls", ())] == list(range(len(streamed)))
    assert "<tool_call>" not in "".join(e.get("response", "") for e in events)


def test_stream_holds_back_a_partial_opener_then_releases_plain_text():
    parser = get_format("hermes").stream_parser()
    assert parser.feed("I think <tool") == [{"response": "I think "}]
    assert parser.feed("kit is great") == [{"response": "<toolkit is great"}]
    assert parser.finish() == []


# Model-like garbage: fragments of the real syntax mixed with noise.
FRAGMENTS = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "<name>",
        "</name>",
        "<arguments>",
        "</arguments>",
        "<function=f>",
        "<function>",
        "</function>",
        "<parameter=a>",
        "</parameter>",
        "```json",
        "```",
        "{",
        "}",
        "[",
        "]",
        '"name"',
        '"arguments"',
        '"parameters"',
        ":",
        ",",
        '"f"',
        "null",
        "1e999",
        "\\u12",
        "[TOOL_CALLS]",
        "<|python_tag|>",
        ";",
        "\n",
        " ",
        '"',
        "{}",
        '{"name": "f", "arguments": {"a": [1, {"b": null}]}}',
        '"arguments": "{\\"a\\": 1}"',
    ]
)
GARBAGE = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join)


@pytest.mark.parametrize("name", format_names())
@settings(max_examples=300, deadline=None)
@given(text=GARBAGE)
def test_parsers_never_raise_on_garbage(name, text):
    fmt = get_format(name)
    result = fmt.parse(text)
    assert isinstance(result.content, str)
    for call in result.calls:
        assert isinstance(call["name"], str) and call["name"] and isinstance(call["arguments"], dict)
    parser = fmt.stream_parser()
    for i in range(0, len(text), 5):
        parser.feed(text[i : i + 5])
    parser.finish()


@pytest.mark.parametrize("name", format_names())
def test_grammars_compile_in_llama_cpp(name):
    from llama_cpp import LlamaGrammar

    tools = normalize_tools(
        [
            {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                        "unit": {"enum": ["c", "f"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["city"],
                },
            },
            # A schema llama.cpp's converter cannot express degrades to "any object", never an error.
            {"name": "weird", "parameters": {"type": "object", "properties": {"x": {"not": {"type": "string"}}}}},
        ]
    )
    grammar = get_format(name).grammar(tools)
    assert "root ::=" in grammar.text
    LlamaGrammar.from_string(grammar.text, verbose=False)


def test_bare_json_call_after_text_is_found_only_for_real_tool_names():
    fmt = get_format("hermes")
    parser = fmt.stream_parser(["get_weather"])
    events = parser.feed('I will check.\n{"name": "get_weather", "arguments": {"city": "Oslo"}}') + parser.finish()
    assert "".join(e.get("response", "") for e in events) == "I will check.\n"
    assert [c["arguments"] for e in events for c in e.get("tool_calls", ())] == [{"city": "Oslo"}]

    parser = fmt.stream_parser(["get_weather"])
    events = parser.feed('Write {"name": "other"} in the file.') + parser.finish()
    assert "".join(e.get("response", "") for e in events) == 'Write {"name": "other"} in the file.'
