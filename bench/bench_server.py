"""Benchmarks of ``toolrun serve``.

1. overhead — HTTP cost per request with the scripted (instant) engine: p50/p99 latency at
   1 and 64 concurrent clients, for Workers AI's run, OpenAI's chat completions, and OpenAI
   streaming; beside the binding called in-process, which is what HTTP adds to.
2. compare — the same GGUF and prompts on ``toolrun serve`` and on llama-cpp-python's own
   server (``python -m llama_cpp.server``), both on the OpenAI endpoint, greedy, ``max_tokens``
   128, measured in alternation: latency at 1 client, aggregate tokens/s and per-request
   p50/p99 at 4 concurrent clients.
3. contention — an ordinary tool-call request to ``toolrun serve`` on the default model, idle and
   while three clients send the soak test's hostile requests (tests/server/test_soak.py): the
   median latency of each and their ratio (issue #27 asks for at most 2x).
4. stream-apis — the same prompts streamed through chat completions, OpenAI's Responses and
   Anthropic's Messages on one ``toolrun serve`` (default model, greedy, the APIs in rotation):
   tokens/s of each and the ratio to chat (issue #30 asks for at least 0.97).

    python bench/bench_server.py overhead
    python bench/bench_server.py contention
    python bench/bench_server.py stream-apis
    python bench/bench_server.py compare --install-deps   # installs llama-cpp-python[server]'s extras
    python bench/bench_server.py all --json bench/server-results.json

Clients and servers share this machine's cores, so the client's own cost is in every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED = "@bench/scripted"
KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

# Prompts that ask for more than 128 tokens, so most answers run to max_tokens on both servers.
PROMPTS = [
    "Explain in detail how a hash map works, with its collision strategies and their trade-offs.",
    "Write a long, detailed tutorial on Python's asyncio event loop for beginners.",
    "Describe the history of the Unix operating system in detail, decade by decade.",
    "Explain step by step how TCP establishes, uses and tears down a connection.",
    "Write a detailed comparison of SQL and NoSQL databases with examples of each.",
    "Explain how garbage collection works in modern language runtimes, in depth.",
    "Describe in detail how a CPU executes an instruction, from fetch to write-back.",
    "Write a thorough guide to writing good unit tests, with many concrete examples.",
]


# ----------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_busy_fraction(seconds: float = 2.0) -> float:
    """Share of all cores busy over ``seconds``, from /proc/stat (Linux)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to ``max_wait`` s) until other processes leave the CPUs mostly idle; the busy share seen last.

    On a shared 2-core machine another process's decode loop halves ours, and llama.cpp's
    thread barriers degrade far worse than that when the cores are oversubscribed.
    """
    deadline = time.monotonic() + max_wait
    busy = cpu_busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy_fraction()
    return busy


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    return total - values[3] - values[4], total


def _process_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads
    except (OSError, IndexError, ValueError):
        return 0


class OthersMeter:
    """How much CPU processes other than ours (the client and the server under test) used meanwhile.

    The machine is shared; a measurement during which someone else's model ran is not
    a measurement of our server, so the caller repeats it.
    """

    def __init__(self, server_pid: int) -> None:
        self.pids = (os.getpid(), server_pid)

    def __enter__(self) -> OthersMeter:
        self._start = (_cpu_jiffies(), sum(_process_jiffies(p) for p in self.pids), time.monotonic())
        return self

    def __exit__(self, *exc: Any) -> None:
        (busy0, total0), ours0, _ = self._start
        busy1, total1 = _cpu_jiffies()
        ours1 = sum(_process_jiffies(p) for p in self.pids)
        cores = os.cpu_count() or 1
        #: Cores' worth of CPU that others used, on average over the measurement.
        self.others_cores = max(0, (busy1 - busy0) - (ours1 - ours0)) / max(1, total1 - total0) * cores


def toolrun_serve_command(port: int, model: str, threads: str) -> list[str]:
    """``toolrun serve`` as the side-by-side benchmarks start it (the bench key, quiet logs)."""
    return [sys.executable, "-m", "toolrun", "serve", "--port", str(port), "--model", model,
            "--threads", threads, "--api-key", KEY, "--log-level", "warning"]  # fmt: skip


@contextmanager
def server_process(
    args: list[str], health_url: str, *, timeout: float = 300, env: dict | None = None
) -> Iterator[subprocess.Popen]:
    """A server subprocess (``args``: the whole command line), once ``health_url`` answers 200."""
    # stderr to a file, not a pipe: llama.cpp logs enough at load to fill a pipe and block the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})

    def log_tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-2000:]

    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(args[:3])} exited:\n{log_tail()}")
            try:
                if httpx.get(health_url, timeout=2, headers=AUTH).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(args[:3])} did not become healthy in {timeout} s:\n{log_tail()}")
            time.sleep(0.25)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ------------------------------------------------------- scripted server


def scripted_ai() -> Any:
    from toolrun.ai import AsyncAI, Catalog, ModelEntry
    from toolrun.engines.scripted import ScriptedEngine, ScriptedReply

    def reply(request: Any) -> Any:
        if request.tools:
            return ScriptedReply(calls=[(request.tools[0].name, {"city": "Lisbon"})])
        return ScriptedReply(text="The quick brown fox jumps over the lazy dog.")

    ai = AsyncAI(catalog=Catalog())
    ai.register(ModelEntry(name=SCRIPTED, description="instant"), ScriptedEngine(reply))
    return ai


def run_bare_server(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": await request.json()})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/health", health, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_scripted_server(port: int) -> None:
    import uvicorn

    from toolrun.server import create_app

    app = create_app(scripted_ai(), api_keys=[KEY], max_queue=4096)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------- overhead


def _overhead_requests() -> dict[str, tuple[str, dict[str, Any]]]:
    ask = [{"role": "user", "content": "What's the weather in Lisbon?"}]
    return {
        "workers_ai run (tool call)": (f"/client/v4/accounts/a/ai/run/{SCRIPTED}", {"messages": ask, "tools": [TOOL]}),
        "openai chat (tool call)": (
            "/v1/chat/completions",
            {"model": SCRIPTED, "messages": ask, "tools": [{"type": "function", "function": TOOL}]},
        ),
        "openai chat stream (text)": (
            "/v1/chat/completions",
            {"model": SCRIPTED, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        ),
        "openai responses stream (text)": (
            "/v1/responses",
            {"model": SCRIPTED, "input": "hi", "stream": True},
        ),
        "anthropic messages stream (text)": (
            "/v1/messages",
            {"model": SCRIPTED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True},
        ),
    }


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP to time a server.

    httpx's async client costs more CPU per request than the server under test
    does, and on 2 cores that cost lands in the measurement (a bare Starlette
    endpoint drops from ~700 to ~200 req/s at 64 httpx clients); so the load
    generator writes pre-encoded requests on raw sockets and reads
    Content-Length or chunked bodies.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = None, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def encode_post(host: str, port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _load(port: int, path: str, body: dict[str, Any], clients: int, total: int) -> dict[str, Any]:
    raw = encode_post("127.0.0.1", port, path, body)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    remaining = total
    connections = [await RawConnection.open("127.0.0.1", port) for _ in range(clients)]
    for conn in connections:  # warm each connection (and the server's first-use paths)
        await conn.request(raw)

    async def client_loop(conn: RawConnection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            status = await conn.request(raw)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(c) for c in connections))
    wall = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return {
        "clients": clients,
        "requests": len(latencies),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "requests_per_s": len(latencies) / wall,
    }


async def _binding_only(n: int) -> dict[str, Any]:
    ai = scripted_ai()
    inputs = {"messages": [{"role": "user", "content": "What's the weather in Lisbon?"}], "tools": [TOOL]}
    for _ in range(50):
        await ai.run(SCRIPTED, inputs)
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await ai.run(SCRIPTED, inputs)
        latencies.append(time.perf_counter() - started)
    return {"p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3}


def bench_overhead(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"binding_in_process": asyncio.run(_binding_only(2000)), "http": []}
    with server_process([sys.executable, __file__, "_bare-server", str(port)], base + "/health", timeout=60):
        # The same client against a bare Starlette endpoint: the floor that any Starlette app pays.
        for clients, total in ((1, args.overhead_requests), (64, args.overhead_requests * 4)):
            wait_for_quiet(args.wait_quiet)
            row = asyncio.run(_load(port, "/echo", {"messages": []}, clients, total))
            row["endpoint"] = "bare starlette (floor)"
            results["http"].append(row)
            _print_row(row)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process([sys.executable, __file__, "_scripted-server", str(port)], base + "/health", timeout=60):
        for name, (path, body) in _overhead_requests().items():
            for clients, total in ((1, args.overhead_requests), (64, args.overhead_requests * 4)):
                wait_for_quiet(args.wait_quiet)
                row = asyncio.run(_load(port, path, body, clients, total))
                row["endpoint"] = name
                results["http"].append(row)
                _print_row(row)
    return results


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"  {row['endpoint']:28s} {row['clients']:3d} clients: p50 {row['p50_ms']:6.2f} ms  "
        f"p99 {row['p99_ms']:7.2f} ms  {row['requests_per_s']:6.0f} req/s  {row['statuses']}",
        flush=True,
    )


# ---------------------------------------------------------------- compare


def _chat_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": False,
    }


async def _compare_run(
    base: str, model: str, clients: int, per_client: int, max_tokens: int, first_prompt: int = 0
) -> dict[str, Any]:
    """``clients`` concurrent clients, each sending ``per_client`` requests one after another."""
    rows: list[tuple[float, int]] = []

    async def client_loop(client: httpx.AsyncClient, offset: int) -> None:
        for i in range(per_client):
            prompt = PROMPTS[(first_prompt + offset + i * clients) % len(PROMPTS)]
            started = time.perf_counter()
            response = await client.post(f"{base}/v1/chat/completions", json=_chat_body(model, prompt, max_tokens))
            response.raise_for_status()
            rows.append((time.perf_counter() - started, response.json()["usage"]["completion_tokens"]))

    async with httpx.AsyncClient(headers=AUTH, timeout=900) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client, c) for c in range(clients)))
        wall = time.perf_counter() - started
    return {"rows": rows, "wall_s": wall}


def _summarise(runs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    rows = [row for run in runs for row in run["rows"]]
    latencies = [r[0] for r in rows]
    tokens = sum(r[1] for r in rows)
    wall = sum(run["wall_s"] for run in runs)
    return {
        "clients": clients,
        "requests": len(rows),
        "completion_tokens": tokens,
        "wall_s": wall,
        "aggregate_tokens_per_s": tokens / wall,
        "mean_tokens": tokens / len(rows),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "median_request_tokens_per_s": statistics.median(r[1] / r[0] for r in rows),
    }


LLAMA_SERVER_EXTRAS = ["fastapi", "sse_starlette", "starlette_context", "pydantic_settings"]


def ensure_llama_server(install: bool) -> None:
    missing = [m for m in LLAMA_SERVER_EXTRAS if importlib.util.find_spec(m) is None]
    if not missing:
        return
    import llama_cpp

    command = [sys.executable, "-m", "pip", "install", f"llama-cpp-python[server]=={llama_cpp.__version__}"]
    if not install:
        raise SystemExit(
            f"llama_cpp.server needs {', '.join(missing)}; run `{' '.join(command)}` or pass --install-deps"
        )
    subprocess.run(command, check=True)


def bench_compare(args: argparse.Namespace) -> dict[str, Any]:
    """Both servers up at once and measured in alternation, so that load from elsewhere on a
    shared machine falls on both alike instead of on whichever happened to run second."""
    from toolrun import DEFAULT_MODEL, AsyncAI

    ensure_llama_server(args.install_deps)
    gguf = AsyncAI().weights(DEFAULT_MODEL)
    threads = str(args.threads)
    toolrun_port, llama_port = free_port(), free_port()
    servers = [
        ("toolrun serve", f"http://127.0.0.1:{toolrun_port}", DEFAULT_MODEL),
        ("llama_cpp.server", f"http://127.0.0.1:{llama_port}", "qwen"),
    ]
    toolrun_cmd = toolrun_serve_command(toolrun_port, DEFAULT_MODEL, threads)
    llama_cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        gguf,
        "--n_ctx",
        "8192",
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        "--n_batch",
        "512",
        "--port",
        str(llama_port),
        "--host",
        "127.0.0.1",
    ]
    runs: dict[str, dict[str, list]] = {label: {"one_client": [], "four_clients": []} for label, _, _ in servers}
    loads: list[str] = []
    with (
        server_process(toolrun_cmd, servers[0][1] + "/health") as toolrun_proc,
        server_process(llama_cmd, servers[1][1] + "/v1/models") as llama_proc,
    ):
        procs = (toolrun_proc, llama_proc)
        for _, base, model in servers:  # warm-up: first-use allocations, the chat template's prefix
            asyncio.run(_compare_run(base, model, 1, 1, 16))
        for round_no in range(args.rounds):
            for (label, base, model), proc in zip(servers, procs):
                for _attempt in range(1, args.max_attempts + 1):
                    wait_for_quiet(args.wait_quiet)
                    with OthersMeter(proc.pid) as meter:
                        one = asyncio.run(
                            _compare_run(
                                base, model, 1, args.one_client_requests, args.max_tokens, first_prompt=round_no
                            )
                        )
                        four = asyncio.run(
                            _compare_run(
                                base, model, 4, args.four_client_rounds, args.max_tokens, first_prompt=round_no
                            )
                        )
                    note = (
                        f"round {round_no + 1} {label:18s} 1 client "
                        f"{sum(r[1] for r in one['rows']) / one['wall_s']:5.1f} tok/s · 4 clients "
                        f"{sum(r[1] for r in four['rows']) / four['wall_s']:5.1f} tok/s  "
                        f"(other processes used {meter.others_cores:.2f} cores)"
                    )
                    if meter.others_cores <= args.max_others:
                        print(f"  {note}", flush=True)
                        loads.append(note)
                        runs[label]["one_client"].append(one)
                        runs[label]["four_clients"].append(four)
                        break
                    print(f"  discarded: {note}", flush=True)
                else:
                    print(
                        f"  round {round_no + 1} {label}: no undisturbed measurement in "
                        f"{args.max_attempts} attempts; left out",
                        flush=True,
                    )
    results: dict[str, Any] = {
        "gguf": gguf,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "conditions": loads,
        "servers": {},
    }
    for label, _, _ in servers:
        if not runs[label]["one_client"]:
            raise SystemExit(f"{label}: no undisturbed measurement; the machine never went quiet")
        summary = {key: _summarise(value, 1 if key == "one_client" else 4) for key, value in runs[label].items()}
        summary["raw"] = runs[label]  # per round: (seconds, completion tokens) of every request, and wall time
        results["servers"][label] = summary
        for key in ("one_client", "four_clients"):
            r = summary[key]
            print(
                f"  {label:18s} {r['clients']} client(s): p50 {r['p50_s']:5.2f} s  p99 {r['p99_s']:5.2f} s  "
                f"aggregate {r['aggregate_tokens_per_s']:5.1f} tok/s  ({r['requests']} requests, "
                f"{r['mean_tokens']:.0f} tokens each)",
                flush=True,
            )
    return results


# ------------------------------------------------------------ stream-apis


def _messages_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}  # fmt: skip


def _responses_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "input": prompt, "max_output_tokens": max_tokens, "temperature": 0, "stream": True}


#: The streaming APIs compared on one server: (path, request body for a model, prompt and max_tokens).
STREAM_APIS: dict[str, tuple[str, Callable[[str, str, int], dict[str, Any]]]] = {
    "chat": (
        "/v1/chat/completions",
        lambda model, prompt, max_tokens: {
            **_chat_body(model, prompt, max_tokens),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "messages": ("/v1/messages", _messages_body),
    "responses": ("/v1/responses", _responses_body),
}


def _streamed_tokens(line: str) -> int | None:
    """The completion tokens a stream's usage line reports: chat's include_usage chunk, Anthropic's
    message_delta, or a Responses event's ``response.usage``; None for any other line."""
    if not line.startswith("data: ") or '"usage"' not in line:
        return None
    data = json.loads(line[len("data: ") :])
    used = data.get("usage") or (data.get("response") or {}).get("usage")
    if not used:
        return None
    found = used.get("completion_tokens", used.get("output_tokens"))
    return found if isinstance(found, int) else None


