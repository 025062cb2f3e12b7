"""``toolrun eval``: BFCL on any catalog model (a table, a JSON file), and charts comparing results files."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..ai import DEFAULT_MODEL
from ._console import console, err_console, fail_on_toolrun_errors
from ._options import MaxTokens, Threads, examples

if TYPE_CHECKING:
    from ..eval import Case

eval_app = typer.Typer(
    name="eval",
    help="Benchmark function calling: BFCL v4 on any catalog model, and charts that compare runs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_CATEGORY_HELP = (
    "A BFCL v4 single-turn category (repeatable): simple_python, multiple, parallel, parallel_multiple, "
    "irrelevance, live_simple, live_multiple, live_parallel, live_parallel_multiple, live_irrelevance, "
    "live_relevance \\[default: simple_python, multiple, parallel, irrelevance]."
)


@eval_app.command(
    epilog=examples(
        "toolrun eval bfcl --limit 40 --output default.json",
        "toolrun eval bfcl -m @local/qwen2.5-coder-1.5b-instruct -c simple_python -c irrelevance -o 1.5b.json",
        "toolrun eval bfcl -m default --base-url http://127.0.0.1:8787/v1 --limit 10   [dim]# a server[/dim]",
        "toolrun eval bfcl --offset 40 --limit 50   [dim]# held-out cases, for tuning[/dim]",
    ),
)
def bfcl(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Catalog name or alias (local or remote).")
    ] = DEFAULT_MODEL,
    category: Annotated[
        list[str] | None, typer.Option("--category", "-c", help=_CATEGORY_HELP, show_default=False)
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Cases per category \\[default: all].", min=1, show_default=False)
    ] = None,
    offset: Annotated[int, typer.Option(help="Skip this many cases of each category first.", min=0)] = 0,
    temperature: Annotated[
        float,
        typer.Option(
            help="Sampling temperature. The default, 0 (greedy), makes runs and models comparable case by case; "
            "toolrun's own default for requests is 0.6.",
            min=0,
        ),
    ] = 0.0,
    max_tokens: MaxTokens = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the results (summary and every case) to this JSON file.", show_default=False
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="The name charts give this run \\[default: the model].", show_default=False)
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Run against an OpenAI-compatible endpoint instead, e.g. a toolrun server's http://HOST:PORT/v1; "
            "--model is then the model name sent to it.",
            show_default=False,
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="With --base-url: the environment variable holding its API key.", show_default=False),
    ] = None,
    threads: Threads = None,
    bfcl_wheel: Annotated[
        Path | None,
        typer.Option(
            help="Read cases and checker from this bfcl-eval wheel (or a trimmed copy) instead of the cached download.",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every case's verdict as it finishes.")
    ] = False,
) -> None:
    """Score a model on BFCL v4 with BFCL's own AST checker: accuracy, invalid calls, errors, tokens and time.

    Data and checker come from the [bold]bfcl-eval[/bold] wheel, downloaded once with
    [cyan]pip download --no-deps[/cyan] into toolrun's user cache (never installed).
    """
    with fail_on_toolrun_errors():
        results = asyncio.run(
            _bfcl(
                model=model,
                categories=list(category or []),
                limit=limit,
                offset=offset,
                temperature=temperature,
                max_tokens=max_tokens,
                label=label,
                base_url=base_url,
                api_key_env=api_key_env,
                threads=threads,
                bfcl_wheel=bfcl_wheel,
                verbose=verbose,
            )
        )
    results["settings"]["threads"] = threads
    results["command"] = shlex.join(sys.argv)
    # Piped or redirected, rich assumes 80 columns: too narrow for the table's nine.
    out = console if console.is_terminal or os.environ.get("COLUMNS") else Console(width=120)
    out.print(results_table(results))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        err_console.print(f"[green]✓[/green] results: {escape(str(output))}")


async def _bfcl(
    *,
    model: str,
    categories: list[str],
    limit: int | None,
    offset: int,
    temperature: float,
    max_tokens: int | None,
    label: str | None,
    base_url: str | None,
    api_key_env: str | None,
    threads: int | None,
    bfcl_wheel: Path | None,
    verbose: bool,
) -> dict[str, Any]:
    from ..ai import AsyncAI
    from ..eval import DEFAULT_CATEGORIES, BfclData, endpoint_model, run_bfcl
    from ._models import pull_command

    ai = AsyncAI(n_threads=threads)
    if base_url:
        model = endpoint_model(ai, base_url, model, api_key_env)
    else:
        entry = ai.catalog.get(model)
        if entry.remote is None:
            pull_command(entry.name)  # the weights first, with a progress bar when they are downloaded
    with err_console.status("[dim]BFCL data[/dim]"):
        data = BfclData(bfcl_wheel) if bfcl_wheel else BfclData.default()
    progress = Progress(
        TextColumn("[bold cyan]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[right]}[/green]/[dim]{task.fields[seen]}[/dim] right"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("BFCL", total=None, right=0, seen=0)
    tally = {"right": 0, "seen": 0}

    def started(total: int) -> None:
        progress.update(task, total=total)

    def finished(case: Case, record: dict[str, Any]) -> None:
        tally["seen"] += 1
        tally["right"] += bool(record["correct"])
        progress.update(task, advance=1, description=case.category, right=tally["right"], seen=tally["seen"])
        if verbose:
            mark = "[green]ok  [/green]" if record["correct"] else "[red]FAIL[/red]"
            calls = escape(json.dumps(record["tool_calls"], ensure_ascii=False)[:140])
            why = f" [dim]{escape(record['why'][:120])}[/dim]" if not record["correct"] else ""
            progress.console.print(
                f"{mark} {escape(case.id):<22} {record['seconds']:6.1f}s {calls}{why}", highlight=False, soft_wrap=True
            )

    try:
        with progress:
            results = await run_bfcl(
                ai,
                model,
                categories=categories or DEFAULT_CATEGORIES,
                offset=offset,
                limit=limit,
                temperature=temperature,
                max_tokens=max_tokens,
                data=data,
                label=label,
                on_start=started,
                on_case=finished,
            )
    finally:
        await ai.aclose()
    return results


def results_table(results: dict[str, Any]) -> Table:
    settings = results["settings"]
    first, limit = settings["offset"], settings["limit"]
    span = (
        f"cases {first}–{first + limit - 1}"
        if limit and limit > 1
        else f"case {first}"
        if limit
        else f"cases from {first}"
    )
    temperature = "greedy" if not settings["temperature"] else f"temperature {settings['temperature']:g}"
    table = Table(
        title=f"BFCL v4 · {escape(results['model'])} · {span} · {temperature}",
        header_style="bold",
        caption=f"[dim]bfcl-eval {results['bfcl_eval']} AST checker · invalid: calls dropped by the "
        "guard, failing the schema, or left unparsed in the text[/dim]",
    )
    for name, justify in (
        ("Category", "left"),
        ("Cases", "right"),
        ("Accuracy", "right"),
        ("Invalid", "right"),
        ("Errors", "right"),
        ("Tokens in", "right"),
        ("Tokens out", "right"),
        ("s / case", "right"),
        ("Seconds", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    rows = results["summary"]
    for row in rows:
        table.add_row(
            row["category"],
            str(row["cases"]),
            f"{row['accuracy']:.1f} %",
            _flag(row["invalid_calls"]),
            _flag(row["errors"]),
            f"{row['prompt_tokens']:,}",
            f"{row['completion_tokens']:,}",
            f"{row['seconds'] / max(1, row['cases']):.2f}",
            f"{row['seconds']:.0f}",
        )
    if len(rows) > 1:
        cases = sum(r["cases"] for r in rows)
        correct = sum(r["correct"] for r in rows)
        seconds = sum(r["seconds"] for r in rows)
        table.add_section()
        table.add_row(
            "[bold]all[/bold]",
            str(cases),
            f"{100.0 * correct / max(1, cases):.1f} %",
            _flag(sum(r["invalid_calls"] for r in rows)),
            _flag(sum(r["errors"] for r in rows)),
            f"{sum(r['prompt_tokens'] for r in rows):,}",
            f"{sum(r['completion_tokens'] for r in rows):,}",
            f"{seconds / max(1, cases):.2f}",
            f"{seconds:.0f}",
        )
    return table


def _flag(count: int) -> str:
    return f"[red]{count}[/red]" if count else "0"


@eval_app.command(
    epilog=examples(
        "toolrun eval chart 0.5b.json 1.5b.json -o bfcl.png",
        "toolrun eval chart before.json after.json --label before --label after -o progress.png",
    ),
)
def chart(
    files: Annotated[
        list[Path],
        typer.Argument(help="Results files written by `toolrun eval bfcl --output`.", exists=True, dir_okay=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The PNG to write.")] = Path("bfcl.png"),
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="Name each file's bars, in order (repeatable) \\[default: each file's label].", show_default=False
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="The chart's title.", show_default=False)] = None,
) -> None:
    """Compare several results files side by side: a PNG bar chart of accuracy per category."""
    from ..eval import chart_results, load_results

    with fail_on_toolrun_errors():
        documents = [load_results(f) for f in files]
        path = chart_results(documents, output, labels=label or None, title=title)
        err_console.print(f"[green]✓[/green] chart: {escape(str(path))}")
