"""BFCL's data and checker, from the ``bfcl-eval`` wheel, without installing it.

The wheel is fetched once with ``pip download --no-deps`` (so pip's own index
settings apply) into toolrun's user cache, checked against a pinned SHA-256,
and read in place: the test cases and answers as JSON lines from the zip, the
AST checker imported from it by ``zipimport``. Installing ``bfcl-eval`` would
pull in every vendor SDK it can benchmark (and pin numpy); the checker needs
none of them. Its ``model_config`` module imports those SDKs, and the checker
only asks it whether a model's function names use dots, so a stand-in answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import types
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .._errors import ToolrunError

BFCL_VERSION = "2026.3.23"
BFCL_WHEEL = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"
#: The wheel PyPI serves for that version; anything else is refused.
BFCL_WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"

#: The single-turn categories and how each is scored: BFCL's AST checker, or whether a call was made.
CATEGORIES: dict[str, str] = {
    "simple_python": "ast",
    "multiple": "ast",
    "parallel": "ast",
    "parallel_multiple": "ast",
    "irrelevance": "no_call",
    "live_simple": "ast",
    "live_multiple": "ast",
    "live_parallel": "ast",
    "live_parallel_multiple": "ast",
    "live_irrelevance": "no_call",
    "live_relevance": "some_call",
}
DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")

#: ``ast_checker(functions, model_output, ground_truth, language, category, model_name) -> {"valid", ...}``
Checker = Callable[..., dict[str, Any]]


class EvalDataError(ToolrunError, status_code=503, code="eval_data_unavailable"):
    """The benchmark's data could not be fetched or read."""


def bfcl_cache_dir() -> Path:
    """Where the wheel is kept: ``$TOOLRUN_CACHE_DIR/bfcl`` or the user cache dir's ``toolrun/bfcl``."""
    root = os.environ.get("TOOLRUN_CACHE_DIR") or platformdirs.user_cache_dir("toolrun")
    return Path(root) / "bfcl"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_bfcl_wheel(cache: Path | None = None) -> Path:
    """The pinned ``bfcl-eval`` wheel, downloaded (without dependencies) on first use and verified."""
    cache = cache or bfcl_cache_dir()
    target = cache / BFCL_WHEEL
    if target.exists() and _sha256(target) == BFCL_WHEEL_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"bfcl-eval=={BFCL_VERSION}",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            tmp,
        ]
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except FileNotFoundError as exc:
            raise EvalDataError(f"could not run pip to download bfcl-eval: {exc}") from exc
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise EvalDataError(
                f"`pip download bfcl-eval=={BFCL_VERSION} --no-deps` failed ({detail[0]}); check the network or "
                "pip's index settings, or pass a copy of the wheel with --bfcl-wheel"
            ) from exc
        downloaded = Path(tmp) / BFCL_WHEEL
        if not downloaded.exists():
            raise EvalDataError(f"pip download did not produce {BFCL_WHEEL}")
        actual = _sha256(downloaded)
        if actual != BFCL_WHEEL_SHA256:
            raise EvalDataError(f"{BFCL_WHEEL} has SHA-256 {actual}, expected {BFCL_WHEEL_SHA256}")
        os.replace(downloaded, target)
    return target


@dataclass(frozen=True)
class Case:
    """One BFCL test case: its messages, its functions (BFCL's schema dialect) and, when scored by AST, its answer."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None


_import_lock = threading.Lock()
#: The wheels put on sys.path to import a checker from (the latest only).
_added_paths: list[str] = []


class BfclData:
    """Cases, answers and the AST checker of one ``bfcl-eval`` wheel (or a trimmed copy with the same layout)."""

    def __init__(self, wheel: str | os.PathLike[str]) -> None:
        self.wheel = Path(wheel)
        try:
            with zipfile.ZipFile(self.wheel) as zf:
                self._names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise EvalDataError(f"{self.wheel} is not a readable bfcl-eval wheel: {exc}") from exc
        self._checker: Checker | None = None
        self._python: Any = None

    @classmethod
    def default(cls) -> BfclData:
        return cls(fetch_bfcl_wheel())

    def _read_jsonl(self, member: str) -> list[dict[str, Any]]:
        try:
            with zipfile.ZipFile(self.wheel) as zf, zf.open(member) as f:
                text = f.read().decode("utf-8")
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise EvalDataError(f"could not read {member} from {self.wheel}: {exc}") from exc

    def cases(self, category: str, *, offset: int = 0, limit: int | None = None) -> list[Case]:
        """Cases ``offset`` … ``offset + limit`` of a category, in BFCL's order, with their answers."""
        if category not in CATEGORIES:
            raise EvalDataError(f"unknown BFCL category {category!r}; known: {', '.join(CATEGORIES)}")
        member = f"bfcl_eval/data/BFCL_v4_{category}.json"
        if member not in self._names:
            raise EvalDataError(f"{member} is not in {self.wheel.name}")
        rows = self._read_jsonl(member)
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
        answers: Mapping[str, dict[str, Any]] = {}
        if CATEGORIES[category] == "ast":
            answer_member = f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json"
            if answer_member not in self._names:
                raise EvalDataError(f"{answer_member} is not in {self.wheel.name}")
            answers = {a["id"]: a for a in self._read_jsonl(answer_member)}
        cases = []
        for row in rows:
            answer = answers.get(row["id"])
            if CATEGORIES[category] == "ast" and answer is None:
                raise EvalDataError(f"{row['id']} has no answer in {self.wheel.name}")
            cases.append(
                Case(
                    id=row["id"],
                    category=category,
                    messages=row["question"][0],
                    functions=row["function"],
                    ground_truth=answer["ground_truth"] if answer else None,
                )
            )
        return cases

    def checker(self) -> Checker:
        """BFCL's ``ast_checker``, imported from the wheel itself."""
        if self._checker is None:
            with _import_lock:
                self._checker, self._python = _import_checker(self.wheel)
        return self._checker

    def python_language(self) -> Any:
        """The checker's ``Language.PYTHON`` (every category offered here is Python)."""
        self.checker()
        return self._python


def _import_checker(wheel: Path) -> tuple[Checker, Any]:
    # The checker consults MODEL_CONFIG_MAPPING[model].underscore_to_dot only; toolrun reports function
    # names exactly as BFCL spells them (dots included), so the answer is always False.
    class _Config:
        underscore_to_dot = False

    class _AnyModel(dict[str, _Config]):
        def __missing__(self, key: str) -> _Config:
            return _Config()

    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
    # One copy of bfcl_eval per process at a time: forget another wheel's modules and its sys.path entry.
    for name in [n for n in sys.modules if n == "bfcl_eval" or n.startswith("bfcl_eval.")]:
        del sys.modules[name]
    for path in _added_paths:
        if path in sys.path:
            sys.path.remove(path)
    _added_paths.clear()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    sys.path.insert(0, str(wheel))  # zipimport: the wheel is a zip of pure-Python modules
    _added_paths.append(str(wheel))
    try:
        from bfcl_eval.constants.enums import Language  # type: ignore[import-not-found]
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker  # type: ignore[import-not-found]
    except ImportError as exc:
        raise EvalDataError(f"could not import BFCL's AST checker from {wheel}: {exc}") from exc
    found_in = str(getattr(sys.modules["bfcl_eval.eval_checker.ast_eval.ast_checker"], "__file__", ""))
    if not found_in.startswith(str(wheel)):
        raise EvalDataError(f"could not import BFCL's AST checker from {wheel}: it is not in it (found {found_in})")
    checker: Checker = ast_checker
    return checker, Language.PYTHON
