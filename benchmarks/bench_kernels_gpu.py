"""GPU benchmark of kerasrecipe.kernels with torch only (no keras needed): run by gpu_check.sh.

* stats of a 64x256x56x56 float32 ReLU-like tensor: kerasrecipe (one launch, results copied to
  the host) vs unfused torch (nine numbers, histc) vs a device copy of the tensor (floor).
  Targets (H100): <= 100 us.
* clipping ResNet-50-shaped gradients (214 tensors, 25.6M; the shapes of
  keras.applications.ResNet50(weights=None).trainable_weights, embedded below) vs
  torch.nn.utils.clip_grad_norm_(foreach=True) and a copy of 25.6M floats. Target <= 0.2 ms.
* clipping 1000 tensors of 4096 vs torch foreach. Target <= 60 us.
* one health probe of a ResNet-50 (issue 7's scale figure): activation_stats_many over the output
  of every leaf module of torchvision's resnet50 (batch 32, 224x224; skipped without torchvision)
  vs the same nine numbers per tensor in unfused torch vs copying every output (floor), next to
  the forward pass that produces them.
Two timings per row, medians over repeats, anchors in the same run:
  call  - CUDA events around one call that starts with the GPU idle: host work (Python, the
          launches) plus GPU work, what a loop of synchronous calls sees;
  busy  - the GPU's busy time per call (every kernel, copy and memset, from torch.profiler's
          CUDA activity): the device work alone, without gaps;
  GPU   - the same events with the host running ahead (a long torch.cuda._sleep queued first,
          so everything is enqueued before the GPU reaches the start event): the GPU work
          alone, what the call costs inside a training step where the GPU is the bottleneck
          (the statistics copy their results to the host, so their GPU figure still includes
          the copies and the host's unpacking after the synchronisation).
Writes the "gpu" section of benchmarks/RESULTS.md and prints a table last. `--stats-only`: the
statistics case alone, one line, nothing written (gpu_check.sh runs it once per histogram variant).
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


SLEEP_CYCLES = 40_000_000  # ~20 ms at H100 clocks: longer than any call's host work here


def gpu_median(fn, repeats=50, warmup=5, ahead=False):
    """Median microseconds between CUDA events around fn(); `ahead`: host runs ahead (GPU time)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if ahead:
            torch.cuda._sleep(SLEEP_CYCLES)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)  # microseconds
    return statistics.median(times)


