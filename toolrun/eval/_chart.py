"""Results documents side by side: a grouped bar chart of accuracy per category (PNG, matplotlib)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InvalidInputError


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results document written by ``toolrun eval bfcl --output``, checked for what the chart reads."""
    try:
        document: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"could not read {path}: {exc}", where=str(path)) from exc
    summary = document.get("summary") if isinstance(document, dict) else None
    if not isinstance(summary, list) or not all(
        isinstance(row, dict) and isinstance(row.get("category"), str) and isinstance(row.get("accuracy"), (int, float))
        for row in summary
    ):
        raise InvalidInputError("not a `toolrun eval bfcl` results file (no per-category summary)", where=str(path))
    checked: dict[str, Any] = document
    return checked


def series_label(document: dict[str, Any]) -> str:
    """How a results document is named in a chart: its label, and its temperature when not greedy."""
    label = str(document.get("label") or document.get("model") or "?")
    temperature = (document.get("settings") or {}).get("temperature")
    if isinstance(temperature, (int, float)) and temperature > 0:
        label += f" (T={temperature:g})"
    return label


def chart_results(
    documents: Sequence[dict[str, Any]],
    output: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw accuracy per category, one bar per document, into a PNG at ``output``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    if not documents:
        raise InvalidInputError("give at least one results file", where="files")
    names = list(labels) if labels else [series_label(d) for d in documents]
    if len(names) != len(documents):
        raise InvalidInputError(f"{len(names)} labels for {len(documents)} results files", where="labels")
    categories: list[str] = []
    for document in documents:
        for row in document["summary"]:
            if row["category"] not in categories:
                categories.append(row["category"])
    width = 0.8 / len(documents)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 + 1.3 * len(categories) * max(1, len(documents)) ** 0.5), 4.2))
    try:
        for i, (document, name) in enumerate(zip(documents, names, strict=True)):
            rows = {row["category"]: row for row in document["summary"]}
            xs = [c + (i - (len(documents) - 1) / 2) * width for c in range(len(categories))]
            values = [float(rows[c]["accuracy"]) if c in rows else 0.0 for c in categories]
            bars = axes.bar(xs, values, width * 0.95, label=name)
            for bar, category in zip(bars, categories, strict=True):
                if category in rows:
                    axes.annotate(
                        f"{rows[category]['accuracy']:g}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        xytext=(0, 1),
                        textcoords="offset points",
                    )
        cases = sorted({row["cases"] for d in documents for row in d["summary"] if isinstance(row.get("cases"), int)})
        subtitle = f"{cases[0]} cases per category" if len(cases) == 1 else "cases per category vary"
        axes.set_title(title or f"BFCL v4 accuracy ({subtitle})", fontsize=11)
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(0, 105)
        axes.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 4 else 0, fontsize=9)
        axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)
        axes.legend(
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18 if len(categories) > 4 else -0.1),
            ncol=min(3, len(documents)),
            frameon=False,
        )
        figure.tight_layout()
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png", dpi=150)
    finally:
        plt.close(figure)
    return target
