#!/usr/bin/env bash
# Sets up .venv from scratch on a fresh machine: pinned dependencies, a llama-cpp-python wheel
# (built once, ~8 minutes on 2 cores, then reused from the wheel cache), and toolrun itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LLAMA_VERSION=0.3.36
WHEEL_CACHE=${TOOLRUN_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolrun/wheels}
STAMP=.venv/.toolrun-bootstrap
WANT="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)-llama-$LLAMA_VERSION"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x .venv/bin/python ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.lock

mkdir -p "$WHEEL_CACHE"
wheel=$(ls "$WHEEL_CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "Building llama-cpp-python $LLAMA_VERSION from source (about 8 minutes on 2 cores; cached afterwards)..." >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/python -m pip wheel --quiet --no-deps \
    "llama-cpp-python==$LLAMA_VERSION" -w "$WHEEL_CACHE"
  wheel=$(ls "$WHEEL_CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1)
fi
.venv/bin/python -m pip install --quiet --no-deps "$wheel"
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "$WANT" > "$STAMP"
