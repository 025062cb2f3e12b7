"""What the user asked to connect to: one checked ``ServerSpec`` per MCP server, before anything starts."""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..._errors import InvalidInputError
from .._patterns import compiled_pattern

#: What the model reads of one result, like the OpenAPI tools' ``max_response_bytes``.
MAX_RESPONSE_BYTES = 32 * 1024
#: Seconds one ``tools/call`` may take, like the OpenAPI tools' ``timeout``.
DEFAULT_TIMEOUT = 30.0
#: Seconds to start (or reach) a server and list its tools.
DEFAULT_CONNECT_TIMEOUT = 30.0

_PREFIX = re.compile(r"[a-zA-Z0-9_.:-]{0,100}")
_SERVER_KEYS = frozenset(
    {"command", "url", "headers", "env", "cwd", "prefix", "match_patterns", "timeout", "max_response_bytes"}
)


@dataclass(frozen=True)
class ServerSpec:
    """One MCP server: how to reach it, and how its tools are named, filtered and called."""

    label: str  # how messages name it: the command line, or the URL without credentials or query
    command: tuple[str, ...] | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    prefix: str = ""
    match_patterns: tuple[re.Pattern[str], ...] = ()
    timeout: float | None = DEFAULT_TIMEOUT
    max_response_bytes: int = MAX_RESPONSE_BYTES


def server_specs(
    *,
    command: Any,
    url: Any,
    headers: Any,
    env: Any,
    cwd: Any,
    prefix: Any,
    match_patterns: Any,
    servers: Any,
    timeout: Any,
    max_response_bytes: Any,
) -> list[ServerSpec]:
    """The specs for ``create_tools_from_mcp``'s arguments: one server by keywords, or ``servers=[...]``.

    Entries of ``servers`` take the same keys as the keywords; ``timeout`` and
    ``max_response_bytes`` given as keywords are their defaults.
    """
    defaults = {
        "timeout": _timeout(timeout, "timeout"),
        "max_response_bytes": _limit(max_response_bytes, "max_response_bytes"),
    }
    if servers is None:
        if command is None and url is None:
            raise InvalidInputError(
                "give an MCP server: command=[...] (stdio), url='http://…' (Streamable HTTP), or servers=[{...}, ...]",
                where="command",
            )
        return [
            _spec(
                {
                    "command": command,
                    "url": url,
                    "headers": headers,
                    "env": env,
                    "cwd": cwd,
                    "prefix": prefix,
                    "match_patterns": match_patterns,
                },
                defaults,
                "",
            )
        ]
    given = [
        name
        for name, value in (
            ("command", command),
            ("url", url),
            ("headers", headers),
            ("env", env),
            ("cwd", cwd),
            ("match_patterns", match_patterns),
        )
        if value is not None
    ]
    if prefix:
        given.append("prefix")
    if given:
        raise InvalidInputError(
            f"with servers=[...], give {', '.join(given)} inside each server's entry", where=given[0]
        )
    if isinstance(servers, (str, bytes, Mapping)) or not isinstance(servers, Iterable):
        raise InvalidInputError(
            "servers must be a list of server entries like {'command': [...]} or {'url': ...}", where="servers"
        )
    specs = []
    for i, entry in enumerate(servers):
        where = f"servers[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"a server entry must be a mapping, not {type(entry).__name__}", where=where)
        unknown = sorted(str(k) for k in entry if k not in _SERVER_KEYS)
        if unknown:
            raise InvalidInputError(f"unknown key(s) {unknown}; known: {sorted(_SERVER_KEYS)}", where=where)
        if "timeout" in entry:
            defaults_here = {**defaults, "timeout": _timeout(entry["timeout"], f"{where}.timeout")}
        else:
            defaults_here = defaults
        if "max_response_bytes" in entry:
            defaults_here = {
                **defaults_here,
                "max_response_bytes": _limit(entry["max_response_bytes"], f"{where}.max_response_bytes"),
            }
        specs.append(_spec(entry, defaults_here, f"{where}."))
    if not specs:
        raise InvalidInputError("servers is empty", where="servers")
    return specs


