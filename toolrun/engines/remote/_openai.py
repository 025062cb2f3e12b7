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
``vllm``            toolrun          ``/v1/completions``                      ``structured_outputs.grammar`` (+)
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

(+) ``vllm`` also sends llama.cpp's top-level ``grammar``, which vLLM ignores: one
entry may then route across vLLM and llama-server (``/v1/completions`` on both),
and each server applies the grammar it reads.
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
from ..._wire import Event, FinishReason, final_event, openai_message, openai_tool, openai_tool_choice
from ...formats import (
    CallGrammar,
    ControlTokens,
    StreamParser,
    ToolCallFormat,
    get_format,
)
from .._base import Engine, GenerationRequest, NamedTool, SamplingParams
from .._prompt import render_prompt
from .._registry import EngineSpec, register_engine
from ..turn import CallPolicy, GrammarCache, RequestGrammars, TurnGate, Verdict, without_repeats
from ._calls import CallAccumulator
from ._errors import openai_error, openai_stream_error
from ._http import RetryPolicy, Timeouts, UpstreamPool, connection_policy, display_url, strip_v1
from ._probe import FirstTokenProbe, TokenizeRoute
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
    #: Where the server reports its chat template and end-of-turn token (``GET root + path`` →
    #: ``{"chat_template", "eos_token"}``): llama.cpp's ``/props``, vLLM's ``/tokenizer_info`` (served with
    #: ``--enable-tokenizer-info-endpoint``); None: the server does not say.
    template_route: str | None = None
    #: Whether a server without that route is still usable (the format's fallback template is used then).
    template_optional: bool = False
    #: Streams report usage when asked with ``stream_options``.
    stream_usage: bool = True
    #: The request fields asking for the top ``k`` token log-probabilities; None: not available.
    logprobs: Callable[[int], dict[str, Any]] | None = None
    #: The tokenizer endpoint, with ``logit_bias`` on completions: without log-probabilities, the
    #: call-or-answer decision is asked of a biased greedy probe (:mod:`._probe`); None: not available.
    tokenize: TokenizeRoute | None = None


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
        lambda g: {"structured_outputs": {"grammar": xgrammar_gbnf(g)}, "grammar": g},
        logprobs=_openai_logprobs,
        template_route="/tokenizer_info",
        template_optional=True,
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
        template_route="/props",
        logprobs=lambda k: {"n_probs": k},
        tokenize=TokenizeRoute("/tokenize", "content"),
    ),
    # Its server computes log-probabilities only for a model loaded with logits_all (n_ctx x vocabulary floats);
    # it decides through the probe: ``/extras/tokenize`` (at the root, not under /v1) and ``logit_bias``.
    "llama-cpp-python": Dialect(
        "llama-cpp-python",
        "toolrun",
        "/chat/completions",
        "/completions",
        lambda g: {"grammar": g},
        stream_usage=False,
        tokenize=TokenizeRoute("/extras/tokenize", "input"),
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
        policy: CallPolicy | None = None,
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
        #: As the local engine's (``toolrun`` parsing only): which calls a turn makes and keeps. Settings that
        #: read the model's logits beyond the first token (``ask_relevance``, ``another_call_threshold``)
        #: need a local engine.
        self.policy = policy = policy or CallPolicy()
        if (
            self.tool_parsing == "toolrun"
            and policy.call_threshold > 0
            and self.dialect.logprobs is None
            and self.dialect.tokenize is None
        ):
            log.warning(
                "%s: call_threshold needs token probabilities or a tokenizer, which %s lacks; the model's "
                "own choice is followed",
                model,
                self.dialect.name,
            )
        if policy.parallel_hint and self.tool_parsing == "native":
            # The server renders the prompt itself: there is no tool list of toolrun's to end with the hint.
            log.warning("%s: parallel_hint applies in tool_parsing 'toolrun' only; this entry runs without it", model)
        key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if self.dialect.llama_native:
            urls = [strip_v1(u) for u in urls]
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
        self.probe = FirstTokenProbe(self.format.inline_openers + self.format.start_openers)

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
            events = without_repeats(self._generate_native, request)
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
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [openai_message(m) for m in request.messages],
            "stream": True,
            "max_tokens": request.sampling.max_tokens,
            **self._sampling(request.sampling),
        }
        if self.dialect.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if request.uses_tools:
            body["tools"] = [openai_tool(t) for t in request.tools]
            choice = request.tool_choice
            body["tool_choice"] = openai_tool_choice(choice.name) if isinstance(choice, NamedTool) else choice
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
        if self.dialect.template_route is not None:
            reported = await self._reported_template(self.dialect.template_route)
            if reported is not None:
                return reported
        return choose_template(self.format, None, "", "")

    async def _reported_template(self, route: str) -> PromptTemplate | None:
        """The chat template the server reports at ``route``; None where an optional route is not served
        (vLLM without ``--enable-tokenizer-info-endpoint``): the format's fallback is used then, which on a
        small model moves the call-or-answer decision (the 0.5B's opener mass on the seed: 0.61 with its own
        template, 0.29 with ChatML's; docs/vllm.md).

        The lookup is retried as completions are (the pool's :meth:`~UpstreamPool.get`): the template found is
        kept for the engine's life, so a server still loading or briefly busy must not pin it to the fallback.
        Retries spent: an EngineError naming the failure, and the next request asks again."""
        upstream, response = await self.pool.get(route, what="the chat template")
        url = display_url(upstream.root_url + route)
        try:
            response.raise_for_status()
            props = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            why = f"not JSON ({type(exc).__name__})" if response.is_success else f"HTTP {response.status_code}"
            if self.dialect.template_optional:
                log.warning(
                    "%s: %s did not give the chat template (%s); rendering with the %s format's fallback "
                    "template (give the entry a chat_template, or start vLLM with --enable-tokenizer-info-endpoint)",
                    self.model, url, why, self.format.name,
                )  # fmt: skip
                return None
            raise EngineError(f"could not read the chat template from {url}: {why}") from None
        props = props if isinstance(props, Mapping) else {}
        reported, reported_eos = props.get("chat_template"), props.get("eos_token")
        if not isinstance(reported, str) and self.dialect.template_optional:
            return None
        return choose_template(
            self.format,
            reported if isinstance(reported, str) else None,
            reported_eos if isinstance(reported_eos, str) else "",
            url,
        )

    def _completion_body(
        self, prompt: str, request: GenerationRequest, grammar: str | None, max_tokens: int, *, calls: bool = False
    ) -> dict[str, Any]:
        stops = stop_strings(self.format)
        sampling = self._sampling(
            request.sampling.for_calls(self.policy.call_temperature) if calls else request.sampling
        )
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
        self, prompt: str, request: GenerationRequest, parser: StreamParser, gate: TurnGate
    ) -> bool | str | None:
        """The local engine's decision at the first token, by what the upstream offers: its
        log-probabilities of the first token, else a biased greedy probe (:mod:`._probe`).

        True: call (the model's probability of opening a call is at least ``call_threshold``).
        A string: answer in text, starting with the most likely token that opens no call (sampled
        at a temperature above 0). None: undecided (the model's own choice is followed).
        """
        if self.dialect.logprobs is not None:
            return await self._choice_from_logprobs(prompt, request, parser, gate)
        route = self.dialect.tokenize
        if route is None:
            return None

        async def tokenize(text: str) -> list[int] | None:
            return await self._tokenize(route, text)

        async def one_token(fields: Mapping[str, Any], greedy: bool) -> str | None:
            return await self._one_token(prompt, request, fields, greedy=greedy)

        return await self.probe.choose(gate, tokenize, one_token, request.sampling.temperature)

    async def _tokenize(self, route: TokenizeRoute, text: str) -> list[int] | None:
        """``text``'s token ids by the upstream's own tokenizer; None (logged) when it cannot say."""
        upstream = self.pool.pick()
        try:
            response = await upstream.client.post(upstream.root_url + route.path, json=route.body(text))
            response.raise_for_status()
            tokens = response.json().get("tokens")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.debug("%s%s: cannot tokenize (%s)", upstream.name, route.path, type(exc).__name__)
            return None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            return None
        return tokens

    async def _one_token(
        self, prompt: str, request: GenerationRequest, fields: Mapping[str, Any], *, greedy: bool
    ) -> str | None:
        """One token of ``prompt``'s completion with ``fields`` added (``greedy``: at temperature 0 on the
        raw logits, no penalties); its text, or None when nothing came back."""
        body = self._completion_body(prompt, request, None, 1)
        body.update(fields)
        if greedy:
            body.update(temperature=0.0, frequency_penalty=0.0, presence_penalty=0.0)
            if "repeat_penalty" in body:
                body["repeat_penalty"] = 1.0
        text: str | None = None
        payloads = self.pool.stream(self.dialect.completion_path, body)
        async with aclosing(payloads):
            async for payload in payloads:
                if self.dialect.llama_native:
                    piece = _llama_piece(payload).text
                else:
                    piece = "".join(c.get("text") or "" for c in payload.get("choices") or () if isinstance(c, Mapping))
                text = (text or "") + piece
        return text

    async def _choice_from_logprobs(
        self, prompt: str, request: GenerationRequest, parser: StreamParser, gate: TurnGate
    ) -> bool | str | None:
        """The decision from the first token's top log-probabilities (None: none came back)."""
        top: dict[str, float] | None = None
        probe = self._complete(prompt, request, None, 1, top_logprobs=DECISION_TOP_K)
        async with aclosing(probe):
            async for piece in probe:
                top = top or piece.top
        if not top:
            return None
        openers = self.format.inline_openers + self.format.start_openers + parser.extra_openers
        opening = {token for token in top if _may_open(token, openers)}
        if gate.decide(sum(math.exp(lp) for token, lp in top.items() if token in opening)):
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
            parallel_hint=self.policy.parallel_hint,
        ).defanged()
        constrains = self.dialect.grammar is not None
        # Built off the event loop: the schemas come from whoever sent the request.
        grammars = await asyncio.to_thread(self.grammars.for_request, request) if constrains else RequestGrammars()
        # Without a grammar a call cannot be continued or tried again: those settings wait for one.
        policy = self.policy if constrains else replace(self.policy, try_another_call=False, call_threshold=0.0)
        turn = _ToolrunTurn(
            self, request, prompt, grammars, TurnGate(policy, request, reads_logits=False, hold_each_call=True)
        )
        final: Event | None = None
        async for event in turn.run(constrains):
            if "usage" in event:
                final = event
            else:
                yield event
        if turn.gate.only_repeats:
            log.info("the model only repeated calls it has results for; answering without tools")
            async for event in self._generate_toolrun(replace(request, tool_choice="none")):
                yield event
        elif final is not None:
            yield final

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


