"""The toolrun config file: where it is and how it is read (one reader for every table in it).

``$TOOLRUN_CONFIG``, or ``<user config dir>/toolrun/config.toml``. Its tables:
``[models]`` and ``[aliases]`` (the catalog, :mod:`toolrun.ai`) and
``[server]`` (``toolrun serve``, :mod:`toolrun.server`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

from ._errors import InvalidInputError


def config_path() -> Path:
    return Path(os.environ.get("TOOLRUN_CONFIG") or Path(platformdirs.user_config_dir("toolrun")) / "config.toml")


def read_config(path: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """The config file's path and its tables (``{}`` when there is no file)."""
    file = Path(path) if path is not None else config_path()
    if not file.exists():
        return file, {}
    try:
        return file, tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"cannot read the toolrun config {file}: {exc}") from None
