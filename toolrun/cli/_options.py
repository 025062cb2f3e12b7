"""Options more than one command takes, declared once so they read, default and check the same everywhere."""

from __future__ import annotations

from typing import Annotated, TypeAlias

import typer

#: ``--threads``: None lets the engine use every core.
Threads: TypeAlias = Annotated[
    int | None,
    typer.Option(
        help="CPU threads for local models \\[default: all cores]; fewer can be faster on a busy machine.",
        min=1,
        show_default=False,
    ),
]

#: ``--max-tokens``: None keeps the binding's default.
MaxTokens: TypeAlias = Annotated[
    int | None, typer.Option(help="Tokens per model call \\[default: toolrun's, 256].", min=1, show_default=False)
]


def examples(*command_lines: str) -> str:
    """A command's ``--help`` epilog: its example command lines under a bold heading, a blank line apart."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join("  " + line for line in command_lines)
