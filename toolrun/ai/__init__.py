"""The binding (``AI`` / ``AsyncAI``) and the model catalog."""

from .._config import config_path
from ._binding import AI, AsyncAI, collect
from ._catalog import BUILTIN_MODELS, DEFAULT_MODEL, Catalog, ModelEntry, RemoteEndpoint
from ._fetch import HuggingFaceFile, Progress, PyPIShards, cache_dir, hf_cached_path
from ._inputs import RunInputs

__all__ = [
    "AI",
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "AsyncAI",
    "Catalog",
    "HuggingFaceFile",
    "ModelEntry",
    "Progress",
    "PyPIShards",
    "RemoteEndpoint",
    "RunInputs",
    "cache_dir",
    "collect",
    "config_path",
    "hf_cached_path",
]
