#!/usr/bin/env bash
# GPU check of kerasrecipe, for a machine with an NVIDIA GPU, python3 (3.12) with torch + numpy +
# pybind11 + pytest, and nvcc. Stages:
#   1. builds kerasrecipe._native in place with CUDA (KERASRECIPE_CUDA=1: a missing nvcc is an error)
#   2. runs the GPU tests (tests/test_kernels_gpu.py: torch + numpy only, no conftest)
#   3. runs the GPU kernel benchmark (benchmarks/bench_kernels_gpu.py: the "gpu" section of RESULTS.md),
#      then the statistics tests and timing again with KERASRECIPE_GPU_HIST=private (the log2
#      histogram in private per-thread counters instead of per-warp atomics), A/B/A, and Nsight
#      Compute's view of the statistics kernel for both when ncu is there (benchmarks/ncu_stats.py)
#   4. when keras imports (e.g. from wheels carried in .whl/, installed to /tmp/site first): the
#      clipping benchmark on the GPU with whole ResNet-50 training steps (benchmarks/bench_clipping.py
#      --train-step: the "clipping-gpu" section)
#   5. when keras imports and GPU_SUITE=1: the test suite (or SUITE_ARGS) on the torch backend, on
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

echo "== statistics kernel variants (experiment switches KERASRECIPE_GPU_HIST, KERASRECIPE_GPU_BPSM): tests, then A/B/A timing"
KERASRECIPE_GPU_HIST=warp "$PY" -m pytest -q -p no:cacheprovider --noconftest -m gpu -k "stats or misaligned" \
  tests/test_kernels_gpu.py 2>&1 | tee "$LOG/gpu_tests_warp.log"
private_rc=${PIPESTATUS[0]}
for v in ":" "warp:" "private:" ":4" ":16" ":"; do
  KERASRECIPE_GPU_HIST=${v%%:*} KERASRECIPE_GPU_BPSM=${v##*:} "$PY" benchmarks/bench_kernels_gpu.py --stats-only 2>&1 \
    | grep -E "^stats|Error" | tee -a "$LOG/hist_ab.log"
done
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)"
if [ -n "$NCU" ]; then  # where the statistics kernel's time goes (shared memory, issue, DRAM)
  echo "== Nsight Compute: the statistics kernel, packed and per-warp histograms"
  for v in ""; do
    KERASRECIPE_GPU_HIST=$v timeout 120 "$NCU" --kernel-name regex:stats_kernel --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section Occupancy \
      --metrics smsp__inst_executed.sum,smsp__inst_executed_op_shared_atom.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second \
      "$PY" benchmarks/ncu_stats.py >"$LOG/ncu_stats_${v:-packed}.txt" 2>&1 || echo "ncu failed (see $LOG/ncu_stats_${v:-packed}.txt)"
    grep -E "gpu__time_duration|inst_executed.sum|shared_atom|bank_conflicts|dram__|per_second|Throughput|Stall|Achieved Occ|ERR" "$LOG/ncu_stats_${v:-packed}.txt" | head -16
  done
fi

clip_rc=skipped suite_rc=skipped
if [ "${CLIP_BENCH:-0}" = 1 ] && KERAS_BACKEND=torch "$PY" -c "import keras; print('keras', keras.__version__)"; then
  echo "== clipping benchmark (torch backend, GPU)"
  KERAS_BACKEND=torch "$PY" benchmarks/bench_clipping.py --train-step --repeats "${CLIP_REPEATS:-30}" \
    --profile "$LOG/clip_profile.txt" 2>&1 | tee "$LOG/bench_clipping_gpu.log"
  clip_rc=${PIPESTATUS[0]}
  if [ "${GPU_SUITE:-0}" = 1 ]; then
    echo "== test suite, torch backend on the GPU"
    xd=""; "$PY" -c "import xdist" 2>/dev/null && xd="-n ${SUITE_WORKERS:-8}"
    KERAS_BACKEND=torch timeout "${SUITE_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider $xd -rfE ${SUITE_ARGS:-tests} \
      >"$LOG/suite_torch_gpu.log" 2>&1
    suite_rc=$?
    tail -40 "$LOG/suite_torch_gpu.log"
  fi
else
  echo "(CLIP_BENCH unset or keras not importable: clipping benchmark and suite skipped)"
fi
cp benchmarks/RESULTS.md "$LOG/RESULTS.md"

echo
echo "================ summary"
grep -E "passed|failed|error" "$LOG/gpu_tests.log" | tail -1 | sed 's/^/GPU tests: /'
sed -n '/^case /,$p' "$LOG/bench_kernels_gpu.log"
grep -E "passed|failed|error" "$LOG/gpu_tests_warp.log" | tail -1 | sed 's/^/GPU stats tests, per-warp histogram: /'
cat "$LOG/hist_ab.log"
[ -f "$LOG/bench_clipping_gpu.log" ] && grep -E "^\| (SGD|Adam)" "$LOG/bench_clipping_gpu.log"
[ -f "$LOG/suite_torch_gpu.log" ] && grep -E "passed|failed" "$LOG/suite_torch_gpu.log" | tail -1 | sed 's/^/torch suite on GPU: /'
echo "exit status: GPU tests $test_rc (per-warp histogram: $private_rc), clipping $clip_rc, suite $suite_rc"
exit "$test_rc"
