"""No test asserts how fast something ran: a busy machine must not fail a test.

Speed is measured side by side in ``bench/``. A time bound is allowed only as a hang guard, at
least ten times the normal time, and says so with a ``# hang guard`` comment on the assert's line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time"}
TIME_LIKE_NAME = re.compile(r"elapsed|duration|took|waited|seconds|latency", re.IGNORECASE)
MARKER = re.compile(r"#.*hang guard", re.IGNORECASE)
#: Bounds this large are timeouts, not speed checks: no machine is that busy.
LARGEST_SPEED_BOUND_S = 600


def _is_clock_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in CLOCKS


def _timed_names(scope: ast.AST) -> set[str]:
    """Names assigned from a clock reading, or from another such name, anywhere in ``scope``."""
    assigns = [
        (node.targets if isinstance(node, ast.Assign) else [node.target], node.value)
        for node in ast.walk(scope)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value is not None
    ]
    names: set[str] = set()
    while True:
        found = {
            target.id
            for targets, value in assigns
            if _is_timed(value, names)
            for target in targets
            if isinstance(target, ast.Name)
        }
        if found <= names:
            return names
        names |= found


def _is_timed(node: ast.AST, names: set[str]) -> bool:
    return any(
        _is_clock_call(sub)
        or (isinstance(sub, ast.Name) and (sub.id in names or TIME_LIKE_NAME.search(sub.id) is not None))
        for sub in ast.walk(node)
    )


def _is_small_bound(node: ast.AST) -> bool:
    """A number of seconds written in the test (a deadline compared with the clock is not a speed check)."""
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float) and node.value < LARGEST_SPEED_BOUND_S


def _upper_time_bounds(test: ast.AST, names: set[str]) -> bool:
    """Whether ``test`` holds ``timed < bound`` or ``bound > timed``; lower bounds are fine."""
    for compare in (n for n in ast.walk(test) if isinstance(n, ast.Compare)):
        sides = [compare.left, *compare.comparators]
        for left, op, right in zip(sides, compare.ops, sides[1:], strict=False):
            if isinstance(op, ast.Lt | ast.LtE) and _is_timed(left, names) and _is_small_bound(right):
                return True
            if isinstance(op, ast.Gt | ast.GtE) and _is_timed(right, names) and _is_small_bound(left):
                return True
    return False


def wall_clock_asserts(source: str) -> list[int]:
    """Line numbers of asserts that bound a measured time without a ``# hang guard`` comment."""
    tree = ast.parse(source)
    lines = source.splitlines()
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
    found: set[int] = set()
    for scope in scopes:
        names = _timed_names(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Assert) or not _upper_time_bounds(node.test, names):
                continue
            spanned = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
            if not any(MARKER.search(line) for line in spanned):
                found.add(node.lineno)
    return sorted(found)


def test_no_test_asserts_wall_clock_speed() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in wall_clock_asserts(path.read_text())
    ]
    assert not offenders, "time bounds without a '# hang guard' comment (measure work, or bench it):\n" + "\n".join(
        offenders
    )


def test_the_scan_finds_speed_asserts_and_passes_hang_guards() -> None:
    source = """
import time

async def test_speed(measure):
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    assert elapsed < 2.5, f"{elapsed:.2f}s"
    assert time.perf_counter() - started < 5
    error, elapsed, peak = await measure(work)
    assert peak < 20 and elapsed < 2, (elapsed, peak)
    assert 1.0 > time.monotonic() - started

def test_guarded():
    started = time.monotonic()
    work()
    waited = time.monotonic() - started
    assert waited >= 0.9  # a lower bound: a busy machine only makes it longer
    assert waited < 30  # hang guard: normally 1 s (30x)
    assert (
        time.monotonic() - started < 60  # hang guard: normally 3 s
    )
    assert waited < 3600
    peak, count = 10, 3
    assert peak < 20 and count < 5
    assert breaker.down_until > time.monotonic()
"""
    assert wall_clock_asserts(source) == [8, 9, 11, 12]
