"""A remote engine for OpenAI-compatible servers: vLLM, SGLang, llama.cpp's server, llama-cpp-python's.

Two ways to get tool calls out of such a server (``tool_parsing``):

``native``
    Send ``tools`` to ``/chat/completions`` and let the server parse calls with
    its own parser (vLLM's ``--tool-call-parser``, ...). Works with any server
    that has one; toolrun then depends on that parser, and a model that drifts
    from its format (the small default writes a ```json fence) yields no calls.

``toolrun``
    Keep toolrun's guarantees: render the prompt with the model's chat template
    and toolrun's tool format, call the raw completions endpoint, parse with
    toolrun's lenient streaming parser, and constrain every call with the
    server's own grammar option. With ``tool_choice="auto"`` the model writes
    freely; when it opens a call (tags or drift), that stream is closed and the
    call is written again from the opener under the format's grammar, in a
    second completion that continues the first — the remote form of the local
    engine's KV-cache rewind (the server's prefix cache makes it cheap).

Defaults per upstream (``upstream`` in the catalog):

=================== ================ ======================================== ===========================
upstream            tool_parsing     raw completion endpoint                  grammar option
=================== ================ ======================================== ===========================
``vllm``            toolrun          ``/v1/completions``                      ``structured_outputs.grammar``
``sglang``          toolrun          ``/v1/completions``                      ``ebnf``
``llama.cpp``       toolrun          ``/completion``                          ``grammar``
``llama-cpp-python`` toolrun         ``/v1/completions``                      ``grammar``
``openai``          native           ``/v1/completions`` (no grammar)         none
=================== ================ ======================================== ===========================

All take GBNF (vLLM and SGLang through xgrammar, which reads llama.cpp's
format). ``openai`` is any other server (Ollama, hosted APIs): without a known
grammar option, ``toolrun`` mode there parses leniently but cannot constrain.
In both modes the binding validates every call; argument fragments are
streamed only while an exact grammar constrains the call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import httpx

from ..._errors import EngineError, InvalidInputError
from ..._grounding import conversation_text
from ..._wire import Event, FinishReason, encode_arguments, final_event
from ...formats import (
    CallGrammar,
    ControlTokens,
    PlainTextParser,
    StreamParser,
    ToolCallFormat,
    get_format,
)
from .._base import Engine, GenerationRequest, NamedTool, SamplingParams
from .._grammars import GrammarCache, RequestGrammars
from .._judgment import first_call_fits, further_call_kept
from .._prompt import render_prompt
from ._calls import CallAccumulator
from ._errors import openai_error, openai_stream_error
from ._http import RetryPolicy, Timeouts, UpstreamPool, display_url
from ._template import PromptTemplate, choose_template, read_chat_template, stop_strings

log = logging.getLogger("toolrun.engines.remote")

UpstreamKind: TypeAlias = Literal["openai", "vllm", "sglang", "llama.cpp", "llama-cpp-python"]
ToolParsing: TypeAlias = Literal["native", "toolrun"]


@dataclass(frozen=True)
class Dialect:
    """What differs between OpenAI-compatible servers (see the module doc's table)."""

    name: str
    tool_parsing: ToolParsing
    chat_path: str
    completion_path: str
    #: The request fields that constrain a raw completion with a GBNF grammar; None: no such option.
    grammar: Callable[[str], dict[str, Any]] | None
    #: llama.cpp's own ``/completion`` request and answer shapes rather than OpenAI's.
    llama_native: bool = False
    #: The server reports its chat template at ``GET /props``.
    reports_template: bool = False
    #: Streams report usage when asked with ``stream_options``.
    stream_usage: bool = True
    #: The request fields asking for the top ``k`` token log-probabilities; None: not available.
    logprobs: Callable[[int], dict[str, Any]] | None = None


_EMPTY_ALTERNATIVE = re.compile(r"::=(\s*)\|")


def xgrammar_gbnf(grammar: str) -> str:
    """llama.cpp's GBNF as xgrammar (vLLM's and SGLang's default backend) parses it.

    xgrammar refuses an empty alternative (``space ::= | " " | ...``, which llama.cpp's
    converter writes for optional whitespace) but accepts the same thing as ``""``. Checked
    with xgrammar 0.2.8: every format's call grammar then parses and matches as llama.cpp's does.
    """
    return _EMPTY_ALTERNATIVE.sub(r'::=\1"" |', grammar)


def _openai_logprobs(k: int) -> dict[str, Any]:
    return {"logprobs": k}


DIALECTS: dict[str, Dialect] = {
    "openai": Dialect("openai", "native", "/chat/completions", "/completions", None, logprobs=_openai_logprobs),
    "vllm": Dialect(
        "vllm",
        "toolrun",
        "/chat/completions",
        "/completions",
        lambda g: {"structured_outputs": {"grammar": xgrammar_gbnf(g)}},
        logprobs=_openai_logprobs,
    ),
    "sglang": Dialect(
        "sglang",
        "toolrun",
        "/chat/completions",
        "/completions",
        lambda g: {"ebnf": xgrammar_gbnf(g)},
        logprobs=_openai_logprobs,
    ),
    "llama.cpp": Dialect(
        "llama.cpp",
        "toolrun",
        "/v1/chat/completions",
        "/completion",
        lambda g: {"grammar": g},
        llama_native=True,
        reports_template=True,
        logprobs=lambda k: {"n_probs": k},
    ),
    # Its server computes log-probabilities only for a model loaded with logits_all (n_ctx x vocabulary floats).
    "llama-cpp-python": Dialect(
        "llama-cpp-python", "toolrun", "/chat/completions", "/completions", lambda g: {"grammar": g}, stream_usage=False
    ),
}
#: Candidates asked for when deciding between a call and an answer (openers beyond these weigh ~nothing).
DECISION_TOP_K = 20
UPSTREAM_ALIASES = {"llama-server": "llama.cpp", "llamacpp": "llama.cpp", "llama_cpp.server": "llama-cpp-python"}


def dialect_for(upstream: str) -> Dialect:
    name = UPSTREAM_ALIASES.get(upstream, upstream)
    if name not in DIALECTS:
        raise InvalidInputError(
            f"unknown upstream {upstream!r}; known: {', '.join(sorted(DIALECTS))}", where="upstream"
        )
    return DIALECTS[name]


@dataclass
class _Piece:
    """One streamed chunk of a raw completion."""

    text: str
    finish: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: The first token's most likely candidates, token text → log-probability (when asked for).
    top: dict[str, float] | None = None


class OpenAICompatibleEngine(Engine):
    """One model on one or more OpenAI-compatible servers (see the module doc)."""

    def __init__(
        self,
        base_url: str | list[str] | tuple[str, ...],
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        upstream: str = "openai",
        tool_parsing: ToolParsing | None = None,
        tool_format: str | ToolCallFormat = "hermes",
        chat_template: str | None = None,
        context_window: int | None = None,
        call_threshold: float = 0.0,
        check_relevance: bool = False,
        try_another_call: bool = False,
        call_temperature: float | None = None,
        parallel_hint: str = "",
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise InvalidInputError("a remote model needs at least one base_url", where="base_url")
        self.dialect = dialect_for(upstream)
        parsing = tool_parsing or self.dialect.tool_parsing
        if parsing not in ("native", "toolrun"):
            raise InvalidInputError(
                f"tool_parsing must be 'native' or 'toolrun', not {parsing!r}", where="tool_parsing"
            )
        self.tool_parsing: ToolParsing = parsing
        self.model = model
        self.format = get_format(tool_format) if isinstance(tool_format, str) else tool_format
        #: Control-token texts of the format's family: in a request's text they are broken up before sending.
        self.control = ControlTokens(pattern=self.format.control_pattern)
        self.context_window = context_window
        self.api_key_env = api_key_env
        self._chat_template_path = chat_template
        #: As the local engine's: with tool_choice "auto", call when the model's probability of opening a
        #: call at its first token is at least this, else answer in text (0: follow the model's own pick).
        self.call_threshold = call_threshold
        #: As the local engine's (``toolrun`` parsing only): the turn's first call is kept only if it fits
        #: the request, a further call is tried after the model's last, calls are written at this temperature.
        self.check_relevance = check_relevance
        self.try_another_call = try_another_call
        self.call_temperature = call_temperature
        #: As the local engine's (``toolrun`` parsing only): a sentence after the tool list when the request
        #: offers one tool and allows several calls of it.
        self.parallel_hint = parallel_hint
        if call_threshold > 0 and self.dialect.logprobs is None:
            log.warning(
                "%s: call_threshold needs token probabilities, which %s does not return; the model's "
                "own choice is followed",
                model,
                self.dialect.name,
            )
        if parallel_hint and self.tool_parsing == "native":
            # The server renders the prompt itself: there is no tool list of toolrun's to end with the hint.
            log.warning("%s: parallel_hint applies in tool_parsing 'toolrun' only; this entry runs without it", model)
        key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if self.dialect.llama_native:
            urls = [_strip_v1(u) for u in urls]
        self.pool = UpstreamPool(
            urls,
            headers=headers,
            timeouts=timeouts,
            retry=retry,
            transport=transport,
            read_error=lambda name, status, body: openai_error(name, status, body, key_env=api_key_env),
            payload_error=openai_stream_error,
            secrets=[key] if key else [],
        )
        self._template: PromptTemplate | None = None
        self._template_lock = asyncio.Lock()
        self.grammars = GrammarCache(self.format)

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleEngine({self.pool.names!r}, model={self.model!r}, "
            f"upstream={self.dialect.name!r}, tool_parsing={self.tool_parsing!r})"
        )

    @property
    def base_urls(self) -> list[str]:
        return self.pool.names

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        if self.tool_parsing == "toolrun":
            events = self._generate_toolrun(request)
        elif request.raw_prompt is not None:
            events = self._generate_raw(request)
        else:
            events = self._generate_native(request)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def aclose(self) -> None:
        await self.pool.aclose()

    # ------------------------------------------------------------------ shared

    def _sampling(self, s: SamplingParams) -> dict[str, Any]:
        fields: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p}
        if s.seed is not None:
            fields["seed"] = s.seed
        if s.frequency_penalty:
            fields["frequency_penalty"] = s.frequency_penalty
        if s.presence_penalty:
            fields["presence_penalty"] = s.presence_penalty
        name = self.dialect.name
        if name in ("vllm", "sglang"):
            if s.top_k > 0:
                fields["top_k"] = s.top_k
            if s.repetition_penalty != 1.0:
                fields["repetition_penalty"] = s.repetition_penalty
        elif name in ("llama.cpp", "llama-cpp-python"):
            # Their defaults (top_k 40, min_p 0.05, repeat_penalty 1.1) are not toolrun's: say ours.
            fields.update(top_k=s.top_k, min_p=0.0, repeat_penalty=s.repetition_penalty)
        return fields

    # ------------------------------------------------------------------ native

    def _chat_body(self, request: GenerationRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            out: dict[str, Any] = dict(message)
            if message.get("tool_calls"):
                out["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {
                            "name": c["function"]["name"],
                            "arguments": encode_arguments(c["function"]["arguments"]),
                        },
                    }
                    for c in message["tool_calls"]
                ]
            messages.append(out)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": request.sampling.max_tokens,
            **self._sampling(request.sampling),
        }
        if self.dialect.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if request.uses_tools:
            body["tools"] = [t.as_openai() for t in request.tools]
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}} if isinstance(choice, NamedTool) else choice
            )
            if not request.parallel_tool_calls:
                body["parallel_tool_calls"] = False
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": dict(request.response_schema)},
            }
        return body

    async def _generate_native(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        calls = CallAccumulator()
        prompt_tokens = completion_tokens = 0
        finish: str = "stop"
        pieces = 0
        chunks = self.pool.stream(self.dialect.chat_path, self._chat_body(request))
        async with aclosing(chunks):
            async for chunk in chunks:
                usage = chunk.get("usage")
                if isinstance(usage, Mapping):
                    prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    completion_tokens = int(usage.get("completion_tokens") or 0)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or choice.get("message") or {}
                    content = delta.get("content")
                    if isinstance(content, str) and content:
                        pieces += 1
                        yield {"response": content}
                    calls.add(delta.get("tool_calls"))
                    finish = choice.get("finish_reason") or finish
        for event in calls.events(self.pool.names[0]):
            yield event
        yield final_event(prompt_tokens, completion_tokens or pieces, finish_reason(finish, calls.count > 0))

    async def _generate_raw(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        """A raw prompt (Workers AI's ``raw``) in native mode: the completions endpoint, as is."""
        async for event in self._text_turn(request.raw_prompt or "", request):
            yield event

    async def _text_turn(self, prompt: str, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        """A turn that is text only: one unconstrained completion of ``prompt``, streamed as it comes."""
        tally = _Tally()
        pieces = self._complete(prompt, request, None, request.sampling.max_tokens)
        async with aclosing(pieces):
            async for piece in pieces:
                tally.add(piece)
                if piece.text:
                    yield {"response": piece.text}
        yield tally.final(calls=False)

    # ----------------------------------------------------------------- toolrun

    async def prompt_template(self) -> PromptTemplate:
        """The template toolrun renders prompts with (see :mod:`._template`), found once."""
        if self._template is not None:
            return self._template
        async with self._template_lock:
            if self._template is None:
                self._template = await self._find_template()
                log.info("%s: rendering prompts with %s", self.model, self._template.origin)
        return self._template

    async def _find_template(self) -> PromptTemplate:
        if self._chat_template_path:
            source, eos = await asyncio.to_thread(read_chat_template, self._chat_template_path)
            return choose_template(self.format, source, eos, self._chat_template_path)
        if self.dialect.reports_template:
            upstream = self.pool.pick()
            try:
                response = await upstream.client.get(upstream.base_url + "/props")
                response.raise_for_status()
                props = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise EngineError(
                    f"could not read the chat template from {upstream.name}/props: {type(exc).__name__}"
                ) from None
            props = props if isinstance(props, Mapping) else {}
            reported, reported_eos = props.get("chat_template"), props.get("eos_token")
            return choose_template(
                self.format,
                reported if isinstance(reported, str) else None,
                reported_eos if isinstance(reported_eos, str) else "",
                f"{upstream.name}/props",
            )
        return choose_template(self.format, None, "", "")

    def _completion_body(
        self, prompt: str, request: GenerationRequest, grammar: str | None, max_tokens: int, *, calls: bool = False
    ) -> dict[str, Any]:
        stops = stop_strings(self.format)
        sampling = self._sampling(request.sampling.for_calls(self.call_temperature) if calls else request.sampling)
        if self.dialect.llama_native:
            body: dict[str, Any] = {
                "prompt": prompt,
                "n_predict": max_tokens,
                "stream": True,
                "stop": stops,
                "cache_prompt": True,
                **sampling,
            }
            # Show the format's own tags even where they are special tokens (llama-server hides those).
            body["preserved_tokens"] = list(self.format.inline_openers + self.format.call_closers)
        else:
            body = {
                "model": self.model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "stream": True,
                "stop": stops,
                **sampling,
            }
            if self.dialect.stream_usage:
                body["stream_options"] = {"include_usage": True}
            if self.dialect.name in ("vllm", "sglang"):
                body["skip_special_tokens"] = False  # the parser must see <tool_call> and friends
        if grammar is not None and self.dialect.grammar is not None:
            body.update(self.dialect.grammar(grammar))
        return body

    async def _complete(
        self,
        prompt: str,
        request: GenerationRequest,
        grammar: str | None,
        max_tokens: int,
        *,
        top_logprobs: int = 0,
        calls: bool = False,
    ) -> AsyncGenerator[_Piece, None]:
        """One streamed completion; ``calls``: it writes calls, at ``call_temperature`` when that is lower."""
        body = self._completion_body(prompt, request, grammar, max_tokens, calls=calls)
        if top_logprobs and self.dialect.logprobs is not None:
            body.update(self.dialect.logprobs(top_logprobs))
        payloads = self.pool.stream(self.dialect.completion_path, body)
        async with aclosing(payloads):
            async for payload in payloads:
                if self.dialect.llama_native:
                    yield _llama_piece(payload)
                    continue
                usage = payload.get("usage")
                piece = _Piece("")
                if isinstance(usage, Mapping):
                    piece.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    piece.completion_tokens = int(usage.get("completion_tokens") or 0)
                for choice in payload.get("choices") or ():
                    text = choice.get("text")
                    if isinstance(text, str):
                        piece.text += text
                    piece.finish = choice.get("finish_reason") or piece.finish
                    piece.top = piece.top or _openai_top(choice.get("logprobs"))
                yield piece

    async def _first_token_choice(
        self, prompt: str, request: GenerationRequest, parser: StreamParser
    ) -> bool | str | None:
        """The local engine's decision, from the upstream's log-probabilities of the first token.

        True: call (the model's probability of opening a call is at least ``call_threshold``).
        A string: answer in text, starting with the most likely token that opens no call (sampled
        among the candidates at a temperature above 0). None: no probabilities came back.
        """
        top: dict[str, float] | None = None
        probe = self._complete(prompt, request, None, 1, top_logprobs=DECISION_TOP_K)
        async with aclosing(probe):
            async for piece in probe:
                top = top or piece.top
        if not top:
            return None
        openers = self.format.inline_openers + self.format.start_openers + parser.extra_openers
        opening = {token for token in top if _may_open(token, openers)}
        if sum(math.exp(lp) for token, lp in top.items() if token in opening) >= self.call_threshold:
            return True
        others = [(lp, token) for token, lp in top.items() if token not in opening and token]
        if not others:
            return None
        temperature = request.sampling.temperature
        if temperature <= 0:
            return max(others)[1]
        weights = [math.exp((lp - max(others)[0]) / temperature) for lp, _ in others]
        return random.Random(request.sampling.seed).choices([t for _, t in others], weights)[0]

    async def _generate_toolrun(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        template = await self.prompt_template()
        prompt = render_prompt(
            self.format,
            template.source,
            request,
            control=self.control,
            eos_token=template.eos_token,
            parallel_hint=self.parallel_hint,
        ).defanged()
        constrains = self.dialect.grammar is not None
        # Built off the event loop: the schemas come from whoever sent the request.
        grammars = await asyncio.to_thread(self.grammars.for_request, request) if constrains else RequestGrammars()
        max_tokens = request.sampling.max_tokens
        parser: StreamParser | PlainTextParser = PlainTextParser()
        if request.uses_tools:
            parser = self.format.stream_parser([t.name for t in request.tools])
        grammar_text: str | None = None
        if request.must_call and constrains:
            grammar = _call_grammar(grammars)
            grammar_text = grammar.text
            parser.stream_arguments = grammar.exact
        elif grammars.schema is not None:
            grammar_text = grammars.schema
        watching = request.uses_tools and not request.must_call and constrains
        # As the local engine: the turn's first call is held until it fits the request, and after the
        # model's last call one more is tried, kept when new and grounded (toolrun.engines._judgment).
        trying = self.try_another_call and constrains and request.may_add_calls
        gate = _CallGate(
            request,
            check_first=self.check_relevance and request.uses_tools and not request.must_call,
            check_further=trying,
        )

        tally = _Tally()
        text = ""  # everything the model wrote this turn (the continuation prompts build on it)
        starts: list[int] = []  # where each piece's text begins, to count the pieces before an opener
        opener_at: int | None = None
        calls_grammar = False  # whether the last completion wrote calls under the grammar
        if (
            watching
            and self.call_threshold > 0
            and self.dialect.logprobs is not None
            and isinstance(parser, StreamParser)
        ):
            choice = await self._first_token_choice(prompt, request, parser)
            if choice is True:  # a call it is: constrained from the first token
                grammar = _call_grammar(grammars)
                grammar_text = grammar.text
                parser.stream_arguments = grammar.exact
                watching = False
                calls_grammar = True
            elif isinstance(choice, str):  # an answer: it starts with a token that opens no call
                tally.add(_Piece(choice))
                starts.append(0)
                text = choice
                for event in gate.pass_events(parser.feed(choice)):
                    yield event
                max_tokens = max(1, max_tokens - 1)
        first = self._complete(prompt + text, request, grammar_text, max_tokens, calls=calls_grammar)
        try:
            async for piece in first:
                tally.add(piece)
                if not piece.text:
                    continue
                starts.append(len(text))
                text += piece.text
                for event in gate.pass_events(parser.feed(piece.text)):
                    yield event
                if gate.stopped:
                    break
                if watching and isinstance(parser, StreamParser) and parser.in_call_region:
                    opener_at = self.format.find_opener(text, parser.extra_openers)
                    break
        finally:
            await first.aclose()

        if opener_at is not None and isinstance(parser, StreamParser):
            # The model opened a call: write it again from the opener, under the grammar.
            kept = sum(1 for s in starts if s < opener_at)
            grammar = _call_grammar(grammars)
            parser.reset_region()
            parser.stream_arguments = grammar.exact
            tally = tally.restart(kept)
            text = text[:opener_at]
            second = self._complete(
                prompt + text, request, grammar.text, max(1, request.sampling.max_tokens - kept), calls=True
            )
            calls_grammar = True
            try:
                async for piece in second:
                    tally.add(piece)
                    text += piece.text
                    for event in gate.pass_events(parser.feed(piece.text)):
                        yield event
                    if gate.stopped:
                        break
            finally:
                await second.aclose()

        if gate.rejected:
            if gate.text_sent:  # a call that does not fit, after some text: the turn ends with the text
                yield tally.final(calls=False)
                return
            async for event in self._answer_in_text(request):
                yield event
            return
        if gate.ended:  # a further call was not kept: the turn ends before it
            yield tally.final(calls=bool(gate.calls))
            return
        for event in gate.pass_events(parser.finish(cut=tally.finish == "length")):
            yield event
        if gate.held:  # the output ended inside a held call: nothing to check
            for event in gate.release():
                yield event
        if trying and calls_grammar and tally.finish != "length" and isinstance(parser, StreamParser):
            async for event in self._try_more_calls(
                prompt + text, request, parser, tally, gate, _call_grammar(grammars)
            ):
                yield event
        yield tally.final(calls=parser.calls_emitted > 0)

    async def _answer_in_text(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        """The turn answered in text after its first call was found not to fit the request.

        The local engine forbids the call openers' tokens; a remote engine has no tokenizer to name them
        with, so the model answers from a prompt without the tools (what the repeat guard does too).
        """
        template = await self.prompt_template()
        prompt = render_prompt(
            self.format, template.source, replace(request, tools=[]), control=self.control, eos_token=template.eos_token
        ).defanged()
        async for event in self._text_turn(prompt, request):
            yield event

    async def _try_more_calls(
        self,
        prompt: str,
        request: GenerationRequest,
        parser: StreamParser,
        tally: _Tally,
        gate: _CallGate,
        grammar: CallGrammar,
    ) -> AsyncGenerator[Event, None]:
        """After the model's last call, ask for one more under the grammar; keep it while it is new and grounded."""
        separator = self.format.call_separator
        grounding = conversation_text(request.messages)
        turn_calls = list(gate.calls)
        budget = request.sampling.max_tokens - tally.completion_total()
        while budget > 1:
            state = parser.snapshot()
            before = parser.calls_emitted
            events: list[Event] = list(parser.feed(separator))
            written = separator
            pieces = 0
            trial = self._complete(prompt + written, request, grammar.text, budget, calls=True)
            async with aclosing(trial):
                async for piece in trial:
                    pieces += bool(piece.text)
                    written += piece.text
                    events.extend(parser.feed(piece.text))
                    if parser.calls_emitted > before:
                        break
            calls = [c for e in events if "tool_calls" in e for c in e["tool_calls"]]
            if len(calls) != 1 or not further_call_kept(calls[0], turn_calls, request, grounding):
                parser.restore(state)
                return
            for event in events:
                yield event
            turn_calls.extend(calls)
            tally.extra += pieces
            budget -= pieces
            prompt += written


class _CallGate:
    """Holds a call back until it is complete and lets it through if it is kept, as the local engine does:
    the turn's first call if it fits the request (``check_first``), each further one if it is new and
    grounded (``check_further``, with ``try_another_call``: the model may write several calls in one
    completion, each of which the local engine would have tried)."""

    def __init__(self, request: GenerationRequest, *, check_first: bool, check_further: bool) -> None:
        self._request = request
        self._check_first = check_first
        self._check_further = check_further
        self._grounding: str | None = None
        self.held: list[Event] = []
        self.calls: list[Mapping[str, Any]] = []  # the turn's calls let through
        self.rejected = False  # the first call did not fit: the turn is answered in text
        self.ended = False  # a further call was not kept: the turn ends before it
        self.text_sent = False

    @property
    def stopped(self) -> bool:
        return self.rejected or self.ended

    def pass_events(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if self.stopped:
                break
            is_call = "tool_call_delta" in event or "tool_calls" in event
            if self.held or (is_call and (self._check_further if self.calls else self._check_first)):
                self.held.append(event)
                if "tool_calls" in event:
                    if self._kept(event["tool_calls"][0]):
                        out.extend(self.release())
                    else:
                        self.rejected, self.ended = not self.calls, bool(self.calls)
                        self.held = []
                continue
            if "tool_calls" in event:
                self.calls.extend(event["tool_calls"])
            self.text_sent = self.text_sent or bool(event.get("response"))
            out.append(event)
        return out

    def _kept(self, call: Mapping[str, Any]) -> bool:
        if not self.calls:
            return first_call_fits(call, self._request)
        if self._grounding is None:
            self._grounding = conversation_text(self._request.messages)
        return further_call_kept(call, self.calls, self._request, self._grounding)

    def release(self) -> list[Event]:
        held, self.held = self.held, []
        for event in held:
            if "tool_calls" in event:
                self.calls.extend(event["tool_calls"])
        return held


class _Tally:
    """Usage and finish reason of a turn that may span two completions."""

    def __init__(self, prefix_pieces: int = 0) -> None:
        self.pieces = 0
        self.prefix = prefix_pieces
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish: str | None = None
        self.extra = 0  # tokens of further calls kept after the turn's completions

    def add(self, piece: _Piece) -> None:
        if piece.text:
            self.pieces += 1
        if piece.prompt_tokens is not None:
            self.prompt_tokens = piece.prompt_tokens
        if piece.completion_tokens is not None:
            self.completion_tokens = piece.completion_tokens
        if piece.finish:
            self.finish = piece.finish

    def restart(self, kept_pieces: int) -> _Tally:
        """The tally for the continuation: it re-reads ``kept_pieces`` pieces as prompt."""
        return _Tally(kept_pieces)

    def completion_total(self) -> int:
        completion = self.completion_tokens if self.completion_tokens is not None else self.pieces
        return completion + self.prefix + self.extra

    def final(self, *, calls: bool) -> Event:
        # Streamed pieces are tokens for the servers toolrun knows (one token per chunk); usage, when
        # the server reports it, wins. A continuation's prompt includes the pieces it continues.
        prompt = self.prompt_tokens or 0
        if self.prefix and self.prompt_tokens is not None:
            prompt = max(0, self.prompt_tokens - self.prefix)
        return final_event(prompt, self.completion_total(), finish_reason(self.finish or "stop", calls))


def _llama_piece(payload: Mapping[str, Any]) -> _Piece:
    """A chunk of llama.cpp's ``/completion`` stream."""
    content = payload.get("content")
    piece = _Piece(content if isinstance(content, str) else "", top=_llama_top(payload))
    if payload.get("stop"):
        piece.finish = "length" if payload.get("stop_type") == "limit" else "stop"
        if isinstance(payload.get("tokens_evaluated"), int):
            piece.prompt_tokens = int(payload["tokens_evaluated"])
        if isinstance(payload.get("tokens_predicted"), int):
            piece.completion_tokens = int(payload["tokens_predicted"])
    return piece


def finish_reason(reason: str, calls: bool) -> FinishReason:
    if reason == "length":
        return "length"
    return "tool_calls" if calls else "stop"


def _strip_v1(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _call_grammar(grammars: RequestGrammars) -> CallGrammar:
    assert grammars.call is not None  # built for every request with tools, which a call needs
    return grammars.call


__all__ = ["DIALECTS", "Dialect", "OpenAICompatibleEngine", "ToolParsing", "UpstreamKind", "dialect_for", "display_url"]


def _openai_top(logprobs: Any) -> dict[str, float] | None:
    """The first token's candidates from OpenAI's completions ``logprobs`` (``top_logprobs: [{token: lp}]``)."""
    if not isinstance(logprobs, Mapping):
        return None
    tops = logprobs.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], Mapping):
        return {str(t): float(lp) for t, lp in tops[0].items() if isinstance(lp, int | float)}
    return None


def _llama_top(payload: Mapping[str, Any]) -> dict[str, float] | None:
    """The first token's candidates from llama.cpp's ``completion_probabilities`` (either of its shapes)."""
    probabilities = payload.get("completion_probabilities")
    if not isinstance(probabilities, list) or not probabilities or not isinstance(probabilities[0], Mapping):
        return None
    first = probabilities[0]
    top: dict[str, float] = {}
    for item in first.get("top_logprobs") or ():
        if isinstance(item, Mapping) and isinstance(item.get("logprob"), int | float):
            top[str(item.get("token", ""))] = float(item["logprob"])
    for item in first.get("probs") or first.get("top_probs") or ():  # older servers: probabilities
        p = item.get("prob") if isinstance(item, Mapping) else None
        if isinstance(p, int | float) and p > 0:
            top[str(item.get("tok_str", item.get("token", "")))] = math.log(p)
    return top or None


def _may_open(token: str, openers: tuple[str, ...]) -> bool:
    """Whether a first token begins one of the ways this format opens a call (tags, fences, bare JSON)."""
    return bool(token.strip()) and any(opener.startswith(token) for opener in openers)
