"""GPU benchmark of kerasrecipe.kernels with torch only (no keras needed): run by gpu_check.sh.

* stats of a 64x256x56x56 float32 ReLU-like tensor: kerasrecipe (one launch, results copied to
  the host) vs unfused torch (nine numbers, histc) vs a device copy of the tensor (floor).
  Targets (H100): <= 100 us.
* clipping ResNet-50-shaped gradients (214 tensors, 25.6M; the shapes of
  keras.applications.ResNet50(weights=None).trainable_weights, embedded below) vs
  torch.nn.utils.clip_grad_norm_(foreach=True) and a copy of 25.6M floats. Target <= 0.2 ms.
* clipping 1000 tensors of 4096 vs torch foreach. Target <= 60 us.
Timings: CUDA events around each call, median over repeats, anchors in the same run.
Writes the "gpu" section of benchmarks/RESULTS.md and prints a table last.
"""
from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from _results import machine, write_section  # noqa: E402

RESNET50_SHAPES = [(7, 7, 3, 64), (64,), (64,), (64,), (1, 1, 64, 64), (64,), (64,), (64,), (3, 3, 64, 64), (64,), (64,), (64,), (1, 1, 64, 256), (256,), (1, 1, 64, 256), (256,), (256,), (256,), (256,), (256,), (1, 1, 256, 64), (64,), (64,), (64,), (3, 3, 64, 64), (64,), (64,), (64,), (1, 1, 64, 256), (256,), (256,), (256,), (1, 1, 256, 64), (64,), (64,), (64,), (3, 3, 64, 64), (64,), (64,), (64,), (1, 1, 64, 256), (256,), (256,), (256,), (1, 1, 256, 128), (128,), (128,), (128,), (3, 3, 128, 128), (128,), (128,), (128,), (1, 1, 256, 512), (512,), (1, 1, 128, 512), (512,), (512,), (512,), (512,), (512,), (1, 1, 512, 128), (128,), (128,), (128,), (3, 3, 128, 128), (128,), (128,), (128,), (1, 1, 128, 512), (512,), (512,), (512,), (1, 1, 512, 128), (128,), (128,), (128,), (3, 3, 128, 128), (128,), (128,), (128,), (1, 1, 128, 512), (512,), (512,), (512,), (1, 1, 512, 128), (128,), (128,), (128,), (3, 3, 128, 128), (128,), (128,), (128,), (1, 1, 128, 512), (512,), (512,), (512,), (1, 1, 512, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 512, 1024), (1024,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1024,), (1024,), (1, 1, 1024, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1, 1, 1024, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1, 1, 1024, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1, 1, 1024, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1, 1, 1024, 256), (256,), (256,), (256,), (3, 3, 256, 256), (256,), (256,), (256,), (1, 1, 256, 1024), (1024,), (1024,), (1024,), (1, 1, 1024, 512), (512,), (512,), (512,), (3, 3, 512, 512), (512,), (512,), (512,), (1, 1, 1024, 2048), (2048,), (1, 1, 512, 2048), (2048,), (2048,), (2048,), (2048,), (2048,), (1, 1, 2048, 512), (512,), (512,), (512,), (3, 3, 512, 512), (512,), (512,), (512,), (1, 1, 512, 2048), (2048,), (2048,), (2048,), (1, 1, 2048, 512), (512,), (512,), (512,), (3, 3, 512, 512), (512,), (512,), (512,), (1, 1, 512, 2048), (2048,), (2048,), (2048,), (2048, 1000), (1000,)]


def gpu_median(fn, repeats=50, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)  # microseconds
    return statistics.median(times)


def torch_nine(t):
    return (t.mean(), t.std(), t.min(), t.max(), (t == 0).sum(), (t.abs() >= 0.99).sum(), t.isnan().sum(),
            t.isinf().sum(), torch.histc(t, bins=64))


def main():
    from kerasrecipe import kernels

    info = kernels.info()
    print(info)
    if not info["gpu_visible"]:
        sys.exit("no GPU visible to the native CUDA code: " + str(info))
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    rows = []

    x = torch.relu(torch.randn(64, 256, 56, 56, device=dev))
    y = torch.empty_like(x)
    t_ours = gpu_median(lambda: kernels.activation_stats(x))
    t_torch = gpu_median(lambda: torch_nine(x), repeats=20)
    t_copy = gpu_median(lambda: y.copy_(x))
    rows += [("stats 64x256x56x56 f32", "kerasrecipe activation_stats", t_ours, "target <= 100 us"),
             ("", "torch, nine numbers unfused", t_torch, f"{t_torch / t_ours:.1f}x slower than ours"),
             ("", "device copy (floor)", t_copy, f"ours = {t_ours / t_copy:.2f}x the floor")]
    del x, y

    def grads(shapes):
        return [torch.randn(s, device=dev) for s in shapes]

    for label, shapes, target in (
        (f"clip ResNet-50 grads ({len(RESNET50_SHAPES)} tensors)", RESNET50_SHAPES, "target <= 200 us"),
        ("clip 1000 x 4096", [(4096,)] * 1000, "target <= 60 us"),
    ):
        g = grads(shapes)
        params = []
        for t in grads(shapes):
            p = torch.nn.Parameter(torch.empty_like(t))
            p.grad = t
            params.append(p)
        max_norm = 1e-3  # every call scales
        t_k = gpu_median(lambda: kernels.clip_by_global_norm(g, max_norm))
        t_t = gpu_median(lambda: torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True))
        n = sum(t.numel() for t in g)
        flat, flat2 = torch.empty(n, device=dev), torch.empty(n, device=dev)
        t_c = gpu_median(lambda: flat2.copy_(flat))
        rows += [(label, "kerasrecipe clip_by_global_norm", t_k, target),
                 ("", "torch clip_grad_norm_(foreach=True)", t_t, f"{t_t / t_k:.1f}x slower than ours"),
                 ("", f"copy of {n / 1e6:.1f}M floats (floor)", t_c, f"ours = {t_k / t_c:.2f}x the floor")]
        del g, params, flat, flat2

    md = ["## kernels (GPU)", "", f"Card: **{name}**. Machine: {machine()}. torch {torch.__version__}.", "",
          "| case | implementation | median us | note |", "|---|---|---:|---|"]
    md += [f"| {c} | {i} | {t:.1f} | {r} |" for c, i, t, r in rows]
    md += ["", "Generated by `benchmarks/gpu_check.sh` (benchmarks/bench_kernels_gpu.py); CUDA-event medians."]
    write_section("gpu", "\n".join(md))
    print()
    print(f"{'case':44s} {'implementation':40s} {'us':>10s}  note")
    for c, i, t, r in rows:
        print(f"{c:44s} {i:40s} {t:10.1f}  {r}")


if __name__ == "__main__":
    main()
