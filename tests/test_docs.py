"""The docs stay honest: every environment variable toolrun reads is documented, every guide the README links
exists, and the Python blocks in the guides that need no model run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_toolrun_environment_variable_is_documented() -> None:
    sources = [*(ROOT / "toolrun").rglob("*.py"), *(ROOT / "scripts").glob("*"), ROOT / "Makefile"]
    used = {name for path in sources for name in re.findall(r"\bTOOLRUN_[A-Z_]+\b", path.read_text())}
    documented = " ".join(path.read_text() for path in DOCS)
    assert used, "no TOOLRUN_ variable found: the scan is broken"
    assert not sorted(name for name in used if name not in documented)


def test_the_readme_links_only_to_what_exists_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?:docs|examples)/[^)#]+)", readme)
    assert targets and not [t for t in targets if not (ROOT / t).exists()]
    assert len(readme.splitlines()) <= 250
    assert len(DOCS) >= 6


def runnable(path: Path) -> list[str]:
    return [code for info, code in BLOCK.findall(path.read_text()) if not info.strip()]


GUIDES = [path for path in [ROOT / "README.md", *DOCS] if runnable(path)]


@pytest.mark.parametrize("guide", GUIDES, ids=[p.name for p in GUIDES])
def test_the_python_blocks_that_need_no_model_run(guide: Path) -> None:
    """A guide's plain ``python`` blocks run in order, in one fresh interpreter, from the repository root
    (blocks that need a model or a network are fenced ``python needs-model`` and are run elsewhere: the
    examples' tests run the same code on the real model)."""
    script = "\n\n".join(runnable(guide))
    env = {**os.environ, "TOOLRUN_PYPI_INDEX_URL": "http://127.0.0.1:9/simple"}  # never download from a doc
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