def busy_us(fn, calls=5):
    """GPU busy time per call (kernels, copies, memsets) from torch.profiler's CUDA activity
    (CUPTI sees every kernel of the process, ours included); NaN where the profiler fails."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
        total = 0.0
        for e in prof.key_averages():
            if e.device_type == DeviceType.CUDA:
                total += getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)
        return total / calls
    except Exception as e:  # pragma: no cover - depends on the profiler build
        print(f"profiler failed: {type(e).__name__}: {e}")
        return float("nan")


def both(fn, repeats=30, warmup=5):
    """(call us, GPU us, GPU busy us)."""
    return (gpu_median(fn, repeats, warmup), gpu_median(fn, max(repeats // 2, 3), 1, ahead=True),
            busy_us(fn, 3 if repeats < 10 else 5))


def torch_nine(t):
    return (t.mean(), t.std(), t.min(), t.max(), (t == 0).sum(), (t.abs() >= 0.99).sum(), t.isnan().sum(),
            t.isinf().sum(), torch.histc(t, bins=64))


def resnet_probe(dev):
    try:
        import torchvision
    except ImportError:
        print("torchvision missing: ResNet-50 probe case skipped")
        return []
    from kerasrecipe import kernels

    net = torchvision.models.resnet50().to(dev).eval()
    outs = []
    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, o: outs.append(o.clone())) for m in leaves]
    x = torch.randn(32, 3, 224, 224, device=dev)
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    n = sum(o.numel() for o in outs)
    with torch.no_grad():
        t_fwd = both(lambda: net(x), repeats=10)
    t_ours = both(lambda: kernels.activation_stats_many(outs), repeats=10)
    t_torch = both(lambda: [torch_nine(o) for o in outs], repeats=6, warmup=1)
    copies = [torch.empty_like(o) for o in outs]
    t_copy = both(lambda: [c.copy_(o) for c, o in zip(copies, outs)], repeats=10)
    label = f"probe ResNet-50 ({len(outs)} outputs, {n / 1e9:.2f} G values)"
    return [(label, "kerasrecipe activation_stats_many", t_ours, f"{t_ours[0] / t_fwd[0]:.2f}x the forward pass"),
            ("", "torch, nine numbers per tensor unfused", t_torch, f"{t_torch[0] / t_ours[0]:.1f}x slower than ours"),
            ("", "copy of every output (floor)", t_copy, f"ours = {t_ours[0] / t_copy[0]:.2f}x the floor"),
            ("", "forward pass (eval, no grad)", t_fwd, "")]


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
    t_ours = both(lambda: kernels.activation_stats(x))
    if "--stats-only" in sys.argv:  # gpu_check.sh's repeat of the statistics figure (its spread)
        t_copy = both(lambda: y.copy_(x))
        t_sum = busy_us(lambda: x.sum())  # a read of the tensor: the floor for a one-pass reduction
        print(f"stats 64x256x56x56 f32: call {t_ours[0]:.1f} us, GPU {t_ours[1]:.1f} us, "
              f"busy {t_ours[2]:.1f} us (target <= 100); device copy busy {t_copy[2]:.1f} us, torch sum busy "
              f"{t_sum:.1f} us")
        return
    t_torch = both(lambda: torch_nine(x), repeats=20)
    t_copy = both(lambda: y.copy_(x))
    rows += [("stats 64x256x56x56 f32", "kerasrecipe activation_stats", t_ours, "target <= 100 us"),
             ("", "torch, nine numbers unfused", t_torch, f"{t_torch[0] / t_ours[0]:.1f}x slower than ours"),
             ("", "device copy (floor)", t_copy, f"ours = {t_ours[0] / t_copy[0]:.2f}x the floor")]
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
        t_k = both(lambda: kernels.clip_by_global_norm(g, max_norm))
        t_t = both(lambda: torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True))
        n = sum(t.numel() for t in g)
        flat, flat2 = torch.empty(n, device=dev), torch.empty(n, device=dev)
        t_c = both(lambda: flat2.copy_(flat))
        rows += [(label, "kerasrecipe clip_by_global_norm", t_k, target),
                 ("", "torch clip_grad_norm_(foreach=True)", t_t,
                  f"{t_t[0] / t_k[0]:.1f}x (call) / {t_t[1] / t_k[1]:.1f}x (GPU) slower than ours"),
                 ("", f"copy of {n / 1e6:.1f}M floats (floor)", t_c, f"ours = {t_k[1] / t_c[1]:.2f}x the floor (GPU)")]
        del g, params, flat, flat2

    rows += resnet_probe(dev)

    md = ["## kernels (GPU)", "", f"Card: **{name}**. Machine: {machine()}. torch {torch.__version__}.", "",
          "| case | implementation | call us | GPU us | busy us | note |", "|---|---|---:|---:|---:|---|"]
    md += [f"| {c} | {i} | {t[0]:.1f} | {t[1]:.1f} | {t[2]:.1f} | {r} |" for c, i, t, r in rows]
    md += ["", "Generated by `benchmarks/gpu_check.sh` (benchmarks/bench_kernels_gpu.py); CUDA-event medians. "
           "*call*: one call starting with the GPU idle (host work + GPU work); *GPU*: the host ran ahead "
           "(a long sleep kernel queued first), so the events time the GPU work alone; *busy*: the sum of the "
           "call's kernels, copies and memsets as torch.profiler (CUPTI) records them."]
    write_section("gpu", "\n".join(md))
    print()
    print(f"{'case':44s} {'implementation':40s} {'call us':>9s} {'GPU us':>9s} {'busy us':>9s}  note")
    for c, i, t, r in rows:
        print(f"{c:44s} {i:40s} {t[0]:9.1f} {t[1]:9.1f} {t[2]:9.1f}  {r}")


if __name__ == "__main__":
    main()
