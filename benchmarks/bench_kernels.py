"""CPU benchmark of kerasrecipe.kernels (writes the "kernels" section of RESULTS.md).

1. Activation statistics of a 64x64x64x64 float32 ReLU-like tensor (16.8M values):
   kerasrecipe (one pass, native) vs NumPy computing the nine numbers one by one (mean, std,
   min, max, zero count, saturation count, isnan, isinf, 64-bin histogram) vs the same with torch
   CPU ops vs a memory-copy floor (the faster of np.copyto and torch's threaded copy_).
   Targets: >= 30x faster than NumPy, <= 2.5x the copy floor.
2. Global-norm clipping of gradients shaped like keras.applications.ResNet50(weights=None)'s
   trainable weights (214 tensors, 25.6M values) vs torch.nn.utils.clip_grad_norm_(foreach=True).
   Target: no slower than torch. max_norm is small enough that every call really scales
   (both implementations do the norm pass and the scaling pass each time).

Every figure is a median over repeats, with its anchors measured in the same run.
Run: make bench   (or: .venv/bin/python benchmarks/bench_kernels.py [--quick])
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from _results import RESULTS, machine, median_time, write_section  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 5 if QUICK else 11


def numpy_nine(x):
    return (x.mean(), x.std(), x.min(), x.max(), np.count_nonzero(x == 0), np.count_nonzero(np.abs(x) >= 0.99),
            np.count_nonzero(np.isnan(x)), np.count_nonzero(np.isinf(x)), np.histogram(x, bins=64))


def torch_nine(torch, t):
    return (t.mean(), t.std(), t.min(), t.max(), (t == 0).sum(), (t.abs() >= 0.99).sum(), t.isnan().sum(),
            t.isinf().sum(), torch.histc(t, bins=64))


def resnet50_shapes():
    import keras

    model = keras.applications.ResNet50(weights=None)
    shapes = [tuple(int(d) for d in w.shape) for w in model.trainable_weights]
    keras.utils.clear_session()
    return shapes


def main():
    import torch

    from kerasrecipe import _native, kernels

    console = Console()
    info = kernels.info()
    if not info["native_built"]:
        console.print(f"[red]native module not built ({info['native_error']}): run `make build`[/red]")
        sys.exit(1)
    rng = np.random.default_rng(0)
    rows = []

    # ---- 1. activation statistics
    x = np.maximum(rng.standard_normal((64, 64, 64, 64), dtype=np.float32), 0)
    t = torch.from_numpy(x)
    dst = np.empty_like(x)
    tdst = torch.empty_like(t)
    t_ours = median_time(lambda: kernels.activation_stats(x), repeats=REPEATS)
    t_np = median_time(lambda: numpy_nine(x), repeats=max(3, REPEATS // 2), warmup=1)
    t_torch = median_time(lambda: torch_nine(torch, t), repeats=3, warmup=1)  # the slowest anchor
    t_copy_np = median_time(lambda: np.copyto(dst, x), repeats=REPEATS)
    t_copy_torch = median_time(lambda: tdst.copy_(t), repeats=REPEATS)
    t_floor = min(t_copy_np, t_copy_torch)
    floor_name = "np.copyto" if t_copy_np <= t_copy_torch else "torch copy_"
    console.print(f"stats: ours {t_ours * 1e3:.2f} ms, NumPy {t_np * 1e3:.1f} ms, torch {t_torch * 1e3:.1f} ms, "
                  f"copy {t_floor * 1e3:.2f} ms")
    rows += [
        ("stats 64x64x64x64 f32", "kerasrecipe activation_stats", t_ours, ""),
        ("", "NumPy, nine numbers separately", t_np, f"{t_np / t_ours:.1f}x slower than ours (target >= 30x)"),
        ("", "torch CPU ops, nine numbers", t_torch, f"{t_torch / t_ours:.1f}x slower than ours"),
        ("", f"copy floor ({floor_name}; np {t_copy_np * 1e3:.2f} / torch {t_copy_torch * 1e3:.2f} ms)", t_floor,
         f"ours = {t_ours / t_floor:.2f}x the floor (target <= 2.5x)"),
    ]
    del x, t, dst, tdst

    # ---- 2. clipping, ResNet-50 shapes
    shapes = resnet50_shapes()
    n_values = sum(int(np.prod(s)) for s in shapes)
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    tgrads = [g.copy() for g in grads]
    params = []
    for g in tgrads:
        p = torch.nn.Parameter(torch.empty(g.shape))
        p.grad = torch.from_numpy(g)
        params.append(p)
    max_norm = 1e-3  # every call scales (coef < 1 even once clipped, because of eps)
    # ours first: torch's intra-op worker threads keep spinning for a while after its own ops
    tt = [p.grad for p in params]
    t_clip = median_time(lambda: kernels.clip_by_global_norm(grads, max_norm), repeats=REPEATS)
    t_clip_ours_torch = median_time(lambda: kernels.clip_by_global_norm(tt, max_norm), repeats=REPEATS)
    t_clip_torch = median_time(lambda: torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True),
                               repeats=REPEATS)
    rows += [
        (f"clip ResNet-50 grads ({len(shapes)} tensors, {n_values / 1e6:.1f}M)", "kerasrecipe, NumPy arrays", t_clip,
         f"{t_clip_torch / t_clip:.2f}x torch's speed (target >= 1)"),
        ("", "kerasrecipe, torch tensors", t_clip_ours_torch, f"{t_clip_torch / t_clip_ours_torch:.2f}x torch's speed"),
        ("", "torch clip_grad_norm_(foreach=True)", t_clip_torch, ""),
    ]

    table = Table(title="kerasrecipe.kernels, CPU (median wall time)")
    for col in ("case", "implementation", "ms", "ratio"):
        table.add_column(col)
    for case, impl, sec, ratio in rows:
        table.add_row(case, impl, f"{sec * 1e3:.2f}", ratio)
    console.print(table)

    load = os.getloadavg()
    md = [
        "## kernels (CPU)",
        "",
        f"Machine: {machine()}. Threads used by the kernels: {info['threads']} "
        f"(SIMD copy: {_native.simd_level()}); torch threads: {torch.get_num_threads()}. "
        f"Load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(this machine is shared: absolute times are noisy, ratios less so).",
        "",
        "| case | implementation | median ms | ratio |",
        "|---|---|---:|---|",
    ]
    md += [f"| {c} | {i} | {s * 1e3:.2f} | {r} |" for c, i, s, r in rows]
    md += ["", f"Generated by `benchmarks/bench_kernels.py`{' --quick' if QUICK else ''}."]
    write_section("kernels", "\n".join(md))
    text = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    if "<!-- BEGIN gpu -->" not in text:
        write_section("gpu", GPU_PENDING)
    console.print(f"wrote the 'kernels' section of {RESULTS}")


GPU_PENDING = """## kernels (GPU)

**Not measured yet.** The CUDA kernels compile cleanly into the extension (nvcc 13, sm_80/sm_90
+ PTX) and their tests exist (`tests/test_kernels_gpu.py`, marked `gpu`), but the machine this
project was built on has no GPU and no GPU machine was lent to this work, so the CUDA code has
not been executed yet: neither its results nor its speed are verified. Run
`benchmarks/gpu_check.sh` on a machine with an NVIDIA GPU (python3.12, torch, numpy, pybind11,
nvcc): it builds the extension, runs the GPU tests, times stats of a 64x256x56x56 float32 tensor
(vs unfused torch and a copy floor), ResNet-50-shaped clipping and 1000 tensors of 4096 (vs torch
foreach), and replaces this section with the figures and the card's name."""

if __name__ == "__main__":
    main()
