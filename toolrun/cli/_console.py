"""The CLI's consoles and its one way of reporting a failure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from .._errors import ToolrunError

console = Console()
#: Progress, tool calls and errors go to stderr, so stdout carries only the answer (pipe-friendly).
err_console = Console(stderr=True)


@contextlib.contextmanager
def fail_on_toolrun_errors() -> Iterator[None]:
    """A ToolrunError becomes one red line and exit status 1, not a traceback: it already says what is wrong."""
    try:
        yield
    except ToolrunError as exc:
        err_console.print(
            f"[bold red]error[/bold red] [dim]({exc.code})[/dim]: {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("[dim]interrupted[/dim]")
        raise typer.Exit(130) from None
