#!/usr/bin/env bash
# Set up (idempotent), start the services the integration tests use, run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
