"""The engine registry: one ``register_engine`` call makes a new engine kind, which the catalog's config
accepts and the binding builds, with no other change anywhere (issue #28, item 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from toolrun._errors import InvalidInputError
from toolrun.ai import AI, AsyncAI, Catalog
from toolrun.engines import Engine, EngineSpec, _registry, engine_kind, engine_names, register_engine
from toolrun.engines.scripted import ScriptedEngine, ScriptedReply


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kinds registered by a test end with it (the built-ins, loaded on first use, stay for the next)."""
    engine_names()  # load the built-ins into the real registry first
    monkeypatch.setattr(_registry, "_KINDS", dict(_registry._KINDS))


def recording(built: list[EngineSpec], text: str) -> Callable[[EngineSpec], Engine]:
    """A factory that notes each spec it is handed and answers ``text``."""

    def factory(spec: EngineSpec) -> Engine:
        built.append(spec)
        return ScriptedEngine([ScriptedReply(text)])

    return factory


def test_a_new_hosted_engine_is_one_call_and_the_catalog_takes_it(tmp_path) -> None:
    built: list[EngineSpec] = []
    register_engine("my-cloud", recording(built, "hello from my-cloud"), source="hosted")
    config = tmp_path / "config.toml"
    config.write_text('[models."@my/model"]\nprovider = "my-cloud"\nremote_model = "big-model"\nread_timeout = 9\n')
    catalog = Catalog.load(config)
    entry = catalog.get("@my/model")
    assert entry.engine == "my-cloud"
    assert entry.remote is not None and entry.remote.model == "big-model" and entry.remote.read_timeout == 9
    with AI(catalog=catalog, account_id="acct", api_token="secret-token") as ai:
        out = ai.run("@my/model", {"prompt": "hi"})
    assert out["response"] == "hello from my-cloud"
    (spec,) = built
    # The binding handed over the entry and the account it was given; a hosted kind has no weights.
    assert spec.name == "@my/model" and spec.remote == entry.remote and spec.weights is None
    assert (spec.account.account_id, spec.account.api_token) == ("acct", "secret-token")
    assert "secret-token" not in repr(spec)


async def test_a_new_upstream_flavour_is_one_call_aliases_included(tmp_path) -> None:
    built: list[EngineSpec] = []
    register_engine("my-server", recording(built, "served"), source="servers", aliases=["my-srv"])
    config = tmp_path / "config.toml"
    config.write_text(
        '[models."@my/served"]\nbase_url = ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]\n'
        'upstream = "my-srv"\nformat = "llama3_json"\ncontext_window = 4096\n'
    )
    ai = AsyncAI(catalog=Catalog.load(config))
    try:
        out = await ai.run("@my/served", {"messages": [{"role": "user", "content": "hi"}]})
    finally:
        await ai.aclose()
    assert out["response"] == "served"
    (spec,) = built
    assert spec.remote is not None and spec.remote.base_urls == ("http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1")
    assert (spec.tool_format, spec.context_window) == ("llama3_json", 4096)
    assert engine_kind("my-srv") is engine_kind("my-server")


def test_a_new_local_engine_runs_model_files(tmp_path) -> None:
    """A ``weights`` kind gets the file the binding found (``provider`` chooses it for a ``path`` entry)."""
    built: list[EngineSpec] = []
    register_engine("my-local", recording(built, "ran here"), source="weights")
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    config = tmp_path / "config.toml"
    config.write_text(f'[models."@my/file"]\nprovider = "my-local"\npath = "{weights}"\n')
    with AI(catalog=Catalog.load(config), n_threads=3) as ai:
        assert ai.run("@my/file", {"prompt": "hi"})["response"] == "ran here"
    (spec,) = built
    assert (spec.weights, spec.n_threads, spec.remote) == (str(weights), 3, None)


@pytest.mark.parametrize(
    ("fields", "where", "listed", "not_listed"),
    [
        ('provider = "azure"', "provider", ["local", "my-cloud", "workers-ai"], ["vllm"]),
        # A server flavour is an upstream, not a provider.
        ('provider = "vllm"\nbase_url = "http://x/v1"', "provider", ["my-cloud"], ["vllm"]),
        ('base_url = "http://x/v1"\nupstream = "tgi"', "upstream", ["llama-server", "my-server", "vllm"], ["local"]),
    ],
)
def test_unknown_kinds_are_refused_naming_the_registered_ones(
    tmp_path, fields: str, where: str, listed: list[str], not_listed: list[str]
) -> None:
    register_engine("my-cloud", recording([], ""), source="hosted")
    register_engine("my-server", recording([], ""), source="servers")
    config = tmp_path / "config.toml"
    config.write_text(f'[models."@my/x"]\n{fields}\n')
    with pytest.raises(InvalidInputError) as caught:
        Catalog.load(config)
    assert caught.value.where == f"{config}: models.'@my/x'.{where}"
    message = caught.value.message.partition(", not ")[0]
    assert all(name in message for name in listed), message
    assert not any(name in message.split(", ") for name in not_listed), message


def test_the_builtin_kinds() -> None:
    assert set(engine_names("servers")) == {
        "openai",
        "vllm",
        "sglang",
        "llama.cpp",
        "llama-server",
        "llamacpp",
        "llama-cpp-python",
        "llama_cpp.server",
    }
    assert engine_names("weights") == ["local"] and engine_names("hosted") == ["workers-ai"]
    assert engine_kind("llama-server") is engine_kind("llama.cpp")
