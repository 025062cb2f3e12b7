"""llama.cpp's own ``llama-server``, built from the sources llama-cpp-python vendors (the same llama.cpp commit).

The benchmark compares toolrun with the C++ server on the same GGUF, so the
server must come from the very llama.cpp that toolrun runs on: this helper
downloads the llama-cpp-python sdist of the installed version, configures its
``vendor/llama.cpp`` with CMake (Release, the same default CPU flags the wheel
build uses) and builds the ``llama-server`` target only. The binary is cached
under ``~/.cache/toolrun/llama-server/<version>/`` (``$TOOLRUN_LLAMA_SERVER_CACHE``
moves it), so only the first run pays the several minutes of a 2-core build.

Run: ``.venv/bin/python bench/llama_server.py`` prints the binary's path (building it if needed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path


def cache_dir(llama_version: str) -> Path:
    base = os.environ.get("TOOLRUN_LLAMA_SERVER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "toolrun", "llama-server"
    )
    return Path(base) / llama_version


def llama_server_binary(llama_version: str | None = None, *, quiet: bool = False) -> Path:
    """The cached ``llama-server`` for ``llama_version`` (default: the installed llama-cpp-python), built once."""
    llama_version = llama_version or version("llama-cpp-python")
    target = cache_dir(llama_version)
    binary = target / "llama-server"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    target.mkdir(parents=True, exist_ok=True)
    out = subprocess.DEVNULL if quiet else None
    with tempfile.TemporaryDirectory(prefix="toolrun-llama-server-") as work:
        print(
            f"building llama-server from llama-cpp-python {llama_version}'s vendored llama.cpp "
            "(several minutes on 2 cores; cached afterwards)...",
            file=sys.stderr,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={llama_version}",
                "-d",
                work,
            ],
            check=True,
            stdout=out,
        )
        sdist = next(Path(work).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = next(Path(work).glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = Path(work) / "build"
        subprocess.run(
            [
                "cmake",
                "-S",
                str(source),
                "-B",
                str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_SERVER=ON",
                "-DBUILD_SHARED_LIBS=OFF",
            ],
            check=True,
            stdout=out,
        )
        subprocess.run(
            [
                "cmake",
                "--build",
                str(build),
                "--target",
                "llama-server",
                "--config",
                "Release",
                "-j",
                str(os.cpu_count() or 1),
            ],
            check=True,
            stdout=out,
        )
        built = next(build.glob("**/bin/llama-server"))
        partial = target / "llama-server.partial"
        shutil.copy2(built, partial)
        partial.replace(binary)  # atomic: a concurrent reader sees no half-copied binary
    return binary


def server_command(
    gguf: str, port: int, *, parallel: int, ctx_size: int, threads: str, extra: list[str] | None = None
) -> list[str]:
    """The cached binary's command line on 127.0.0.1 (``extra``: the flags a benchmark sets beyond these)."""
    return [str(llama_server_binary()), "--model", gguf, "--port", str(port), "--host", "127.0.0.1",
            "--parallel", str(parallel), "--ctx-size", str(ctx_size), "--threads", threads,
            "--threads-batch", threads, "--no-webui", *(extra or [])]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="llama-cpp-python version (default: the installed one)")
    print(llama_server_binary(parser.parse_args().version))