async def _stream_once(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, int]:
    """(seconds from the request to the stream's last byte, completion tokens it reported)."""
    started = time.perf_counter()
    tokens = 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            found = _streamed_tokens(line)
            if found is not None:
                tokens = found
    return time.perf_counter() - started, tokens


def bench_stream_apis(args: argparse.Namespace) -> dict[str, Any]:
    """The same prompts streamed through each API of one ``toolrun serve`` on the default model, greedy,
    one client, the APIs in rotation each round (so drifting load falls on all): tokens/s of each, and
    each one's ratio to chat completions (issue #30 asks for at least 0.97)."""
    from toolrun import DEFAULT_MODEL

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rows: dict[str, list[tuple[float, int]]] = {name: [] for name in STREAM_APIS}

    async def measure() -> None:
        async with httpx.AsyncClient(headers=AUTH, timeout=900) as client:
            for path, body in STREAM_APIS.values():  # warm-up: first-use allocations, the template's prefix
                await _stream_once(client, base + path, body(DEFAULT_MODEL, PROMPTS[0], 16))
            names = list(STREAM_APIS)
            for round_no in range(args.rounds):
                for name in names[round_no % len(names) :] + names[: round_no % len(names)]:
                    path, body = STREAM_APIS[name]
                    for i in range(args.stream_prompts):
                        prompt = PROMPTS[(round_no * args.stream_prompts + i) % len(PROMPTS)]
                        request = body(DEFAULT_MODEL, prompt, args.max_tokens)
                        rows[name].append(await _stream_once(client, base + path, request))
                print(f"  round {round_no + 1}/{args.rounds} done ({load_average()})", flush=True)

    with server_process(toolrun_serve_command(port, DEFAULT_MODEL, str(args.threads)), base + "/health"):
        wait_for_quiet(args.wait_quiet)
        asyncio.run(measure())
    results: dict[str, Any] = {"max_tokens": args.max_tokens, "load_average_after": load_average(), "apis": {}}
    for name, measured in rows.items():
        seconds, tokens = sum(r[0] for r in measured), sum(r[1] for r in measured)
        results["apis"][name] = {"requests": len(measured), "tokens": tokens, "seconds": seconds,
                                 "tokens_per_s": tokens / seconds, "raw": measured}  # fmt: skip
    chat = results["apis"]["chat"]["tokens_per_s"]
    for name, summary in results["apis"].items():
        summary["ratio_to_chat"] = summary["tokens_per_s"] / chat
        print(
            f"  {name:10s} {summary['tokens_per_s']:6.1f} tok/s  ({summary['requests']} streams, "
            f"{summary['tokens']} tokens)  {summary['ratio_to_chat']:.3f}x chat",
            flush=True,
        )
    return results


