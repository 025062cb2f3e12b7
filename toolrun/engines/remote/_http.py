"""Talking to upstreams: pooled clients, routing, passive health checks and retries.

One :class:`UpstreamPool` serves one model on one or more base URLs. Each base
URL gets its own pooled ``httpx.AsyncClient`` (keep-alive connections, connect
and read timeouts). A request goes to the upstream with the fewest requests in
flight; one that keeps failing is set aside for a cool-down (doubling while it
keeps failing) and then tried again — no active probing, the traffic itself is
the health check.

Retries (exponential backoff with full jitter) cover connection failures, 429
(after its ``Retry-After``) and 502/503/504, and also a stream that broke
before its first payload — never one that already delivered a payload, since
its tokens may have reached the caller. :meth:`UpstreamPool.get` (a server's own
routes at its root, such as the chat template) goes through the same retries and
health checks. Errors name the upstream by its URL
without credentials; the API key lives only in the clients' headers, which
httpx masks in reprs, and is never logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..._errors import EngineError, OverloadedError, ToolrunError
from .._registry import RemoteEndpoint

log = logging.getLogger("toolrun.engines.remote")

#: Answers worth another try: the upstream is busy or a proxy in front of it could not reach it.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: How much of an error body is read (error messages are short; a misbehaving upstream is not).
MAX_ERROR_BODY = 64 * 1024
#: How much of a server's own route is read (a chat template runs to tens of KB; toolrun refuses one over
#: a million characters anyway).
MAX_ROUTE_BODY = 8 * 1024 * 1024

#: What one attempt of a request gives back (an opened stream, a whole answer).
T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``read`` is the longest silence between bytes: a long prompt's prefill is silent."""

    connect: float = 5.0
    read: float = 300.0
    write: float = 30.0
    pool: float = 60.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class RetryPolicy:
    #: Further attempts after the first.
    max_retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 4.0
    #: A 429 asking for a longer wait than this is passed to the caller as OverloadedError at once.
    max_retry_after: float = 30.0
    #: Consecutive failures that set an upstream aside.
    failures_to_eject: int = 2
    #: How long it stays aside the first time; doubles while it keeps failing, up to ``cooldown_max``.
    cooldown: float = 5.0
    cooldown_max: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (AWS architecture blog's recipe)."""
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2**attempt))


def connection_policy(remote: RemoteEndpoint) -> tuple[Timeouts, RetryPolicy]:
    """A catalog entry's timeouts and retries, the defaults where it sets none."""
    defaults = Timeouts()
    timeouts = Timeouts(connect=remote.connect_timeout or defaults.connect, read=remote.read_timeout or defaults.read)
    retry = RetryPolicy() if remote.max_retries is None else RetryPolicy(max_retries=remote.max_retries)
    return timeouts, retry


