"""Server settings: defaults, the ``[server]`` table of the toolrun config file, validation.

::

    # ~/.config/toolrun/config.toml (or $TOOLRUN_CONFIG), beside [models] and [aliases]
    [server]
    host = "0.0.0.0"
    port = 8787
    api_keys = ["…"]              # bearer tokens; or api_keys_env = "MY_KEYS_VAR" (comma-separated)
    max_queue = 16
    max_tokens_cap = 2048
    max_body_bytes = 4194304
    preload = ["@local/qwen2.5-coder-0.5b-instruct"]
    allow_download = false        # true: a request may make the server download a model's weights
    cors_origins = ["http://localhost:5173"]   # web pages that may call the server from a browser
    header_timeout = 10.0         # seconds for a request's headers to arrive, then 408
    body_timeout = 30.0           # seconds for its body to arrive once the headers are in, then 408
    keepalive_interval = 5.0      # seconds a stream may stay silent before an SSE comment keeps it alive
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .._config import read_config
from .._errors import InvalidInputError
from ._http import BODY_TIMEOUT_S, HEADER_TIMEOUT_S
from ._streaming import KEEPALIVE_S


@dataclass(frozen=True)
class ServerConfig:
    #: Bearer tokens that are accepted. Empty: no auth, and only loopback clients are served.
    api_keys: tuple[str, ...] = ()
    #: Requests admitted per model at once (running plus waiting); the next one gets 429.
    max_queue: int = 16
    max_body_bytes: int = 4 * 1024 * 1024
    #: The largest ``max_tokens`` a request may ask for.
    max_tokens_cap: int = 2048
    #: Whether a request may start a download of a model's weights (the operator's ``--model`` always may).
    allow_download: bool = False
    #: Browser origins (``https://app.example``) allowed to call the server, with CORS headers.
    cors_origins: tuple[str, ...] = ()
    #: Seconds for a request's headers, then for its body, to arrive before a 408 closes the connection.
    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S
    #: Seconds a stream may wait for its first event, or stay silent, before an SSE comment keeps it alive.
    keepalive_interval: float = KEEPALIVE_S

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_body_bytes", "max_tokens_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"must be a whole number of at least 1, not {value!r}", where=name)
        for name in ("header_timeout", "body_timeout", "keepalive_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InvalidInputError(f"must be a positive number of seconds, not {value!r}", where=name)
        for origin in self.cors_origins:
            if origin != origin_of(origin):
                raise InvalidInputError(
                    f"{origin!r} is not an origin: write scheme://host[:port], e.g. http://localhost:5173",
                    where="cors_origins",
                )


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, lowercased, of a URL; "" when it has none (``null``, a bare word)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


_KEYS = {
    "host": str,
    "port": int,
    "api_keys": list,
    "api_keys_env": str,
    "max_queue": int,
    "max_tokens_cap": int,
    "max_body_bytes": int,
    "preload": list,
    "allow_download": bool,
    "cors_origins": list,
    "header_timeout": float,
    "body_timeout": float,
    "keepalive_interval": float,
}
_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", bool: "true or false", float: "a number"}


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def read_server_section(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``[server]`` table of the toolrun config file (``{}`` without one), checked, with keys resolved.

    ``api_keys_env`` names an environment variable holding comma-separated keys, so
    the file itself need not contain secrets; its keys are added to ``api_keys``.
    """
    file, tables = read_config(path)
    section = tables.get("server") or {}
    where = f"{file}: [server]"
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise InvalidInputError(f"unknown keys {unknown}; known keys: {sorted(_KEYS)}", where=where)
    for key, kind in _KEYS.items():
        if key in section and not _is_kind(section[key], kind):
            raise InvalidInputError(
                f"{key} must be {_KIND_NAMES[kind]}, not {type(section[key]).__name__}", where=where
            )
    settings = dict(section)
    keys = [str(k) for k in settings.pop("api_keys", [])]
    env_name = settings.pop("api_keys_env", None)
    if env_name:
        keys += [k.strip() for k in os.environ.get(env_name, "").split(",") if k.strip()]
    if keys:
        settings["api_keys"] = keys
    return settings
