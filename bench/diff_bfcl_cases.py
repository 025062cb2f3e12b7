"""Diff two `toolrun eval bfcl` result files case by case.

Compares each case's verdict (correct, why, error, invalid), its calls (name + arguments, order kept)
and its text (response), with --tokens its token counts too, and prints every differing case. Exit 1 if any differ.

    .venv/bin/python bench/diff_bfcl_cases.py BEFORE.json AFTER.json [--tokens]
"""

from __future__ import annotations

import json
import sys
from typing import Any

OUTCOME_FIELDS = ("correct", "why", "error", "invalid", "tool_calls", "response")
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens")


def cases_by_id(path: str) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    return {case["id"]: case for cases in data["cases"].values() for case in cases}


def main() -> int:
    before_path, after_path = sys.argv[1], sys.argv[2]
    fields = OUTCOME_FIELDS + (TOKEN_FIELDS if "--tokens" in sys.argv else ())
    before, after = cases_by_id(before_path), cases_by_id(after_path)
    differing = 0
    for case_id in sorted(before.keys() | after.keys()):
        if case_id not in before or case_id not in after:
            print(f"{case_id}: only in {'before' if case_id in before else 'after'}")
            differing += 1
            continue
        changed = [f for f in fields if before[case_id].get(f) != after[case_id].get(f)]
        if changed:
            differing += 1
            print(f"{case_id}:")
            for f in changed:
                print(f"  {f}:\n    before: {json.dumps(before[case_id].get(f), ensure_ascii=False)}")
                print(f"    after:  {json.dumps(after[case_id].get(f), ensure_ascii=False)}")
    print(f"{len(before)} cases before, {len(after)} after, {differing} differ in {', '.join(fields)}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
