#!/usr/bin/env bash
# Retrieval baseline on the O*NET dev split (real-world titles, sources 02 + 10, held out).
# Usage: bash benchmarks/baseline.sh [WORKDIR]    (needs ../shared/data and scripts/setup.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ONET="${ONET:-$ROOT/../shared/data/onet_29.2}"
WORK="${1:-/tmp/autocoder-bench}"
export AUTOCODER_HOME="$WORK/home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
AC="$ROOT/.venv/bin/autocoder"
mkdir -p "$WORK"
"$AC" dev-split "$ONET" -o "$WORK/dev.csv"
"$AC" taxonomy import onet "$ONET" --holdout "$WORK/dev.csv"
time "$AC" index build
time "$AC" code "$WORK/dev.csv" -o "$WORK/dev_pred.csv"
"$AC" eval --gold "$WORK/dev.csv" --pred "$WORK/dev_pred.csv" -o "$WORK/report"