def _spec(entry: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> ServerSpec:
    command, url = entry.get("command"), entry.get("url")
    if (command is None) == (url is None):
        raise InvalidInputError(
            "give either command (stdio) or url (Streamable HTTP), not both"
            if command is not None
            else "give command (stdio) or url (Streamable HTTP)",
            where=f"{where}command",
        )
    headers = _str_mapping(entry.get("headers"), f"{where}headers")
    env = _str_mapping(entry.get("env"), f"{where}env")
    cwd = entry.get("cwd")
    prefix = entry.get("prefix") or ""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidInputError(
            "prefix must be up to 100 letters, digits, '_', '-', '.' or ':' (tool names allow no others)",
            where=f"{where}prefix",
        )
    patterns = tuple(
        compiled_pattern(p, f"{where}match_patterns[{i}]")
        for i, p in enumerate(_list(entry.get("match_patterns"), f"{where}match_patterns"))
    )
    common = {"prefix": prefix, "match_patterns": patterns, **defaults}
    if command is not None:
        if headers:
            raise InvalidInputError(
                "headers are for url= servers; a command gets env= instead", where=f"{where}headers"
            )
        argv = _argv(command, f"{where}command")
        if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
            raise InvalidInputError("cwd must be a path", where=f"{where}cwd")
        return ServerSpec(
            label=shlex.join(argv),
            command=argv,
            env=env or None,
            cwd=os.fspath(cwd) if cwd is not None else None,
            **common,
        )
    if env or cwd is not None:
        raise InvalidInputError(
            "env and cwd are for command= servers (a process toolrun starts)", where=f"{where}{'env' if env else 'cwd'}"
        )
    return ServerSpec(label=_url_label(url, f"{where}url"), url=url, headers=headers, **common)


def _argv(command: Any, where: str) -> tuple[str, ...]:
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise InvalidInputError(f"cannot split the command line: {exc}", where=where) from None
    elif isinstance(command, Sequence) and not isinstance(command, bytes):
        argv = list(command)
    else:
        raise InvalidInputError(
            f"command must be a list of arguments or a command line, not {type(command).__name__}", where=where
        )
    if not argv:
        raise InvalidInputError("command is empty", where=where)
    for i, arg in enumerate(argv):
        if isinstance(arg, os.PathLike):
            arg = argv[i] = os.fspath(arg)
        if not isinstance(arg, str) or "\0" in arg:
            raise InvalidInputError("every argument must be a string without NUL characters", where=f"{where}[{i}]")
    return tuple(argv)


def _url_label(url: Any, where: str) -> str:
    if not isinstance(url, str):
        raise InvalidInputError(f"url must be a string, not {type(url).__name__}", where=where)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidInputError(f"not a valid URL: {exc}", where=where) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError("url must be an http:// or https:// URL of the server's MCP endpoint", where=where)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))  # never credentials or a token in a query


def _str_mapping(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"must be a mapping of names to strings, not {type(value).__name__}", where=where)
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidInputError(f"names and values must be strings; {key!r}: {type(item).__name__}", where=where)
        if any(c in key + item for c in "\r\n\0"):
            raise InvalidInputError(f"{key!r} has a line break or NUL character", where=where)
    return dict(value)


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, re.Pattern)):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        return list(value)
    raise InvalidInputError("match_patterns must be a list of regular expressions", where=where)


def _timeout(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidInputError(f"must be a positive number of seconds, or None; got {value!r}", where=where)
    return float(value)


def _limit(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"must be a positive number of bytes; got {value!r}", where=where)
    return value


def connect_timeout(value: Any) -> float:
    checked = _timeout(value, "connect_timeout")
    if checked is None:
        raise InvalidInputError("must be a positive number of seconds", where="connect_timeout")
    return checked
