"""What clipping adds to `optimizer.apply` on ResNet-50's gradients (tip D8), torch backend.

    KERAS_BACKEND=torch python benchmarks/bench_clipping.py [--repeats 15] [--device cpu|cuda]

For SGD and Adam it times `optimizer.apply(grads, variables)` three ways on the same gradients:
no clipping (the anchor), Keras's `global_clipnorm`, and `kerasrecipe.optimizers.clip_global_norm`
(the fused kernel at Keras's clipping hook). The figure of merit is the time clipping ADDS to
apply (clipped minus unclipped, medians of the same run), ours vs Keras's; torch's
`clip_grad_norm_` on the same tensors is shown for reference. Writes the "clipping" section of
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--max-norm", type=float, default=1.0)
    p.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    p.add_argument("--train-step", action="store_true",
                   help="also time whole ResNet-50 training steps (batch 32, 224x224; meant for a GPU)")
    p.add_argument("--train-size", type=int, default=224, help="image side for --train-step")
    p.add_argument("--profile", metavar="PATH", help="write torch.profiler tables of three applies per variant to PATH")
    p.add_argument("--processes", type=int, default=0,
                   help="processes that measure the applies, one after another (0: 3 on a CPU, 1 on a GPU). "
                        "On the CPU what Keras's global_clipnorm adds moves between processes by up to 2x "
                        "(36-79 ms here, same code): each process's ratio is reported, and their median")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import keras
    import torch

    if keras.backend.backend() != "torch":
        sys.exit("run with KERAS_BACKEND=torch")
    from _results import machine, median_time, write_section

    from keras.src.backend.torch.core import get_device

    from kerasrecipe import kernels
    from kerasrecipe.optimizers import clip_global_norm

    torch.set_flush_denormal(True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else None
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    variables = list(model.trainable_variables)
    # Gradient-shaped Gaussian tensors: the real gradients of an untrained ResNet-50 are full of values
    # whose squares are float32 denormals, and denormal arithmetic (not clipping) then dominates every
    # timing on the CPU. Values do not change the work clipping does; their norm is made > max_norm.
    rng = np.random.default_rng(0)
    grads_np = [rng.normal(0.0, 1e-2, size=tuple(v.shape)).astype("float32") for v in variables]
    n_params = sum(g.size for g in grads_np)
    norm = float(np.sqrt(sum(np.sum(g.astype("float64") ** 2) for g in grads_np)))
    dev_grads = [torch.as_tensor(g, device=get_device()) for g in grads_np]

    def fresh_grads():
        # written last tensor first, as a backward pass writes them (the output layer's gradients
        # first, the input layer's last): the cache then holds what backward leaves in it
        out = [g.clone() for g in reversed(dev_grads)]
        out.reverse()
        return out

    def interleaved(makers):
        """Per-call times of `apply` for each variant, the variants taking turns call by call (in a
        rotating order) so that drifts of the shared machine hit all of them alike. Every call gets
        freshly cloned gradients (ours clips in place), cloned outside the timed region, as a
        training step's gradients are freshly written by the backward pass."""
        import time

        opts = {k: make() for k, make in makers.items()}
        for opt in opts.values():
            opt.build(variables)
            for _ in range(2):
                opt.apply(fresh_grads(), variables)
        times = {k: [] for k in opts}
        names = list(opts)
        for r in range(args.repeats):
            for k in names[r % len(names):] + names[:r % len(names)]:
                grads = fresh_grads()
                if sync:
                    sync()
                t0 = time.perf_counter()
                opts[k].apply(grads, variables)
                if sync:
                    sync()
                times[k].append(time.perf_counter() - t0)
                del grads
        return times

    rows = []
    for name, cls, kw in (("SGD", keras.optimizers.SGD, {"learning_rate": 1e-6}),
                          ("Adam", keras.optimizers.Adam, {"learning_rate": 1e-6})):
        t = interleaved({"base": lambda: cls(**kw), "keras": lambda: cls(global_clipnorm=args.max_norm, **kw),
                         "ours": lambda: clip_global_norm(cls(**kw), args.max_norm)})
        med = {k: statistics.median(v) for k, v in t.items()}
        # added = median over rounds of (variant - no clipping) in the same round
        add = {k: statistics.median([a - b for a, b in zip(t[k], t["base"])]) for k in ("keras", "ours")}
        rows.append((name, med["base"], add["keras"], add["ours"]))
        if args.profile:
            profile_applies(args.profile, name, {
                "no clipping": lambda: cls(**kw), "keras global_clipnorm": lambda: cls(global_clipnorm=args.max_norm, **kw),
                "ours": lambda: clip_global_norm(cls(**kw), args.max_norm)}, variables, fresh_grads, sync)
        print(f"{name}: apply {med['base'] * 1e3:.1f} ms, keras global_clipnorm +{add['keras'] * 1e3:.1f} ms, "
              f"ours +{add['ours'] * 1e3:.1f} ms", flush=True)

    if args.worker:
        print("ROWS " + json.dumps(rows), flush=True)
        return
    per_process = [rows] + other_processes(args, (args.processes or (3 if device == "cpu" else 1)) - 1)
    rows = []
    for i, (name, *_) in enumerate(per_process[0]):
        cols = list(zip(*[pp[i][1:] for pp in per_process]))
        rows.append((name, *(statistics.median(c) for c in cols), [pp[i][2:] for pp in per_process]))

    tg = fresh_grads()
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in tg]
    for prm, g in zip(params, tg):
        prm.grad = g
    torch_t = median_time(lambda: torch.nn.utils.clip_grad_norm_(params, args.max_norm), repeats=args.repeats,
                          sync=sync)
    kern_t = median_time(lambda: kernels.clip_by_global_norm(tg, args.max_norm), repeats=args.repeats, sync=sync)

    lines = [
        f"Machine: {machine()}; torch {torch.__version__}, keras {keras.__version__}, device {device}, "
        f"threads {torch.get_num_threads()}; kernels path: {kernels.info()['paths']['torch_' + device]}.",
        f"ResNet-50 (weights=None) gradient-shaped Gaussian tensors: {len(grads_np)} tensors, {n_params / 1e6:.1f} M values, "
        f"global norm {norm:.3g}, max_norm {args.max_norm:g}. Medians of {args.repeats} calls of "
        "`optimizer.apply` per variant, the variants taking turns call by call; each call gets freshly cloned "
        "gradients (cloned outside the timing, last tensor first as a backward pass writes them); *added* = median "
        f"over rounds of the difference to no clipping. Measured in {len(per_process)} fresh process(es) one after "
        "another: times are the median over processes; the ratio is that of the medians, then each process's own.",
        "",
        "| optimizer | apply, no clipping | + Keras `global_clipnorm` | + ours (`clip_global_norm`) | Keras added / ours added |",
        "|---|---|---|---|---|",
    ]
    for name, base, added_k, added_o, pairs in rows:
        if added_o <= 0.01 * base:  # below what separate applies can resolve
            ratio = ("ours adds nothing measurable next to the apply (per process: "
                     + ", ".join(f"{o * 1e3:+.1f} ms" for _, o in pairs) + ")")
        else:
            ratios = [f"{k / o:.1f}x" if o > 0 else "n/a" for k, o in pairs]
            ratio = (ratios[0] if len(ratios) == 1 else
                     f"{added_k / added_o:.1f}x (processes: {', '.join(ratios)})")
        lines.append(f"| {name} | {base * 1e3:.1f} ms | +{added_k * 1e3:.1f} ms | +{added_o * 1e3:.1f} ms | {ratio} |")
    lines += [
        "",
        f"Reference on the same tensors: torch `clip_grad_norm_` {torch_t * 1e3:.1f} ms; "
        f"`kerasrecipe.kernels.clip_by_global_norm` alone {kern_t * 1e3:.1f} ms (repeated on the same tensors, which are "
        "within max_norm after the first call: the norm pass only, as the scaling pass is skipped when the "
        "coefficient is 1; inside `apply` every call gets fresh gradients, and SGD and Adam on CPU tensors pay the "
        "norm pass only: the coefficient goes into the update (SGD's learning rate, Adam's moment weights) instead "
        "of a pass scaling the gradients).",
        "Target (issue 9): ours adds >= 10x less time than Keras's `global_clipnorm`.",
        f"Load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: "
        "differences of medians are noisy when this is high).",
    ]
    if args.train_step:
        lines += ["", *train_step_lines(keras, sync, args)]
    section = "clipping" if device == "cpu" else "clipping-gpu"
    body = f"## {section}\n\n" + "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section(section, body)


