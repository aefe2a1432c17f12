#!/usr/bin/env bash
# The checks that need a CUDA device, as one command (CI has no GPU; run this where one is).
#
#   bash scripts/gpu_check.sh prepare   # on a machine with PyPI: wheels of what a bare CUDA
#                                       # image may lack (fvcore, iopath, PyAV, submitit, ...)
#                                       # into .whl/ (git-ignored), for WHEEL_PYTHON (3.12)
#   bash scripts/gpu_check.sh [--quick] # on the GPU machine: install .whl/ (if present) into
#                                       # /tmp/gpu_check_site, then the CUDA tests and the GPU
#                                       # benchmark figures
#
# Runs: tests/test_pgt_cuda.py (GPU = CPU per step, fp16 autocast + GradScaler, bf16, run_net
# with PGT and AMP on one GPU) and the other CUDA tests, then benchmarks/pgt_memory.py --amp
# (crops 128 and 224; --quick: 128 only). Logs and the benchmark's JSON summary go to $OUT (or
# ./gpu_check_out). Exit status: that of the tests, else of the benchmark.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "prepare" ]; then
  set -e
  pyver=${WHEEL_PYTHON:-3.12}
  rm -rf .whl && mkdir -p .whl
  # Pure-Python packages (some are published as source only): built here, any Python 3.
  "$PY" -m pip wheel --quiet --no-deps -w .whl "fvcore==0.1.5.post20221221" "iopath==0.1.10" \
    "yacs==0.1.8" "termcolor" "submitit"
  # PyAV is compiled: the manylinux x86-64 wheel for the GPU machine's Python.
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "av>=10"
  ls -l .whl
  echo "[gpu_check] wheels for Python $pyver in .whl/ ($(du -sh .whl | cut -f1)); carry .whl to the GPU machine"
  exit 0
fi

quick=0
[ "${1:-}" = "--quick" ] && quick=1
out=${OUT:-gpu_check_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  # Only what the image lacks: an installed package (torch above all) is never replaced.
  site=/tmp/gpu_check_site
  missing=()
  for whl in .whl/*.whl; do
    name=$(basename "$whl" | cut -d- -f1 | tr '_' '-')
    "$PY" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$whl")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${missing[@]}" || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
} | tee "$out/gpu_check.log"
if ! "$PY" -c "import slowfast.models, slowfast.datasets, fvcore, iopath, av, submitit" \
  2>>"$out/gpu_check.log"; then
  echo "[gpu_check] a dependency is missing (see $out/gpu_check.log): run 'bash scripts/gpu_check.sh prepare' where PyPI is reachable and carry .whl" | tee -a "$out/gpu_check.log"
  exit 1
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "[gpu_check] torch sees no CUDA device: nothing to check here" | tee -a "$out/gpu_check.log"
  exit 1
fi

echo "[gpu_check] CUDA tests" | tee -a "$out/gpu_check.log"
"$PY" -m pytest -q -rs -p no:cacheprovider tests/test_pgt_cuda.py \
  tests/test_models.py::test_build_model_moves_to_gpu \
  tests/test_model_stats.py::test_counts_a_model_on_cuda 2>&1 | tee -a "$out/gpu_check.log"
tests_rc=${PIPESTATUS[0]}

crops="128 224"
[ "$quick" = 1 ] && crops=128
echo "[gpu_check] benchmarks/pgt_memory.py --amp --crop $crops" | tee -a "$out/gpu_check.log"
# shellcheck disable=SC2086
"$PY" benchmarks/pgt_memory.py --amp --crop $crops --summary "$out/pgt_memory.json" 2>&1 \
  | tee "$out/pgt_memory.log"
bench_rc=${PIPESTATUS[0]}
echo "[gpu_check] tests exit $tests_rc, benchmark exit $bench_rc" | tee -a "$out/gpu_check.log"
[ "$tests_rc" = 0 ] || exit "$tests_rc"
exit "$bench_rc"
