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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._config import read_config
from .._errors import InvalidInputError


@dataclass(frozen=True)
class ServerConfig:
    #: Bearer tokens that are accepted. Empty: no auth, and only loopback clients are served.
    api_keys: tuple[str, ...] = ()
    #: Requests admitted per model at once (running plus waiting); the next one gets 429.
    max_queue: int = 16
    max_body_bytes: int = 4 * 1024 * 1024
    #: The largest ``max_tokens`` a request may ask for.
    max_tokens_cap: int = 2048

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_body_bytes", "max_tokens_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"must be a whole number of at least 1, not {value!r}", where=name)


_KEYS = {
    "host": str,
    "port": int,
    "api_keys": list,
    "api_keys_env": str,
    "max_queue": int,
    "max_tokens_cap": int,
    "max_body_bytes": int,
    "preload": list,
}
_KIND_NAMES = {str: "a string", int: "an integer", list: "a list"}


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
        if key in section and (not isinstance(section[key], kind) or isinstance(section[key], bool)):
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
