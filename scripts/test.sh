#!/usr/bin/env bash
# Set up (idempotent), lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=${PYTHON:-python3}
echo "[test] ruff check"
"$PY" -m ruff check slowfast tools tests benchmarks
echo "[test] ruff format --check"
"$PY" -m ruff format --check slowfast tools tests benchmarks
echo "[test] pytest"
"$PY" -m pytest -q tests "$@"