def other_processes(args, n):
    """The SGD/Adam rows of `n` more processes (this script with --worker), run one after another."""
    out = []
    for i in range(n):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--repeats", str(args.repeats),
               "--max-norm", str(args.max_norm)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND="torch"))
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("ROWS ")]
        if r.returncode != 0 or not line:
            print(f"process {i + 2} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
            continue
        rows = [tuple(x) for x in json.loads(line[-1][5:])]
        print(f"process {i + 2}: " + "; ".join(f"{nm} keras +{k * 1e3:.1f} ms, ours +{o * 1e3:.1f} ms"
                                                  for nm, _, k, o in rows), flush=True)
        out.append(rows)
    return out


def profile_applies(path, opt_name, makers, variables, fresh_grads, sync):
    """torch.profiler tables (top ops by CPU and by device time) of three `apply` calls per variant."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if sync else [])
    with open(path, "a") as f:
        for label, make in makers.items():
            opt = make()
            opt.build(variables)
            grads = fresh_grads()
            opt.apply([g.clone() for g in grads], variables)
            if sync:
                sync()
            with profile(activities=acts) as prof:
                for _ in range(3):
                    opt.apply([g.clone() for g in grads], variables)
                if sync:
                    sync()
            f.write(f"\n===== {opt_name}, {label} ({type(opt).__mro__[:3]})\n")
            f.write(prof.key_averages().table(sort_by="cpu_time_total", row_limit=18) + "\n")
            if sync:
                f.write(prof.key_averages().table(sort_by="self_device_time_total", row_limit=12) + "\n")


def train_step_lines(keras, sync, args):
    """Median time of a ResNet-50 `train_on_batch` step, three optimizers, rounds alternated."""
    import time

    from kerasrecipe.optimizers import clip_global_norm

    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, args.train_size, args.train_size, 3)).astype("float32")
    y = rng.integers(0, 1000, size=(32,)).astype("int32")
    variants = {
        "SGD, no clipping": lambda: keras.optimizers.SGD(1e-4, momentum=0.9),
        "SGD + Keras global_clipnorm": lambda: keras.optimizers.SGD(1e-4, momentum=0.9, global_clipnorm=args.max_norm),
        "SGD + ours (clip_global_norm)": lambda: clip_global_norm(keras.optimizers.SGD(1e-4, momentum=0.9), args.max_norm),
    }
    models = {}
    for name, make in variants.items():
        keras.utils.set_random_seed(0)
        m = keras.applications.ResNet50(weights=None, input_shape=x.shape[1:])
        m.compile(optimizer=make(), loss="sparse_categorical_crossentropy")
        for _ in range(3):
            m.train_on_batch(x, y)
        models[name] = m
    times = {k: [] for k in models}
    rounds = max(args.repeats, 10)
    for _ in range(rounds):
        for name, m in models.items():
            if sync:
                sync()
            t0 = time.perf_counter()
            m.train_on_batch(x, y)
            if sync:
                sync()
            times[name].append(time.perf_counter() - t0)
    import statistics

    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["SGD, no clipping"]
    out = [f"Whole training step: `model.train_on_batch` of keras.applications.ResNet50(weights=None), batch 32, "
           f"{args.train_size}x{args.train_size}x3, 1000 classes; medians of {rounds} steps per variant, variants alternated step by step.", "",
           "| variant | step | added by clipping |", "|---|---|---|"]
    for k, v in med.items():
        out.append(f"| {k} | {v * 1e3:.1f} ms | {'' if k == 'SGD, no clipping' else f'{(v - base) / base * 100:+.1f}%'} |")
    out += ["", "Target (issue 9, GPU): ours adds <= 1% to the training step."]
    print("\n".join(out), flush=True)
    return out


if __name__ == "__main__":
    main()