def strip_v1(url: str) -> str:
    """A base URL's server root: less a trailing ``/v1`` (the OpenAI-compatible routes' prefix)."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def display_url(url: str) -> str:
    """A URL fit for messages and logs: no user info, no query string, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class Upstream:
    """One base URL: its pooled client, its requests in flight, its health."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, position: int) -> None:
        self.base_url = base_url.rstrip("/")
        #: Where the servers' own routes are (``/props``, ``/tokenizer_info``, ``/tokenize``).
        self.root_url = strip_v1(self.base_url)
        self.name = display_url(self.base_url)
        self.client = client
        self.position = position
        self.in_flight = 0
        self.failures = 0
        self.down_until = 0.0
        self.busy_until = 0.0

    def available_at(self) -> float:
        return max(self.down_until, self.busy_until)

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, in_flight={self.in_flight}, failures={self.failures})"


#: Turns an upstream's error answer (status, body) into the toolrun error to raise.
ErrorReader = Callable[[str, int, bytes], ToolrunError]
#: Recognises an error sent as a stream payload (after a 200), or returns None.
PayloadError = Callable[[str, Mapping[str, Any]], ToolrunError | None]


class UpstreamPool:
    """Several base URLs serving one model; see the module doc."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        read_error: ErrorReader,
        payload_error: PayloadError | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        secrets: Sequence[str] = (),
    ) -> None:
        if not base_urls:
            raise ValueError("an upstream pool needs at least one base URL")
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._read_error = read_error
        self._payload_error = payload_error
        self._clock = clock
        self._turn = 0
        # Idle connections are dropped before the servers drop theirs (uvicorn, under vLLM and SGLang, and
        # llama-server after 5 s, httpx's default too): a request sent on a connection the server is closing
        # fails before its first byte.
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=2.0
        )
        self.upstreams = []
        #: What must never show in an error: the key, and passwords written into base URLs.
        self._secrets = [s for s in secrets if s]
        for i, url in enumerate(base_urls):
            # Credentials in a URL would reach httpx's request log: move them to a Basic auth header.
            parts = urlsplit(url)
            auth = None
            if parts.username or parts.password:
                auth = httpx.BasicAuth(parts.username or "", parts.password or "")
                self._secrets.extend(p for p in (parts.password,) if p)
                url = urlunsplit(
                    (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment)
                )
            client = httpx.AsyncClient(
                headers=dict(headers or {}),
                auth=auth,
                timeout=self.timeouts.as_httpx(),
                limits=limits,
                transport=transport,
                trust_env=False,
            )
            self.upstreams.append(Upstream(url, client, i))

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.upstreams]

    def __repr__(self) -> str:
        return f"UpstreamPool({self.names!r})"

    # ------------------------------------------------------------ routing

    def pick(self, avoid: set[Upstream] | frozenset[Upstream] = frozenset()) -> Upstream:
        """The available upstream with the fewest requests in flight (ties in turn).

        ``avoid`` holds those that already failed this request; they are used only when
        nothing else is left. When every candidate is set aside, the one that comes back
        first is tried anyway: refusing outright would never notice it has recovered.
        """
        now = self._clock()
        candidates = [u for u in self.upstreams if u not in avoid] or self.upstreams
        ready = [u for u in candidates if u.available_at() <= now]
        self._turn += 1
        n = len(self.upstreams)
        if ready:
            return min(ready, key=lambda u: (u.in_flight, (u.position - self._turn) % n))
        return min(candidates, key=lambda u: (u.available_at(), u.in_flight))

    def _succeeded(self, upstream: Upstream) -> None:
        if upstream.failures >= self.retry.failures_to_eject:
            log.info("upstream %s answers again", upstream.name)
        upstream.failures = 0
        upstream.down_until = 0.0

    def _failed(self, upstream: Upstream, why: str) -> None:
        upstream.failures += 1
        over = upstream.failures - self.retry.failures_to_eject
        if over >= 0:
            cooldown = min(self.retry.cooldown_max, self.retry.cooldown * 2**over)
            upstream.down_until = self._clock() + cooldown
            log.warning(
                "upstream %s failed %d times in a row (%s); setting it aside for %.0f s",
                upstream.name,
                upstream.failures,
                why,
                cooldown,
            )

    # ----------------------------------------------------------- requests

    async def stream(self, path: str, body: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """POST ``body`` to ``path`` and yield each JSON payload of the answer.

        An ``text/event-stream`` answer yields one payload per ``data:`` event until
        ``[DONE]``; any other answer is one JSON document, yielded whole. Retries
        happen only before the first payload is yielded (see the module doc).
        Closing the iterator closes the upstream connection, which stops generation there.
        """
        try:
            async with (
                self._answered(lambda upstream: self._open_stream(upstream, path, body)) as (upstream, opened),
                opened.closing,
            ):
                if opened.first is None:
                    return
                yield opened.first
                try:
                    async for payload in opened.payloads:
                        self._check_payload(upstream, payload)
                        yield payload
                except (httpx.TransportError, httpx.StreamError, _BadPayloadError) as exc:
                    reason = _describe(exc, self.timeouts)
                    self._failed(upstream, reason)
                    raise EngineError(
                        f"the upstream {upstream.name} failed mid-answer ({reason}); an answer "
                        "that has started is not retried"
                    ) from None
                except _RefusedError as refusal:
                    raise refusal.error from None
        except _GaveUpError as gave_up:
            raise gave_up.error from None

    async def get(self, route: str, *, what: str) -> tuple[Upstream, httpx.Response]:
        """GET ``route`` at an upstream's root (its base URL less a trailing ``/v1``), retried as
        :meth:`stream`'s requests are, and counted in the upstreams' health likewise.

        Returns the first answer that is not retried, whatever its status: the caller reads it (a 404 is
        an answer). When the retries are spent, raises an EngineError that says it ``could not read
        {what}`` from the URL and why ("HTTP 503", "cannot connect"), never the body or a credential.
        """
        try:
            async with self._answered(lambda upstream: self._get_once(upstream, route)) as answered:
                return answered
        except _GaveUpError as gave_up:
            url = display_url(gave_up.upstream.root_url + route)
            raise EngineError(f"could not read {what} from {url}: {gave_up.reason}") from None

    @asynccontextmanager
    async def _answered(self, send: Callable[[Upstream], Awaitable[T]]) -> AsyncIterator[tuple[Upstream, T]]:
        """The retry loop every request shares: ``send`` makes one attempt at the upstream given, and fails
        it by raising a transport error, ``_BadPayloadError`` or ``_RefusedError``. Gives the upstream that
        answered and what ``send`` returned, the request still counted in flight there until the block
        ends; raises ``_GaveUpError`` when the failure is not one to retry or the retries are spent.
        """
        tried: set[Upstream] = set()
        attempt = 0
        stale_retried = False
        while True:
            upstream = self.pick(tried)
            # Everyone left is set aside or busy. A set-aside upstream is tried at once (only traffic
            # tells whether it is back); a busy one asked for time with Retry-After, which is honoured.
            wait = upstream.busy_until - self._clock()
            if wait > 0:
                await asyncio.sleep(min(wait, self.retry.max_retry_after))
            upstream.in_flight += 1
            try:
                answer = await send(upstream)
                break
            except (httpx.TransportError, httpx.StreamError, _BadPayloadError) as exc:
                upstream.in_flight -= 1
                if not stale_retried and _closed_before_answering(exc):
                    # A kept-alive connection the server had just closed (llama-server closes one after a
                    # few requests): nothing is wrong with the upstream; send it again at once, once.
                    stale_retried = True
                    log.debug("upstream %s closed a kept-alive connection; sending again", upstream.name)
                    continue
                delay = self._after_transport_failure(upstream, exc, attempt)
            except _RefusedError as refusal:
                upstream.in_flight -= 1
                delay = self._after_refusal(upstream, refusal, attempt)
            except BaseException:
                upstream.in_flight -= 1
                raise
            tried.add(upstream)
            attempt += 1
            if self._other_ready(upstream, tried):
                delay = 0.0  # another upstream is ready: go there now
            await asyncio.sleep(delay)
        self._succeeded(upstream)
        try:
            yield upstream, answer
        finally:
            upstream.in_flight -= 1

    def _after_transport_failure(self, upstream: Upstream, exc: Exception, attempt: int) -> float:
        """The wait before the next attempt after the connection failed; raises ``_GaveUpError`` instead
        when a read timed out (the upstream may be working on it) or the retries are spent."""
        reason = _describe(exc, self.timeouts)
        self._failed(upstream, reason)
        if not _retryable_transport(exc) or attempt >= self.retry.max_retries:
            raise _GaveUpError(upstream, reason, EngineError(f"the upstream {upstream.name} failed: {reason}"))
        delay = self.retry.backoff(attempt)
        log.warning("upstream %s: %s; retrying in %.2f s", upstream.name, reason, delay)
        return delay

    def _after_refusal(self, upstream: Upstream, refusal: _RefusedError, attempt: int) -> float:
        """The wait before the next attempt after an error answer; raises ``_GaveUpError`` instead when
        it is not one to retry, asks for a longer wait than the cap, or the retries are spent."""
        error = refusal.error
        reason = f"HTTP {refusal.status}" if refusal.status else error.message
        if isinstance(error, OverloadedError):
            # Busy, not broken: honour its Retry-After, and meanwhile prefer the others.
            if refusal.retry_after is not None and refusal.retry_after > self.retry.max_retry_after:
                raise _GaveUpError(upstream, reason, error)
            delay = refusal.retry_after if refusal.retry_after is not None else self.retry.backoff(attempt)
            upstream.busy_until = self._clock() + delay
        elif refusal.status in RETRYABLE_STATUS:
            self._failed(upstream, f"HTTP {refusal.status}")
            delay = self.retry.backoff(attempt)
        else:
            raise _GaveUpError(upstream, reason, error)
        if attempt >= self.retry.max_retries:
            raise _GaveUpError(upstream, reason, error)
        log.warning("upstream %s: %s; retrying in %.2f s", upstream.name, error.message, delay)
        return delay

    async def _open_stream(self, upstream: Upstream, path: str, body: Mapping[str, Any]) -> _OpenStream:
        """One attempt of :meth:`stream`: the POST sent, its status checked and its first payload read
        (the answer left open for the rest); closed again when any of that fails."""
        closing = AsyncExitStack()
        try:
            response = await closing.enter_async_context(
                upstream.client.stream("POST", upstream.base_url + path, json=body)
            )
            if response.status_code >= 400:
                raise await self._refusal(upstream, response)
            payloads = await closing.enter_async_context(aclosing(_payloads(response)))
            first = await anext(payloads, None)
            if first is not None:
                self._check_payload(upstream, first)
            return _OpenStream(closing, payloads, first)
        except BaseException:
            await closing.aclose()
            raise

    async def _get_once(self, upstream: Upstream, route: str) -> httpx.Response:
        """One attempt of :meth:`get`: only the statuses worth another try are refusals here. The answer is
        read up to ``MAX_ROUTE_BODY``: past it, an EngineError (a misbehaving server, not one to retry)."""
        async with upstream.client.stream("GET", upstream.root_url + route) as response:
            if response.status_code in RETRYABLE_STATUS:
                raise await self._refusal(upstream, response)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ROUTE_BODY:
                    url = display_url(upstream.root_url + route)
                    raise EngineError(f"{url} answered more than {MAX_ROUTE_BODY // 2**20} MiB; not read further")
        return httpx.Response(
            response.status_code, headers=response.headers, content=bytes(body), request=response.request
        )

    def _check_payload(self, upstream: Upstream, payload: Mapping[str, Any]) -> None:
        """Raises ``_RefusedError`` for an error sent as a stream payload (after a 200), its secrets masked."""
        if self._payload_error is None:
            return
        in_stream = self._payload_error(upstream.name, payload)
        if in_stream is not None:
            if self._secrets:
                redacted = json.loads(self._redact(json.dumps(payload)))
                in_stream = self._payload_error(upstream.name, redacted) or in_stream
            raise _RefusedError(in_stream, 0, getattr(in_stream, "retry_after", None))

    def _other_ready(self, failed: Upstream, tried: set[Upstream]) -> bool:
        now = self._clock()
        return any(u is not failed and u not in tried and u.available_at() <= now for u in self.upstreams)

    async def _refusal(self, upstream: Upstream, response: httpx.Response) -> _RefusedError:
        body = b""
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass  # the status line is enough
        text = self._redact(body[:MAX_ERROR_BODY].decode("utf-8", "replace"))
        error = self._read_error(upstream.name, response.status_code, text.encode())
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if isinstance(error, OverloadedError) and retry_after is not None:
            error.retry_after = retry_after
        return _RefusedError(error, response.status_code, retry_after)

    def _redact(self, text: str) -> str:
        """An upstream may echo what it was sent (a proxy's error page quoting headers): mask the secrets."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        for upstream in self.upstreams:
            await upstream.client.aclose()


class _RefusedError(Exception):
    """The upstream answered with an error (a status >= 400, or an error payload in the stream)."""

    def __init__(self, error: ToolrunError, status: int, retry_after: float | None) -> None:
        self.error = error
        self.status = status
        self.retry_after = retry_after
        super().__init__(error.message)


class _GaveUpError(Exception):
    """No attempt is left: ``error`` is what :meth:`UpstreamPool.stream` raises, ``reason`` a short why
    ("HTTP 503", "cannot connect") for requests that word their own error."""

    def __init__(self, upstream: Upstream, reason: str, error: ToolrunError) -> None:
        self.upstream = upstream
        self.reason = reason
        self.error = error
        super().__init__(reason)


@dataclass
class _OpenStream:
    """A streamed answer that got past its first payload (None when it had none): ``closing`` closes it."""

    closing: AsyncExitStack
    payloads: AsyncGenerator[dict[str, Any], None]
    first: dict[str, Any] | None


class _BadPayloadError(Exception):
    """The upstream sent something that is not JSON where JSON was due."""


async def _payloads(response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        raw = await response.aread()
        yield _decode(raw.decode("utf-8", "replace"))
        return
    data: list[str] = []
    done = False
    async for line in response.aiter_lines():
        if done:
            continue  # read to the end, so that the connection goes back to the pool (servers end right here)
        if line == "":
            if data:
                text = "\n".join(data)
                data = []
                if text.strip() == "[DONE]":
                    done = True
                    continue
                yield _decode(text)
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive ping)
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data and not done and "\n".join(data).strip() != "[DONE]":
        yield _decode("\n".join(data))


def _decode(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _BadPayloadError(f"not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise _BadPayloadError(f"a JSON {type(value).__name__} where an object was due")
    return value


def _retryable_transport(exc: Exception) -> bool:
    # A read timeout means the upstream is working on it (or stuck): sending the same request
    # again would double its load. Connection failures and answers cut short are retried.
    return not isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout)


def _closed_before_answering(exc: BaseException) -> bool:
    """The server closed the connection without a byte of answer (httpcore's own wording for it)."""
    return isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc)


def _describe(exc: Exception, timeouts: Timeouts) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {timeouts.connect:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no data for {timeouts.read:g} s"
    if isinstance(exc, httpx.PoolTimeout):
        return "every connection to it is busy"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "the connection closed before the answer was complete"
    if isinstance(exc, _BadPayloadError):
        return f"it sent a payload that is {exc}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_text(body: bytes, limit: int = 500) -> str:
    """A short, printable excerpt of an error body."""
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = [
    "RETRYABLE_STATUS",
    "RetryPolicy",
    "Timeouts",
    "Upstream",
    "UpstreamPool",
    "display_url",
    "error_text",
    "parse_retry_after",
    "strip_v1",
]