class _ToolrunTurn:
    """One turn in toolrun's mode over completions: the same decisions as the local engine's
    (:class:`~toolrun.engines.turn.TurnGate`), carried out by asking for more completions — the call
    written again from its opener under the grammar, one more call tried after the last."""

    def __init__(
        self,
        engine: OpenAICompatibleEngine,
        request: GenerationRequest,
        prompt: str,
        grammars: RequestGrammars,
        gate: TurnGate,
    ) -> None:
        self.engine = engine
        self.request = request
        self.prompt = prompt
        self.grammars = grammars
        self.gate = gate
        self.parser = request.answer_parser(engine.format)
        self.tally = _Tally()
        self.text = ""  # everything the model wrote this turn (the continuation prompts build on it)
        self.starts: list[int] = []  # where each piece's text begins, to count the pieces before an opener
        self.calls_grammar = False  # whether the last completion wrote calls under the grammar
        self.stop: Verdict | None = None  # a held call was not kept: how the turn ends
        self.opener_at: int | None = None  # where the model opened a call after some text

    async def run(self, constrains: bool) -> AsyncGenerator[Event, None]:
        request = self.request
        grammar_text: str | None = None
        if request.must_call and constrains:
            grammar = _call_grammar(self.grammars)
            grammar_text = grammar.text
            self.parser.stream_arguments = grammar.exact
        elif self.grammars.schema is not None:
            grammar_text = self.grammars.schema
        watching = request.uses_tools and not request.must_call and constrains
        max_tokens = request.sampling.max_tokens
        if self.gate.deciding and isinstance(self.parser, StreamParser):
            choice = await self.engine._first_token_choice(self.prompt, request, self.parser, self.gate)
            if choice is True:  # a call it is: constrained from the first token
                grammar = _call_grammar(self.grammars)
                grammar_text = grammar.text
                self.parser.stream_arguments = grammar.exact
                watching = False
                self.calls_grammar = True
            elif isinstance(choice, str):  # an answer: it starts with a token that opens no call
                self.tally.add(_Piece(choice))
                self.starts.append(0)
                self.text = choice
                for event in self._pass(self.parser.feed(choice)):
                    yield event
                max_tokens = max(1, max_tokens - 1)
        async for event in self._completion(grammar_text, max_tokens, calls=self.calls_grammar, watch=watching):
            yield event
        if self.opener_at is not None:
            async for event in self._continue_from_opener(self.opener_at):
                yield event
        async for event in self._end():
            yield event

    async def _completion(
        self, grammar: str | None, max_tokens: int, *, calls: bool, watch: bool = False
    ) -> AsyncGenerator[Event, None]:
        """One completion of the prompt and what the turn wrote so far, its events through the gate;
        ``watch``: it stops where the model opens a call (:attr:`opener_at`)."""
        pieces = self.engine._complete(self.prompt + self.text, self.request, grammar, max_tokens, calls=calls)
        try:
            async for piece in pieces:
                self.tally.add(piece)
                if not piece.text:
                    continue
                self.starts.append(len(self.text))
                self.text += piece.text
                for event in self._pass(self.parser.feed(piece.text)):
                    yield event
                if self.stop is not None:
                    break
                if watch and self.parser.in_call_region:
                    self.opener_at = self.engine.format.find_opener(self.text, self._stream_parser().extra_openers)
                    break
        finally:
            await pieces.aclose()

    async def _continue_from_opener(self, opener_at: int) -> AsyncGenerator[Event, None]:
        """The model opened a call after some text: write it again from the opener, under the grammar."""
        kept = sum(1 for s in self.starts if s < opener_at)
        grammar = _call_grammar(self.grammars)
        parser = self._stream_parser()
        parser.reset_region()
        parser.stream_arguments = grammar.exact
        self.tally = self.tally.restart(kept)
        self.text = self.text[:opener_at]
        self.calls_grammar = True
        budget = max(1, self.request.sampling.max_tokens - kept)
        async for event in self._completion(grammar.text, budget, calls=True):
            yield event

    async def _end(self) -> AsyncGenerator[Event, None]:
        gate = self.gate
        if self.stop is Verdict.ANSWER_IN_TEXT:
            async for event in self.engine._answer_in_text(self.request):
                yield event
            return
        if self.stop is Verdict.END_BEFORE:
            yield self.tally.final(calls=bool(gate.sent_calls))
            return
        for event in self._pass(self.parser.finish(cut=self.tally.finish == "length")):
            yield event
        if gate.holding:  # the output ended inside a held call that never became whole
            for event in gate.flush():
                yield event
        if self.calls_grammar and self.tally.finish != "length" and self.request.may_add_calls:
            async for event in self._try_more_calls():
                yield event
        yield self.tally.final(calls=bool(gate.sent_calls))

    async def _try_more_calls(self) -> AsyncGenerator[Event, None]:
        """After the model's last call, ask for one more under the grammar; keep it while the gate keeps it."""
        if not self.gate.policy.try_another_call or not isinstance(self.parser, StreamParser):
            return
        grammar = _call_grammar(self.grammars)
        parser = self.parser
        separator = self.engine.format.call_separator
        budget = self.request.sampling.max_tokens - self.tally.completion_total()
        prompt = self.prompt + self.text
        while budget > 1:
            state = parser.snapshot()
            before = parser.calls_emitted
            self.gate.hold(first=False)
            self.gate.events(parser.feed(separator))
            written = separator
            pieces = 0
            trial = self.engine._complete(prompt + written, self.request, grammar.text, budget, calls=True)
            async with aclosing(trial):
                async for piece in trial:
                    pieces += bool(piece.text)
                    written += piece.text
                    self.gate.events(parser.feed(piece.text))
                    if parser.calls_emitted > before:
                        break
            if self.gate.held_call is None or self.gate.judge(after_text=True) is not Verdict.KEEP:
                self.gate.discard()
                parser.restore(state)
                return
            for event in self.gate.release():
                yield event
            self.tally.extra += pieces
            budget -= pieces
            prompt += written

    def _pass(self, events: list[Event]) -> list[Event]:
        """Events through the gate; a held call judged when whole (a turn that stopped passes nothing)."""
        if self.stop is not None:
            return []
        out = self.gate.events(events)
        while self.gate.held_call is not None:
            verdict = self.gate.judge(after_text=self.gate.text_sent)
            if verdict is not Verdict.KEEP:
                out += self.gate.discard()
                self.stop = verdict
                break
            out += self.gate.release()
        return out

    def _stream_parser(self) -> StreamParser:
        assert isinstance(self.parser, StreamParser)
        return self.parser


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