# ------------------------------------------------------------ contention


def bench_contention(args: argparse.Namespace) -> dict[str, Any]:
    """Median latency of an ordinary request, idle and under hostile load, side by side; and their ratio."""
    import threading

    sys.path.insert(0, str(ROOT / "tests" / "server"))
    sys.path.insert(0, str(ROOT / "tests"))  # test_soak's _servers
    from test_soak import hostile_requests, ordinary_call, send, serve_subprocess

    def timed(client: httpx.Client, base_url: str) -> float:
        started = time.perf_counter()
        ordinary_call(client, base_url)
        return time.perf_counter() - started

    with serve_subprocess("--threads", str(args.threads)) as (_, base_url), httpx.Client(timeout=300) as client:
        timed(client, base_url)  # warm-up: the first call builds its grammar
        idle = [timed(client, base_url) for _ in range(args.contention_samples)]
        stop = threading.Event()
        sent = [0]

        def attack(offset: int) -> None:
            with httpx.Client(timeout=300) as own:
                for hostile in hostile_requests(10_000, start=offset * 10_000):
                    if stop.is_set():
                        return
                    send(own, base_url, hostile)
                    sent[0] += 1

        attackers = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(3)]
        for thread in attackers:
            thread.start()
        time.sleep(2)  # let the hostile load reach the queue first
        loaded = [timed(client, base_url) for _ in range(args.contention_samples)]
        stop.set()
        for thread in attackers:
            thread.join(timeout=300)
    result = {
        "idle_p50_s": statistics.median(idle),
        "under_hostile_load_p50_s": statistics.median(loaded),
        "ratio": statistics.median(loaded) / statistics.median(idle),
        "hostile_requests_sent": sent[0],
        "samples": args.contention_samples,
    }
    print(
        f"  ordinary request: idle p50 {result['idle_p50_s']:.2f} s, under hostile load p50 "
        f"{result['under_hostile_load_p50_s']:.2f} s: {result['ratio']:.2f}x ({sent[0]} hostile requests meanwhile)",
        flush=True,
    )
    return result


