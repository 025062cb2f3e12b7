"""Facts about the package's shape that anyone can check with ``ast``: layers import only downward, no
module imports itself back through others, functions stay short, and both engines drive the one turn policy."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "toolrun"

#: Lower first: a module may import from its own layer and the ones before it.
LAYERS = ["", "formats", "engines", "ai", "tools", "embedded", "eval", "server", "cli"]
#: Layers side by side (neither imports the other).
PEERS = {"tools": 4, "embedded": 4, "eval": 4, "server": 4}
MAX_FUNCTION_LINES = 80


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every toolrun module ``name`` imports (at any depth: function-level imports count), with the line."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("toolrun"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("toolrun"):
                yield target, node.lineno
                for alias in node.names:  # ``from . import x`` may name a module
                    yield f"{target}.{alias.name}", node.lineno


def known(target: str, names: set[str]) -> str | None:
    while target and target not in names:
        target = target.rpartition(".")[0]
    return target or None


def layer(module: str) -> int:
    if module == "toolrun.__main__":  # ``python -m toolrun``: the command line's entry point
        return LAYERS.index("cli")
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 and not parts[1].startswith("_") else ""
    return PEERS.get(top, LAYERS.index(top) if top in LAYERS else 0)


@functools.cache
def graph() -> dict[str, set[tuple[str, int]]]:
    found = dict(modules())
    names = set(found)
    edges: dict[str, set[tuple[str, int]]] = {name: set() for name in names}
    for name, path in found.items():
        for target, line in imports(name, path):
            module = known(target, names)
            if module is not None and module != name:
                edges[name].add((module, line))
    return edges


def test_layers_import_only_downward() -> None:
    upward = [
        f"{name}:{line} imports {target}"
        for name, targets in graph().items()
        for target, line in targets
        if layer(target) > layer(name) and not (name == "toolrun" or target.startswith(name + "."))
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = {name: {target for target, _ in targets} for name, targets in graph().items()}
    # A package's __init__ re-exports its children, and a child importing a sibling through the package is
    # the same as importing the sibling: cycles through a package's own __init__ are not counted.
    for name in edges:
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def function_lengths() -> Iterator[tuple[str, int]]:
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    body = body[1:]  # the docstring does not count
                if body:
                    end = max(getattr(n, "end_lineno", 0) or 0 for n in ast.walk(node))
                    yield f"{name}.{node.name}:{node.lineno}", end - body[0].lineno + 1


def test_no_function_is_longer_than_80_lines() -> None:
    long = [f"{where} is {lines} lines" for where, lines in function_lengths() if lines > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_both_engines_drive_the_one_turn_policy() -> None:
    edges = graph()
    for engine in ("toolrun.engines.llamacpp", "toolrun.engines.remote"):
        reached = {t for name, targets in edges.items() if name.startswith(engine) for t, _ in targets}
        assert any(t.startswith("toolrun.engines.turn") for t in reached), engine