def _call_grammar(grammars: RequestGrammars) -> CallGrammar:
    assert grammars.call is not None  # built for every request with tools, which a call needs
    return grammars.call


__all__ = ["DIALECTS", "Dialect", "OpenAICompatibleEngine", "ToolParsing", "UpstreamKind", "dialect_for", "display_url"]


def _openai_top(logprobs: Any) -> dict[str, float] | None:
    """The first token's candidates from a completion's ``logprobs``, in either shape servers write:
    the legacy completions one (``top_logprobs: [{token: lp}]``: OpenAI, vLLM, SGLang) or the chat one
    (``content: [{top_logprobs: [{token, logprob}]}]``: llama-server's ``/v1/completions``)."""
    if not isinstance(logprobs, Mapping):
        return None
    tops = logprobs.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], Mapping):
        return {str(t): float(lp) for t, lp in tops[0].items() if isinstance(lp, int | float)}
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return _listed_top(content[0].get("top_logprobs"))
    return None


def _listed_top(items: Any) -> dict[str, float] | None:
    """Candidates listed as ``[{token, logprob}]``."""
    top: dict[str, float] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("logprob"), int | float):
            top[str(item.get("token", ""))] = float(item["logprob"])
    return top or None


def _llama_top(payload: Mapping[str, Any]) -> dict[str, float] | None:
    """The first token's candidates from llama.cpp's ``completion_probabilities`` (either of its shapes)."""
    probabilities = payload.get("completion_probabilities")
    if not isinstance(probabilities, list) or not probabilities or not isinstance(probabilities[0], Mapping):
        return None
    first = probabilities[0]
    top = _listed_top(first.get("top_logprobs")) or {}
    for item in first.get("probs") or first.get("top_probs") or ():  # older servers: probabilities
        p = item.get("prob") if isinstance(item, Mapping) else None
        if isinstance(p, int | float) and p > 0:
            top[str(item.get("tok_str", item.get("token", "")))] = math.log(p)
    return top or None


def _may_open(token: str, openers: tuple[str, ...]) -> bool:
    """Whether a first token begins one of the ways this format opens a call (tags, fences, bare JSON)."""
    return bool(token.strip()) and any(opener.startswith(token) for opener in openers)


def _openai_compatible_engine(spec: EngineSpec) -> OpenAICompatibleEngine:
    remote = spec.require_remote()
    timeouts, retry = connection_policy(remote)
    return OpenAICompatibleEngine(
        list(remote.base_urls),
        remote.model,
        api_key_env=remote.api_key_env,
        upstream=remote.upstream,
        tool_parsing=remote.tool_parsing,
        tool_format=spec.tool_format,
        chat_template=remote.chat_template,
        context_window=spec.context_window,
        policy=spec.policy,
        timeouts=timeouts,
        retry=retry,
    )


# Every dialect is an engine kind, chosen by a catalog entry's ``upstream``: a new flavour is one DIALECTS entry.
for _upstream in DIALECTS:
    register_engine(
        _upstream,
        _openai_compatible_engine,
        source="servers",
        aliases=[alias for alias, name in UPSTREAM_ALIASES.items() if name == _upstream],
    )