# ------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_scripted-server":
        run_scripted_server(int(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "_bare-server":
        run_bare_server(int(sys.argv[2]))
        return
    # SIGTERM as an exception, so the servers this started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["overhead", "compare", "contention", "stream-apis", "all"])
    parser.add_argument("--contention-samples", type=int, default=5, help="ordinary requests idle, then under load")
    parser.add_argument("--overhead-requests", type=int, default=1000, help="requests at 1 client (x4 at 64)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--stream-prompts", type=int, default=2, help="stream-apis: prompts per API per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between the two servers")
    parser.add_argument("--one-client-requests", type=int, default=2, help="per round, at 1 client")
    parser.add_argument("--four-client-rounds", type=int, default=1, help="requests per client per round, at 4")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.1,
        metavar="CORES",
        help="repeat a model measurement if other processes used more CPU than this meanwhile",
    )
    parser.add_argument("--max-attempts", type=int, default=4, help="tries per model measurement")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other processes to leave the CPUs idle",
    )
    parser.add_argument(
        "--install-deps", action="store_true", help="pip-install llama-cpp-python[server]'s extras if they are missing"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": load_average(),
    }
    print(f"{results['machine']}; load average {results['load_average_at_start']}", flush=True)
    if args.what in ("overhead", "all"):
        print("HTTP overhead (scripted engine):", flush=True)
        results["overhead"] = bench_overhead(args)
        b = results["overhead"]["binding_in_process"]
        print(f"  binding in-process (no HTTP): p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms", flush=True)
    if args.what in ("compare", "all"):
        print(f"Real model, greedy, max_tokens {args.max_tokens}, {args.threads} threads:", flush=True)
        results["compare"] = bench_compare(args)
    if args.what in ("stream-apis", "all"):
        print(f"Streaming APIs side by side, default model, greedy, max_tokens {args.max_tokens}:", flush=True)
        results["stream_apis"] = bench_stream_apis(args)
    if args.what in ("contention", "all"):
        print(f"Ordinary request under hostile load, default model, {args.threads} threads:", flush=True)
        results["contention"] = bench_contention(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
