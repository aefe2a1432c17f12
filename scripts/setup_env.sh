#!/usr/bin/env bash
# Idempotent set-up shared by demo.sh and test.sh: the pinned CPU torch first (only when no torch
# is importable, so an existing CUDA build is kept), then this checkout's package (editable) and
# its dependencies, unless they are already installed from this very checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
here=$(pwd -P)
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] no torch found: installing torch==2.13.0 (CPU build)"
  "$PY" -m pip install --quiet torch==2.13.0
fi
# Where `import slowfast` resolves from outside the checkout (tools/*.py run that way).
installed=$(cd / && "$PY" -c "import os, slowfast; print(os.path.dirname(os.path.dirname(os.path.realpath(slowfast.__file__))))" 2>/dev/null || true)
deps_ok=1
"$PY" -c "import fvcore, iopath, av, cv2, pandas, simplejson, sklearn, tensorboard, submitit, tqdm, psutil, matplotlib, pytest, ruff" >/dev/null 2>&1 || deps_ok=0
if [ "$installed" != "$here" ] || [ "$deps_ok" = 0 ]; then
  echo "[setup] installing the slowfast package from $here and its dependencies"
  "$PY" -m pip install --quiet -e ".[dev]"
fi
"$PY" -c "import torch; print('[setup] torch', torch.__version__)"
