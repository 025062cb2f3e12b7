"""Rebuild ``fixtures/bfcl_eval-2026.3.23-first3.whl``: a trimmed copy of the bfcl-eval wheel for the tests.

It keeps what ``toolrun eval bfcl`` reads: the first three cases of each category the tests use, their
answers, the AST checker's modules and the wheel's metadata (Apache-2.0, see LICENSE-bfcl-eval next to it).

    .venv/bin/python tests/eval/build_bfcl_fixture.py [path/to/bfcl_eval-2026.3.23-py3-none-any.whl]
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

from toolrun.eval import BFCL_VERSION, fetch_bfcl_wheel

HERE = Path(__file__).resolve().parent
TARGET = HERE / "fixtures" / f"bfcl_eval-{BFCL_VERSION}-first3.whl"
CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance", "live_simple", "live_irrelevance")
CASES = 3
CHECKER = (
    "bfcl_eval/__init__.py",
    "bfcl_eval/constants/__init__.py",
    "bfcl_eval/constants/enums.py",
    "bfcl_eval/constants/type_mappings.py",
    "bfcl_eval/eval_checker/__init__.py",
    "bfcl_eval/eval_checker/ast_eval/__init__.py",
    "bfcl_eval/eval_checker/ast_eval/ast_checker.py",
    "bfcl_eval/eval_checker/ast_eval/type_convertor/__init__.py",
    "bfcl_eval/eval_checker/ast_eval/type_convertor/java_type_converter.py",
    "bfcl_eval/eval_checker/ast_eval/type_convertor/js_type_converter.py",
    f"bfcl_eval-{BFCL_VERSION}.dist-info/METADATA",
)


def _write(out: zipfile.ZipFile, member: str, data: bytes | str) -> None:
    # A fixed timestamp: rebuilding from the same wheel gives the same bytes.
    out.writestr(zipfile.ZipInfo(member, date_time=(2026, 3, 23, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else fetch_bfcl_wheel()
    with zipfile.ZipFile(source) as wheel, zipfile.ZipFile(TARGET, "w", zipfile.ZIP_DEFLATED) as out:
        names = set(wheel.namelist())
        for member in CHECKER:
            _write(out, member, wheel.read(member))
        for category in CATEGORIES:
            data = f"bfcl_eval/data/BFCL_v4_{category}.json"
            lines = wheel.read(data).decode("utf-8").splitlines()[:CASES]
            _write(out, data, "\n".join(lines) + "\n")
            ids = {json.loads(line)["id"] for line in lines}
            answers = f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json"
            if answers in names:
                kept = [
                    line
                    for line in wheel.read(answers).decode("utf-8").splitlines()
                    if line.strip() and json.loads(line)["id"] in ids
                ]
                _write(out, answers, "\n".join(kept) + "\n")
    print(f"{TARGET} ({TARGET.stat().st_size:,} bytes) from {source}")


if __name__ == "__main__":
    main()
