#!/usr/bin/env bash
# Start, stop or check the local llama.cpp server (Gemma 3 270M) used offline and in CI.
#   scripts/llm-server.sh start [--port 8001] [--dir DIR] [--threads N]
#   scripts/llm-server.sh status | stop
# The server runs under $AUTOCODER_LLAMA_PYTHON (default: <repo>/.venv-llm/bin/python);
# this wrapper runs the manager with $AUTOCODER_PYTHON (default: <repo>/.venv/bin/python).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${AUTOCODER_PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py="python3"; fi
fi
exec "$py" -m autocoder.llm.server "$@"
