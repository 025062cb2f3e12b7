"""``toolrun eval``: BFCL on the real default model from a trimmed copy of the wheel, and the comparison chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolrun import DEFAULT_MODEL
from toolrun.eval import summarize

FIXTURE = Path(__file__).parent / "fixtures" / "bfcl_eval-2026.3.23-first3.whl"
CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")


def toolrun(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "toolrun", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.model
def test_eval_bfcl_limit_2_on_the_default_model(tmp_path):
    output = tmp_path / "results.json"
    # One thread: a little slower than two on an idle 2-core machine, many times faster on a busy one.
    args = ["eval", "bfcl", "--limit", "2", "--threads", "1", "--bfcl-wheel", str(FIXTURE), "--output", str(output)]
    for category in CATEGORIES:
        args += ["--category", category]
    done = toolrun(*args)
    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text())
    assert results["model"] == DEFAULT_MODEL
    assert results["settings"] == {
        "temperature": 0.0,
        "max_tokens": None,
        "offset": 0,
        "limit": 2,
        "tool_choice": "auto",
        "threads": 1,
    }
    assert [row["category"] for row in results["summary"]] == list(CATEGORIES)
    for row in results["summary"]:
        assert row["cases"] == 2 and row["errors"] == 0 and row["invalid_calls"] == 0, row
        assert row["prompt_tokens"] > 0 and row["seconds"] > 0
        assert row["category"] in done.stdout  # the table
    cases = results["cases"]
    assert [r["id"] for r in cases["simple_python"]] == ["simple_python_0", "simple_python_1"]
    # The first simple case is one the 0.5B model gets right, with BFCL's checker saying so.
    first = cases["simple_python"][0]
    assert first["correct"], first
    assert first["tool_calls"] == [
        {"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5, "unit": "units"}}
    ]
    # Irrelevance is scored by whether a call was made at all.
    for record in cases["irrelevance"]:
        assert record["correct"] == (not record["tool_calls"])
    assert results["summary"][0]["accuracy"] == 50.0 * sum(r["correct"] for r in cases["simple_python"])


def _results(path: Path, label: str, accuracies: dict[str, float], temperature: float = 0.0) -> Path:
    summary = []
    for category, accuracy in accuracies.items():
        records = [
            {
                "correct": i < accuracy / 10,
                "error": None,
                "invalid": [],
                "seconds": 1.0,
                "prompt_tokens": 100,
                "completion_tokens": 20,
            }
            for i in range(10)
        ]
        summary.append(summarize(category, records))
    path.write_text(
        json.dumps({"label": label, "model": label, "settings": {"temperature": temperature}, "summary": summary})
    )
    return path


def test_eval_chart_writes_a_png_comparing_result_files(tmp_path):
    import matplotlib.image

    a = _results(tmp_path / "a.json", "0.5B", {"simple_python": 90, "multiple": 80, "irrelevance": 20})
    b = _results(tmp_path / "b.json", "1.5B", {"simple_python": 100, "parallel": 60, "irrelevance": 50}, 0.6)
    chart = tmp_path / "out" / "chart.png"
    done = toolrun("eval", "chart", str(a), str(b), "-o", str(chart), timeout=300)
    assert done.returncode == 0, done.stderr
    data = chart.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    pixels = matplotlib.image.imread(chart)
    height, width = pixels.shape[:2]
    assert width > 600 and height > 400
    assert pixels.std() > 0.05  # bars, not a blank canvas


def test_eval_chart_refuses_files_that_are_not_results(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"summary": [{"category": "simple_python"}]}))
    done = toolrun("eval", "chart", str(other), "-o", str(tmp_path / "c.png"), timeout=300)
    assert done.returncode == 1
    assert "not a `toolrun eval bfcl` results file" in done.stderr
    assert not (tmp_path / "c.png").exists()
