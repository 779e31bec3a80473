#!/usr/bin/env bash
# GPU check of kerasrecipe's CUDA kernels, for a machine with an NVIDIA GPU, python3 (3.12) with
# torch + numpy + pybind11 + pytest, and nvcc. keras is NOT needed.
#   1. builds kerasrecipe._native in place with CUDA (KERASRECIPE_CUDA=1: a missing nvcc is an error)
#   2. runs the GPU tests (tests/test_kernels_gpu.py: torch + numpy only, no conftest)
#   3. runs the GPU benchmark (benchmarks/bench_kernels_gpu.py), which writes the "gpu" section of
#      benchmarks/RESULTS.md and prints a short table last
# Usage: benchmarks/gpu_check.sh        (PY=python3.12 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$(command -v python3.12 || command -v python3)}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "== build ($PY, $(command -v nvcc || echo 'nvcc not on PATH'))"
KERASRECIPE_CUDA=1 KERASRECIPE_CUDA_ARCH="${KERASRECIPE_CUDA_ARCH:--gencode=arch=compute_90,code=sm_90}" \
  "$PY" setup.py -q build_ext --inplace --force
"$PY" -c "from kerasrecipe import kernels; i = kernels.info(); print(i); assert i['gpu_visible'], i"
echo "== GPU tests"
test_rc=0
"$PY" -m pytest -q -p no:cacheprovider --noconftest -m gpu -rs tests/test_kernels_gpu.py || test_rc=$?
echo "== GPU benchmark"
"$PY" benchmarks/bench_kernels_gpu.py
echo "== GPU tests exit status: $test_rc"
exit "$test_rc"
