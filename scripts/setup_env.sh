#!/usr/bin/env bash
# Idempotent set-up shared by demo.sh and test.sh: the pinned CPU torch first (only when no torch
# is importable, so an existing CUDA build is kept), then the package and its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] no torch found: installing torch==2.13.0 (CPU build)"
  "$PY" -m pip install --quiet torch==2.13.0
fi
if ! "$PY" -c "import slowfast, fvcore, iopath, av, cv2, pandas, simplejson, sklearn, tensorboard, submitit, tqdm, pytest, ruff" >/dev/null 2>&1 \
   || ! "$PY" -m pip show slowfast >/dev/null 2>&1; then
  echo "[setup] installing the slowfast package and its dependencies"
  "$PY" -m pip install --quiet -e ".[dev]"
fi
