"""Checks that a value is plain, bounded JSON before anything walks it recursively.

Inputs reach toolrun as Python objects (``AI.run`` callers) or as parsed HTTP
bodies. Either way they may be hostile or careless: nested thousands deep
(``RecursionError`` deep inside jsonschema or ``json.dumps``), containing
themselves (``ValueError: Circular reference``), sharing sub-objects so that
a few kilobytes expand to gigabytes when serialised (YAML aliases, Python
references), holding a lone UTF-16 surrogate that no encoder accepts, or
carrying ``NaN``. :func:`check_json` walks the value once, iteratively, and
turns each of these into an :class:`~toolrun.InvalidInputError` that names
the place — so nothing later has to defend against them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidInputError

#: Deeper than any real request or tool schema (GitHub's REST description peaks near 30),
#: and shallow enough for recursive code (jsonschema, chat templates) to stay far from Python's limit.
MAX_DEPTH = 100
#: Nodes visited, counting a shared sub-object each time it is reached: what serialising the
#: value would produce. A 4 MiB JSON body holds at most about a million.
MAX_NODES = 1_000_000


def path_text(base: str, parts: tuple[Any, ...] | list[Any]) -> str:
    """``tools[0].parameters`` + ``("properties", "city")`` → ``tools[0].parameters.properties.city``."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def check_json(
    value: Any, where: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES, opaque: tuple[type, ...] = ()
) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is a finite JSON tree within the limits.

    Dicts (any ``Mapping``) need string keys; lists and tuples are arrays; strings must
    be encodable as UTF-8; numbers finite. Instances of ``opaque`` types are accepted
    without looking inside (tool objects that carry code, say).
    """
    nodes = 0
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(value, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise InvalidInputError(
                f"is too large: more than {max_nodes:,} JSON values once shared parts are counted "
                "each time they appear",
                where=where,
            )
        if node is None or isinstance(node, (bool, int)):
            continue
        if isinstance(node, str):
            if not node.isascii():
                _check_unicode(node, where, path)
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidInputError(
                    f"{node!r} is not a JSON number; use a finite number", where=path_text(where, path)
                )
            continue
        if opaque and isinstance(node, opaque):
            continue
        if isinstance(node, (Mapping, list, tuple)):
            if depth >= max_depth:
                # A value that contains itself is infinitely deep: it ends up here too.
                loop = _first_repeat(value, path)
                if loop is not None:
                    raise InvalidInputError("contains itself (a circular reference)", where=path_text(where, loop))
                shown = path_text(where, path[:8]) + ("…" if len(path) > 8 else "")
                raise InvalidInputError(f"is nested more than {max_depth} levels deep", where=shown)
            if isinstance(node, Mapping):
                for key, child in node.items():
                    if not isinstance(key, str):
                        raise InvalidInputError(f"has a key {key!r} that is not a string", where=path_text(where, path))
                    if not key.isascii():
                        _check_unicode(key, where, path)
                    stack.append((child, (*path, key), depth + 1))
            else:
                for index, child in enumerate(node):
                    stack.append((child, (*path, index), depth + 1))
            continue
        raise InvalidInputError(
            f"must be JSON (a string, number, boolean, null, object or array), not {type(node).__name__}",
            where=path_text(where, path),
        )


def _first_repeat(root: Any, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The shortest prefix of ``path`` that leads back to a container already on it, if any."""
    seen = {id(root)}
    current = root
    for length, part in enumerate(path, 1):
        current = current[part]
        if id(current) in seen:
            return path[:length]
        seen.add(id(current))
    return None


def _check_unicode(text: str, where: str, path: tuple[Any, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise InvalidInputError(
            f"has a lone surrogate {bad!r} at character {exc.start}, which is not valid Unicode text",
            where=path_text(where, path),
        ) from None
