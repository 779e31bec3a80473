#!/usr/bin/env bash
# GPU check of kerasrecipe, for a machine with an NVIDIA GPU, python3 (3.12) with torch + numpy +
# pybind11 + pytest, and nvcc. Stages:
#   1. builds kerasrecipe._native in place with CUDA (KERASRECIPE_CUDA=1: a missing nvcc is an error)
#   2. runs the GPU tests (tests/test_kernels_gpu.py: torch + numpy only, no conftest)
#   3. runs the GPU kernel benchmark (benchmarks/bench_kernels_gpu.py: the "gpu" section of RESULTS.md),
#      then the statistics figure twice more (its spread), and Nsight Compute's view of the
#      statistics kernel when ncu is there (benchmarks/ncu_stats.py)
#   4. when CLIP_BENCH=1 and keras imports (e.g. from wheels carried in .whl/, unpacked to /tmp/site): the
#      clipping benchmark on the GPU with whole ResNet-50 training steps (benchmarks/bench_clipping.py
#      --train-step: the "clipping-gpu" section)
#   5. when GPU_SUITE=1 and keras imports: the test suite (or SUITE_ARGS) on the torch backend, on
#      the GPU (pytest-xdist when present), stopped after SUITE_TIMEOUT seconds (default 240)
# Logs and RESULTS.md go to $OUT when it is set (the device tool); a short table is printed last.
# Usage: benchmarks/gpu_check.sh        (PY=python3.12 to choose the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$(command -v python3.12 || command -v python3)}"
LOG="${OUT:-/tmp/kerasrecipe-gpu-check}"
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # wheels are zip files: unpacked, no pip needed
  "$PY" -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/site') for w in glob.glob('.whl/*.whl')]" \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "== build ($PY, $(command -v nvcc || echo 'nvcc not on PATH'))"
t0=$SECONDS
KERASRECIPE_CUDA=1 KERASRECIPE_CUDA_ARCH="${KERASRECIPE_CUDA_ARCH:--gencode=arch=compute_90,code=sm_90}" \
  "$PY" setup.py -q build_ext --inplace --force >"$LOG/build.log" 2>&1 || { tail -40 "$LOG/build.log"; exit 2; }
echo "built in $((SECONDS - t0)) s"
"$PY" -c "from kerasrecipe import kernels; i = kernels.info(); print(i); assert i['gpu_visible'], i" || exit 3

echo "== GPU tests"
test_rc=0
"$PY" -m pytest -q -p no:cacheprovider --noconftest -m gpu -rs tests/test_kernels_gpu.py 2>&1 | tee "$LOG/gpu_tests.log"
test_rc=${PIPESTATUS[0]}

echo "== GPU kernel benchmark"
"$PY" benchmarks/bench_kernels_gpu.py 2>&1 | tee "$LOG/bench_kernels_gpu.log"

echo "== statistics timing again (spread), then Nsight Compute's view of the kernel"
for r in 1 2; do
  "$PY" benchmarks/bench_kernels_gpu.py --stats-only 2>&1 | grep -E "^stats|Error" | tee -a "$LOG/stats_again.log"
done
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)"
if [ -n "$NCU" ]; then  # where the statistics kernel's time goes (issue, shared memory, DRAM)
  timeout 120 "$NCU" --kernel-name regex:stats_kernel --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section Occupancy \
    --metrics smsp__inst_executed.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second \
    "$PY" benchmarks/ncu_stats.py >"$LOG/ncu_stats.txt" 2>&1 || echo "ncu failed (see $LOG/ncu_stats.txt)"
  grep -E "gpu__time_duration|inst_executed.sum|bank_conflicts|dram__|per_second|Throughput|Achieved Occ|ERR" "$LOG/ncu_stats.txt" | head -14
fi

clip_rc=skipped suite_rc=skipped
if [ "${CLIP_BENCH:-0}" = 1 ] || [ "${GPU_SUITE:-0}" = 1 ]; then
  if KERAS_BACKEND=torch "$PY" -c "import keras; print('keras', keras.__version__)"; then
    if [ "${CLIP_BENCH:-0}" = 1 ]; then
      echo "== clipping benchmark (torch backend, GPU)"
      KERAS_BACKEND=torch "$PY" benchmarks/bench_clipping.py --train-step --repeats "${CLIP_REPEATS:-30}" \
        --profile "$LOG/clip_profile.txt" 2>&1 | tee "$LOG/bench_clipping_gpu.log"
      clip_rc=${PIPESTATUS[0]}
    fi
    if [ "${GPU_SUITE:-0}" = 1 ]; then
      echo "== test suite, torch backend on the GPU"
      xd=""; "$PY" -c "import xdist" 2>/dev/null && xd="-n ${SUITE_WORKERS:-8}"
      KERAS_BACKEND=torch timeout "${SUITE_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider $xd -rfE ${SUITE_ARGS:-tests} \
        >"$LOG/suite_torch_gpu.log" 2>&1
      suite_rc=$?
      tail -40 "$LOG/suite_torch_gpu.log"
    fi
  else
    echo "(keras not importable: clipping benchmark and suite skipped)"
  fi
fi
cp benchmarks/RESULTS.md "$LOG/RESULTS.md"

echo
echo "================ summary"
grep -E "passed|failed|error" "$LOG/gpu_tests.log" | tail -1 | sed 's/^/GPU tests: /'
sed -n '/^case /,$p' "$LOG/bench_kernels_gpu.log"
cat "$LOG/stats_again.log"
[ -f "$LOG/bench_clipping_gpu.log" ] && grep -E "^\| (SGD|Adam)" "$LOG/bench_clipping_gpu.log"
[ -f "$LOG/suite_torch_gpu.log" ] && grep -E "passed|failed" "$LOG/suite_torch_gpu.log" | tail -1 | sed 's/^/torch suite on GPU: /'
echo "exit status: GPU tests $test_rc, clipping $clip_rc, suite $suite_rc"
exit "$test_rc"
