"""The binding (``AI`` / ``AsyncAI``) and the model catalog."""

from .._config import config_path
from ..engines import RemoteEndpoint
from ._binding import AI, AsyncAI, collect
from ._catalog import BUILTIN_MODELS, DEFAULT_MODEL, Catalog, ModelEntry
from ._fetch import HuggingFaceFile, Progress, PyPIShards, cache_dir, hf_cached_path
from ._inputs import ResultInputs, RunInputs, StreamInputs, parse_inputs

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
    "ResultInputs",
    "RunInputs",
    "StreamInputs",
    "cache_dir",
    "collect",
    "config_path",
    "hf_cached_path",
    "parse_inputs",
]
