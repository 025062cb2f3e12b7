"""``toolrun serve``: check the settings, show where to connect, hand over to uvicorn."""

from __future__ import annotations

import errno
import logging
import socket

from rich.console import RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from .._errors import InvalidInputError
from ._console import err_console


def run_server(
    *,
    host: str | None,
    port: int | None,
    models: list[str],
    api_keys: list[str],
    max_queue: int | None,
    max_tokens_cap: int | None,
    max_body_bytes: int | None,
    threads: int | None,
    log_level: str,
    allow_download: bool | None = None,
    cors_origins: list[str] | None = None,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
) -> None:
    """Command-line values win; what they leave out comes from the config's [server] table, then defaults."""
    from ..ai import AsyncAI
    from ..server import DEFAULT_PORT, ServerConfig, is_loopback, read_server_section, serve

    config = read_server_section()
    host = host or config.get("host", "127.0.0.1")
    port = port if port is not None else config.get("port", DEFAULT_PORT)
    if any(not key.strip() for key in api_keys):
        raise InvalidInputError(
            "an API key must not be empty; pass a real key (e.g. $(openssl rand -hex 16))", where="--api-key"
        )
    keys = api_keys + config.get("api_keys", [])
    models = models or config.get("preload", [])
    limits = {
        "max_queue": max_queue or config.get("max_queue", ServerConfig.max_queue),
        "max_tokens_cap": max_tokens_cap or config.get("max_tokens_cap", ServerConfig.max_tokens_cap),
        "max_body_bytes": max_body_bytes or config.get("max_body_bytes", ServerConfig.max_body_bytes),
    }
    browser_and_fetching = {
        "allow_download": allow_download
        if allow_download is not None
        else config.get("allow_download", ServerConfig.allow_download),
        "cors_origins": (cors_origins or []) + config.get("cors_origins", []),
        "header_timeout": header_timeout or config.get("header_timeout", ServerConfig.header_timeout),
        "body_timeout": body_timeout or config.get("body_timeout", ServerConfig.body_timeout),
        "keepalive_interval": config.get("keepalive_interval", ServerConfig.keepalive_interval),
    }
    ServerConfig(**browser_and_fetching)  # a bad origin or timeout fails here, before the banner
    if not is_loopback(host) and not keys:
        raise InvalidInputError(
            f"refusing to listen on {host} without an API key: anyone who can reach the port could use it. "
            "Add --api-key KEY (or set TOOLRUN_API_KEYS, or api_keys in the config's [server] table), "
            "or use --host 127.0.0.1",
            where="--host",
        )
    ai = AsyncAI(n_threads=threads)
    for name in models:
        ai.catalog.get(name)  # an unknown --model fails here, before the banner, with the catalog's hint
    _check_port_free(host, port)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    err_console.print(_banner(host, port, models, bool(keys), limits["max_queue"]))
    # The server closes only a binding it created itself; this one is ours to close.
    try:
        serve(host, port, ai=ai, api_keys=keys, log_level=log_level, preload=models, **limits, **browser_and_fetching)
    finally:
        import asyncio

        asyncio.run(ai.aclose())


def _check_port_free(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will, so a busy port is one line before the banner, not uvicorn's errno."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # create_server sets SO_REUSEADDR as uvicorn does: a port in TIME_WAIT counts as free for both.
        socket.create_server((host, port), family=family).close()
    except socket.gaierror as exc:
        raise InvalidInputError(f"cannot resolve {host!r}: {exc.strerror}", where="--host") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is already in use; stop what holds it or choose another with --port"
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise InvalidInputError(message, where="--port") from None


def _banner(host: str, port: int, models: list[str], auth: bool, max_queue: int) -> Panel:
    shown = (
        "localhost"
        if host in ("127.0.0.1", "::1", "localhost")
        else ("<this-host>" if host in ("0.0.0.0", "::") else host)
    )
    base = f"http://{shown}:{port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Workers AI", f"{base}/client/v4/accounts/local/ai/run/{{model}}")
    table.add_row("OpenAI", f"{base}/v1/chat/completions  ·  {base}/v1/responses")
    table.add_row("Anthropic", f"{base}/v1/messages  (base_url={base})")
    table.add_row("Models", f"{base}/v1/models  ·  {base}/client/v4/accounts/local/ai/models/search")
    table.add_row("Health", f"{base}/health  ·  {base}/metrics")
    table.add_row("Auth", "API key required (bearer or x-api-key)" if auth else "none (loopback clients only)")
    table.add_row("Preloading", ", ".join(escape(m) for m in models) if models else "nothing; models load on first use")
    table.add_row("Queue", f"{max_queue} requests per model, then 429 + Retry-After")
    example = (
        f"[dim]from openai import OpenAI\n"
        f'client = OpenAI(base_url="{base}/v1", api_key="{"<your key>" if auth else "unused"}")[/dim]'
    )
    return Panel.fit(_stack(table, example), title="[bold]toolrun serve[/bold]", border_style="cyan")


def _stack(*renderables: RenderableType) -> Table:
    grid = Table.grid(padding=(1, 0))
    for item in renderables:
        grid.add_row(item)
    return grid
