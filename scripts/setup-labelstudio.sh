#!/usr/bin/env bash
# Create the Label Studio environment used by `autocoder review server start` (idempotent).
# label-studio==1.23.2 lives in its own venv: it would downgrade openai, numpy and pyarrow in
# the main one. About 3 minutes the first time, seconds afterwards.
#   AUTOCODER_LABELSTUDIO_VENV  where to create it (default: <repo>/.venv-labelstudio)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
VENV="${AUTOCODER_LABELSTUDIO_VENV:-$ROOT/.venv-labelstudio}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import label_studio, sys; sys.exit(label_studio.__version__ != '1.23.2')" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "label-studio==1.23.2"
fi
echo "Label Studio environment ready: $VENV/bin/python"
