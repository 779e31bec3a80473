"""Overhead of kerasrecipe.default() over a plain fit (issue 7), per backend.

A small CNN on the bundled digits (8x8x1, 1437 training / 360 validation samples, batch 32,
45 steps per epoch) is trained with `callbacks=[]` and with `callbacks=kerasrecipe.default()`
(default config: health probes at the automatic interval, NaN guard, checkpoints, crash backup,
early stopping, LR halving, TensorBoard when installed, live diagnosis), order alternated, in one
process per backend (each backend runs in its own subprocess). Every fit trains the same model,
built and compiled once per process: plain and recipe fits then run the very same compiled train
step, so what differs between them is the callbacks alone, and without a trace/compile per fit
five times as many pairs of fits fit in the time budget (fresh models added their own spread:
per-fit medians of one configuration differed by up to 20%). The first epoch of every fit (the
recipe's one-time set-up, a retrace where a callback needs one) is left out.

Two figures per backend, both medians over all measured epochs:
- step time: epoch begin -> epoch end (training steps + validation), per training step; this is
  where the per-step and probe costs show;
- epoch time: epoch begin -> next epoch begin, which adds the recipe's once-per-epoch work
  (history files, checkpoint, backup, live diagnosis).

    python benchmarks/bench_recipe.py              # all three backends, writes RESULTS.md "recipe"
    python benchmarks/bench_recipe.py --backends jax --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


IN_EPOCH_HOOKS = ("on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_test_begin",
                  "on_test_batch_begin", "on_test_batch_end", "on_test_end")


def worker(budget_s: float, repeats: int = 0) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import keras
    from sklearn.datasets import load_digits

    # ablations: RecipeConfig overrides as JSON, e.g. '{"tensorboard": false}' (--overrides)
    overrides = json.loads(os.environ.get("KERASRECIPE_BENCH_OVERRIDES") or "{}")
    threads = os.environ.get("KERASRECIPE_BENCH_TORCH_THREADS")
    if threads and keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(int(threads))

    from keras.src.utils.python_utils import is_default

    import kerasrecipe as kr

    d = load_digits()
    x = (d.data.astype("float32") / 16.0).reshape(-1, 8, 8, 1)
    y = d.target.astype("int32")
    L = keras.layers

    def build():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(16, 3, padding="same", activation="relu"),
                              L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                              L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
        m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begin, self.end, self.in_epoch, self.hooks = [], [], [], []
            self.cpu_begin, self.cpu_end = [], []

        def on_epoch_begin(self, epoch, logs=None):
            del self.hooks[:]   # in place: the timed hooks append to this very list
            self.begin.append(time.perf_counter())
            self.cpu_begin.append(time.thread_time())

        def on_epoch_end(self, epoch, logs=None):
            self.end.append(time.perf_counter())
            self.cpu_end.append(time.thread_time())
            self.in_epoch.append(sum(self.hooks))

        def on_train_end(self, logs=None):
            self.begin.append(time.perf_counter())  # closes the last epoch for "epoch time"

    def _timed(fn, sink):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                sink.append(time.perf_counter() - t0)
        return run

    epoch_cost = {}
    tmp = tempfile.mkdtemp(prefix="bench_recipe_")
    steps = int(np.ceil(len(x) * 0.8 / 32))
    info = {}

    model = build()

    def fit(kind, epochs):
        timer = Timer()
        cbs = [timer]
        if kind == "recipe":
            rcbs = kr.default(run_root=tmp, **overrides)
            for cb in rcbs:  # once-per-epoch cost of each recipe callback
                cb.on_epoch_end = _timed(cb.on_epoch_end, epoch_cost.setdefault(type(cb).__name__, []))
                # and the time spent inside its hooks during the epoch (only hooks it overrides:
                # wrapping a default hook would change Keras's async dispatch)
                for hook in IN_EPOCH_HOOKS:
                    fn = getattr(cb, hook)
                    if not is_default(fn):
                        setattr(cb, hook, _timed(fn, timer.hooks))
            cbs += rcbs
        model.fit(x, y, validation_split=0.2, epochs=epochs, batch_size=32, callbacks=cbs, verbose=0)
        step_t = [(e - b) / steps for b, e in zip(timer.begin[1:], timer.end[1:])]
        info.setdefault("cpu_" + kind, []).extend(
            (e - b) / steps for b, e in zip(timer.cpu_begin[1:], timer.cpu_end[1:]))
        if kind == "recipe":
            info.setdefault("hook_frac", []).extend(
                h / (e - b) for h, b, e in zip(timer.in_epoch[1:], timer.begin[1:], timer.end[1:]))
        epoch_t = [timer.begin[i + 1] - timer.begin[i] for i in range(1, len(timer.end))]
        if kind == "recipe":
            log = kr.recipe.find_runlog(rcbs)
            nlayers = len({r["layer"] for r in log.of("layer")}) or 1
            info.setdefault("probes", []).append(len(log.of("layer")) / nlayers / epochs)
        return step_t, epoch_t

    # size the run to the budget from a warm plain fit (the first one traces and compiles the train
    # step and warms caches, and is several times slower). A fit costs a fixed part (callback and
    # data set-up, the first epoch) plus its epochs: both are measured.
    fit("plain", 1)
    t0 = time.perf_counter()
    _, sizing_epochs = fit("plain", 3)
    total = time.perf_counter() - t0
    per_epoch = statistics.median(sizing_epochs) if sizing_epochs else total / 3
    fixed = max(0.0, total - 3 * per_epoch)
    if repeats <= 0:   # auto: 8-epoch fits, as many alternated pairs as the budget allows (3..30)
        epochs = 8
        repeats = int(max(3, min(30, budget_s / (2 * (fixed + epochs * per_epoch) * 1.3))))
    else:
        epochs = int(max(3, min(8, budget_s / (2 * repeats * per_epoch * 1.3))))
    res = {"plain": ([], []), "recipe": ([], [])}
    pairs = []  # (plain, recipe) median step time of each fit of a pair
    for r in range(repeats):
        pair = {}
        for kind in (("plain", "recipe") if r % 2 == 0 else ("recipe", "plain")):
            s, e = fit(kind, epochs)
            res[kind][0].extend(s)
            res[kind][1].extend(e)
            pair[kind] = statistics.median(s)
        pairs.append((pair["plain"], pair["recipe"]))
    med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in res.items()}
    return {"backend": keras.backend.backend(), "epochs": epochs, "repeats": repeats, "steps": steps,
            "plain_step_ms": med["plain"][0] * 1e3, "recipe_step_ms": med["recipe"][0] * 1e3,
            "pairs_ms": [(a * 1e3, b * 1e3) for a, b in pairs], "interval_pct": pair_interval(pairs),
            "plain_epoch_s": med["plain"][1], "recipe_epoch_s": med["recipe"][1], "per_epoch_sizing_s": per_epoch, "per_fit_fixed_s": fixed,
            "probes_per_epoch": statistics.median(info.get("probes", [0])),
            "plain_cpu_ms": statistics.median(info["cpu_plain"]) * 1e3,
            "recipe_cpu_ms": statistics.median(info["cpu_recipe"]) * 1e3,
            "hook_pct": 100 * statistics.fmean(info.get("hook_frac", [0])),
            "async_batch_end": bool(keras.callbacks.CallbackList(kr.default(run_root=tmp))._async_train),
            "epoch_end_ms": {k: statistics.median(v) * 1e3 for k, v in epoch_cost.items() if v}}


def pair_interval(pairs, n_boot=4000, seed=0):
    """95% interval of the step overhead (%, ratio of medians of per-fit step times), by resampling
    the alternated (plain, recipe) pairs of fits: what the run can and cannot tell apart when the
    fits themselves vary (on 2 vCPUs, two-thread torch fits of one configuration differ by 20-40%)."""
    import random

    if len(pairs) < 3:
        return None
    rng = random.Random(seed)
    vals = []
    for _ in range(n_boot):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        vals.append(100 * (statistics.median(b for _, b in sample) / statistics.median(a for a, _ in sample) - 1))
    vals.sort()
    return vals[int(0.025 * n_boot)], vals[int(0.975 * n_boot) - 1]


def _interval_text(r):
    iv = r.get("interval_pct")
    return f"{iv[0]:+.1f}% .. {iv[1]:+.1f}%" if iv else "n/a"


def _spread_text(r, kind):
    vals = [p[0 if kind == "plain" else 1] for p in r.get("pairs_ms", [])]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="tensorflow,torch,jax")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds of timed fits per backend")
    ap.add_argument("--repeats", type=int, default=0,
                    help="alternated fits per variant (0 = as many 8-epoch fits as the budget allows)")
    ap.add_argument("--torch-threads", default="default,1",
                    help="torch rows: 'default' (torch's own intra-op thread count) and/or numbers, comma-separated")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--note", default="", help="text added to the RESULTS.md section (e.g. the machine load)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.budget, args.repeats)))
        return
    from _results import machine, write_section

    rows = []
    runs = []
    for b in args.backends.split(","):
        if b == "torch":
            runs += [(b, t) for t in args.torch_threads.split(",")]
        else:
            runs.append((b, "default"))
    for b, threads in runs:
        env = dict(os.environ, KERAS_BACKEND=b, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("KERASRECIPE_BENCH_TORCH_THREADS", None)
        if threads != "default":
            env["KERASRECIPE_BENCH_TORCH_THREADS"] = threads
        t0 = time.time()
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "--budget", str(args.budget),
                              "--repeats", str(args.repeats)],
                             env=env, capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode != 0 or not line:
            print(f"{b}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(line[-1][7:])
        r["wall_s"] = time.time() - t0
        if threads != "default":
            r["backend"] = f"{b} ({threads} intra-op thread{'s' if threads != '1' else ''})"
        rows.append(r)
        print(f"{r['backend']}: plain {r['plain_step_ms']:.2f} ms/step, recipe {r['recipe_step_ms']:.2f} ms/step "
              f"({100 * (r['recipe_step_ms'] / r['plain_step_ms'] - 1):+.1f}%), epoch "
              f"{r['plain_epoch_s']:.3f} s vs {r['recipe_epoch_s']:.3f} s "
              f"({100 * (r['recipe_epoch_s'] / r['plain_epoch_s'] - 1):+.1f}%), "
              f"main-thread CPU {r['plain_cpu_ms']:.2f} vs {r['recipe_cpu_ms']:.2f} ms/step "
              f"({100 * (r['recipe_cpu_ms'] / r['plain_cpu_ms'] - 1):+.1f}%), "
              f"{r['repeats']} x 2 fits of {r['epochs']} epochs (sized from {r['per_epoch_sizing_s']:.2f} s/epoch + {r.get('per_fit_fixed_s', 0):.2f} s a fit), "
              f"hooks {r['hook_pct']:.1f}% of the epoch, {r['probes_per_epoch']:.2f} probes/epoch, async batch end {r['async_batch_end']}, "
              f"{r['wall_s']:.0f} s")
        print(f"   95% interval of the step overhead (pairs bootstrap): {_interval_text(r)}; per-fit ms/step "
              f"plain {_spread_text(r, 'plain')}, recipe {_spread_text(r, 'recipe')}")
        top = sorted(r["epoch_end_ms"].items(), key=lambda kv: -kv[1])[:4]
        print("   on_epoch_end ms (median): " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    if not rows or args.no_write:
        return
    lines = ["## recipe: overhead of `kerasrecipe.default()` over a plain `fit`", "",
             f"Machine: {machine()}. Small CNN (2 conv + 2 dense, 29k parameters) on digits 8x8, batch 32, "
             "45 steps/epoch, validation_split=0.2, verbose=0, default RecipeConfig (automatic probe "
             f"interval). Medians over all epochs after the first of every fit: 8-epoch fits, plain and recipe "
             "alternated, as many pairs as the time budget allows (column 'fits'), each backend in its own process, every fit training the same model (built and compiled once: plain and recipe fits run the same compiled step). Target: step-time overhead <= 5%.", "",
             "| backend | plain ms/step | recipe ms/step | step overhead | 95% interval | per-fit ms/step, plain / recipe "
             "| main-thread CPU ms/step, plain / recipe "
             "| CPU overhead | plain s/epoch | recipe s/epoch "
             "| epoch overhead | recipe hooks in the epoch | probes/epoch | async batch end | fits |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['plain_step_ms']:.2f} | {r['recipe_step_ms']:.2f} | "
                     f"{100 * (r['recipe_step_ms'] / r['plain_step_ms'] - 1):+.1f}% | {_interval_text(r)} | "
                     f"{_spread_text(r, 'plain')} / {_spread_text(r, 'recipe')} | "
                     f"{r['plain_cpu_ms']:.2f} / {r['recipe_cpu_ms']:.2f} | "
                     f"{100 * (r['recipe_cpu_ms'] / r['plain_cpu_ms'] - 1):+.1f}% | {r['plain_epoch_s']:.3f} | "
                     f"{r['recipe_epoch_s']:.3f} | {100 * (r['recipe_epoch_s'] / r['plain_epoch_s'] - 1):+.1f}% | "
                     f"{r['hook_pct']:.1f}% | {r['probes_per_epoch']:.2f} | {'yes' if r['async_batch_end'] else 'no (backend)'} | {r['repeats']} x 2 |")
    lines += ["", "Once-per-epoch cost, median ms per `on_epoch_end` of the costliest recipe callbacks:", ""]
    for r in rows:
        top = sorted(r["epoch_end_ms"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"- {r['backend']}: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    if args.note:
        lines += ["", args.note]
    lines += ["", "'Recipe hooks in the epoch': the time spent inside the recipe callbacks' own hooks between epoch "
              "begin and epoch end (batch and validation hooks, probes included; hooks Keras runs on its callback "
              "thread counted too), as a mean fraction of the recipe fit's epoch span: the recipe's own work "
              "during the steps, measured directly rather than as the difference of two noisy fits. "
              "'Main-thread CPU': CPU time of the thread that runs `fit` (time.thread_time) from epoch begin to "
              "epoch end, per step: the work done there, immune to waiting and to other processes; it leaves "
              "out the backend's own worker threads (all of the step's work with 1 torch thread, little of it "
              "on TensorFlow and JAX, whose compiled steps run on their own pools).",
              "", "Step time = epoch begin to epoch end (training steps and validation) per step; epoch time "
              "adds the once-per-epoch work (history files, checkpoint, crash backup, live diagnosis). "
              "Probes include the first step of each fit; the automatic interval keeps probes at or "
              "below 2% of step time as measured during the run. '95% interval': the step overhead "
              "recomputed over pairs of fits resampled with replacement (bootstrap): where it spans the "
              "target, the run cannot tell; 'per-fit': the range of the fits' median step times. 'async batch end': Keras keeps "
              "dispatching batch-end callbacks on its thread with the recipe's callbacks (it never does "
              "on TensorFlow, whose backend is not marked thread-safe, with or without the recipe)."]
    write_section("recipe", "\n".join(lines))


if __name__ == "__main__":
    main()
