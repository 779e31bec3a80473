"""RunLogger: records a run (tips A3, A4) into its RunLog and run directory.

Files it writes in the run directory (all atomic or append-only JSON lines):

    config.json     the RecipeConfig
    env.json        versions, backend, devices, seed, native-kernel info
    runlog.jsonl    every record (meta, epoch, batch, layer, grad, event, finding)
    history.csv     one row per epoch (rewritten atomically each epoch)
    history.jsonl   one JSON line per epoch

Per-batch losses: Keras hands callbacks the running mean of the loss over the epoch, weighted by
batch size. The logger turns it back into each batch's own loss,
`(mean_k * n_k - mean_{k-1} * n_{k-1}) / (n_k - n_{k-1})` with n the samples seen so far
(the last, smaller batch is accounted for when the number of samples is known: fit given arrays).
With a dataset, generator or loader the batches are taken to be the same size, and the last batch of
each epoch, whose size is unknown (often smaller), gets `loss: null` rather than a wrong value (a
PyDataset fit with `shuffle=True` serves its batches in shuffled order: the smaller one can then
come anywhere, and the losses of it and the batch after it are approximate).

Overhead: the logger is `async_safe`. Its `on_train_batch_end` only stores the running mean by
batch index (Keras may call it on its callback thread, late and out of order); the `batch` records
are written in batch order from the next batch-begin hook and at the end of the epoch, when Keras
has waited for every batch-end call. So Keras keeps its asynchronous batch-end dispatch and does
not wait for the device after each step.
"""
from __future__ import annotations

import csv
import io
import math
import os
import platform
import sys
import time
from typing import Optional

import keras
import numpy as np

from kerasrecipe.callbacks._context import (RunContext, capture_fit_args, class_counts, describe_layers,
                                            describe_loss, describe_training, ensure_built, is_finite_number,
                                            move_run_dir, probe_from_fit, training_name, validation_skipped,
                                            _length)
from kerasrecipe.errors import ConfigError
from kerasrecipe.io import append_jsonl, atomic_write_json, atomic_write_text

FLUSH_SECONDS = 2.0


def environment(config) -> dict:
    """Versions, backend, devices and seed of this process (env.json): `seed` is the one
    `seed_everything` applied in this process (None: unseeded), `config_seed` the config's."""
    import kerasrecipe
    from kerasrecipe.seeding import last_seed

    b = keras.backend.backend()
    env = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": sys.version.split()[0],
           "platform": platform.platform(), "machine": platform.machine(), "keras": keras.__version__,
           "backend": b, "numpy": np.__version__, "kerasrecipe": kerasrecipe.__version__,
           "seed": last_seed(), "config_seed": config.seed, "devices": [], "backend_version": None}
    try:
        if b == "tensorflow":
            import tensorflow as tf

            env["backend_version"] = tf.__version__
            env["devices"] = [d.name for d in tf.config.list_logical_devices()]
        elif b == "torch":
            import torch

            env["backend_version"] = torch.__version__
            env["devices"] = ["cpu"] + [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        elif b == "jax":
            import jax

            env["backend_version"] = jax.__version__
            env["devices"] = [str(d) for d in jax.devices()]
    except Exception as e:  # pragma: no cover - informative only
        env["devices_error"] = f"{type(e).__name__}: {e}"
    try:
        from kerasrecipe import kernels

        env["kernels"] = kernels.info()
    except Exception as e:
        env["kernels"] = {"error": f"{type(e).__name__}: {e}"}
    return env


def _scalar(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _current_lr(model) -> Optional[float]:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    try:
        from kerasrecipe.optimizers import get_learning_rate

        return get_learning_rate(opt)
    except Exception:
        return None


def _iterations(model) -> Optional[int]:
    opt = getattr(model, "optimizer", None)
    try:
        return int(keras.ops.convert_to_numpy(opt.iterations))
    except Exception:
        return None


class RunLogger(keras.callbacks.Callback):
    """Writes the run log and the run directory's files; first of the recipe's callbacks.

    Args:
        run_dir: directory of the run (created). Ignored when `context` is given.
        config: the RecipeConfig (default: RecipeConfig()).
        context: the RunContext shared with the other recipe callbacks (default() passes it).
        probe_data: optional (x, y) used as the fixed probe batch instead of the first training
            samples.

    Attributes:
        run_dir: the run directory (it may be renamed at the end of fit with the best metric).
        runlog: the RunLog.

    Example:
        >>> logger = RunLogger(run_dir="runs/try1")
        >>> model.fit(x, y, validation_split=0.2, callbacks=[logger])
        >>> logger.runlog.epoch_series("val_loss")
    """

    # Its batch-end hook only stores a float by batch index, so Keras may keep dispatching
    # batch-end callbacks asynchronously (no device sync per step; see _drain).
    async_safe = True

    def __init__(self, run_dir=None, config=None, context: Optional[RunContext] = None, probe_data=None):
        super().__init__()
        self.context = context if context is not None else RunContext(config, run_dir)
        self.probe_data = probe_data
        self._prev_mean = 0.0
        self._prev_seen = 0
        self._means = {}      # batch index -> running mean of the loss (written by batch-end calls)
        self._drained = 0     # next batch index to turn into a `batch` record
        self._last_flush = time.time()

    # ------------------------------------------------------------------ public
    @property
    def run_dir(self):
        return self.context.run_dir

    @property
    def runlog(self):
        return self.context.runlog

    def get_config(self):
        return {"run_dir": self.run_dir, "config": self.context.config.to_dict()}

    # ------------------------------------------------------------------ fit
    def on_train_begin(self, logs=None):
        ctx = self.context
        resuming = ctx.fit_open  # the previous fit never reached on_train_end: a crash
        ctx.fit_index += 1
        args = capture_fit_args(self.model) or {}
        if not resuming:
            # run epochs continue where the run is; Keras counts from initial_epoch (fit(initial_epoch=3,
            # epochs=6) after a 3-epoch fit is the usual way to train on: its epochs 3..5 are run epochs 3..5)
            initial = args.get("initial_epoch")
            initial = int(initial) if isinstance(initial, int) and initial > 0 else 0
            ctx.epoch_offset = max(ctx.epochs_logged - initial, 0)
        ctx.fit_open = True
        ctx.stopped_reason = None
        ctx.fit_info = self._fit_info(args)
        if ctx.probe is None:
            n = ctx.config.probe_batch_size
            if self.probe_data is not None:
                px, py = self.probe_data if isinstance(self.probe_data, (tuple, list)) else (self.probe_data, None)
                from kerasrecipe.callbacks._context import _head, _to_numpy

                ctx.probe, ctx.probe_note = (_to_numpy(_head(px, n)), _to_numpy(_head(py, n))), None
            elif args:
                px, py, note = probe_from_fit(args, n)
                ctx.probe = None if px is None else (px, py)
                ctx.probe_note = note
            else:
                ctx.probe_note = "the fit call's data could not be read; pass probe_data=(x, y) to default()"
        from kerasrecipe.seeding import last_seed

        ctx.fit_info["training"] = training = describe_training(self.model, ctx.fit_info.get("batch_size"),
                                                                last_seed())
        if ctx.fit_index == 0 and not resuming and ctx.name_stamp and ctx.run_dir is not None:
            target = os.path.join(os.path.dirname(ctx.run_dir),
                                  f"{training_name(training, ctx.config.schedule == 'plateau')}-{ctx.name_stamp}")
            if move_run_dir(ctx, target):
                ctx.base_dir = ctx.run_dir
        self._config_mismatch(training)
        why = ensure_built(self.model, ctx.probe)
        if why:
            ctx.note(f"{why}; the crash backup and the health probes need its weights: build it before fit "
                     "(model.build(input_shape), or call it on one batch)", where="build")
        if ctx.run_dir is not None and ctx.fit_index == 0:
            ctx.config.to_json(ctx.path("config.json"))
        if ctx.run_dir is not None:
            atomic_write_json(ctx.path("env.json"), environment(ctx.config))
        ctx.resolve_monitor(ctx.fit_info.get("has_validation"))
        self._log_meta(resuming)
        if ctx.probe_note:
            ctx.note(ctx.probe_note, where="probe")

    def _config_mismatch(self, training) -> None:
        """default() never changes the compiled optimizer: say so when the config asks for a
        schedule or clipping the optimizer does not have (they take effect through
        kr.optimizers.from_config, the estimators and cross-validation)."""
        cfg, ctx = self.context.config, self.context
        if cfg.schedule not in ("constant", "plateau") and training["schedule"] == "constant":
            ctx.note(f"the config's schedule={cfg.schedule!r} is not in the compiled optimizer (a constant learning "
                     "rate): default() does not change the optimizer; compile with "
                     "kr.optimizers.from_config(config, steps_per_epoch) to train with it", where="config")
        if cfg.clipnorm and not training["clipnorm"]:
            ctx.note(f"the config's clipnorm={cfg.clipnorm:g} is not in the compiled optimizer: compile with "
                     "kr.optimizers.from_config(config) or kr.optimizers.clip_global_norm(optimizer, max_norm)",
                     where="config")

    def _fit_info(self, args) -> dict:
        x = args.get("x")
        vd = args.get("validation_data")
        info = {
            "has_validation": (vd is not None) if args else None,
            "batch_size": args.get("batch_size") if isinstance(args.get("batch_size"), int) else None,
            "num_samples": _length(x) if x is not None else None,
            "steps_per_epoch": (self.params or {}).get("steps"),
            "epochs": (self.params or {}).get("epochs"),
        }
        if info["num_samples"] is not None and info["batch_size"] is None:
            info["batch_size"] = 32  # Keras's default for arrays
        try:
            y = args.get("y")
            loss = describe_loss(self.model)
            # with class_weight / sample_weight the training loss is a weighted mean: its prior is
            # the weighted class distribution, and it is not on the validation loss's scale
            info["loss_weighted"] = args.get("class_weight") is not None or args.get("sample_weight") is not None
            info["class_counts"] = info["loss_weight_mean"] = None
            if y is not None and loss["task"] == "classification" and _length(y) is not None:
                yn = keras.ops.convert_to_numpy(y)
                info["class_counts"] = class_counts(yn, loss["num_classes"], class_weight=args.get("class_weight"),
                                                    sample_weight=args.get("sample_weight"))
                plain = class_counts(yn, loss["num_classes"]) if info["loss_weighted"] else None
                # Keras divides the weighted loss sum by the number of samples, not by the weights'
                # sum: the weighted loss is on a scale of (mean weight) x the plain one
                if info["class_counts"] and plain and sum(plain) > 0:
                    info["loss_weight_mean"] = float(sum(info["class_counts"]) / sum(plain))
        except Exception:
            info["class_counts"] = info["loss_weight_mean"] = None
        return info

    def _log_meta(self, resuming):
        ctx, model = self.context, self.model
        try:
            params = int(model.count_params())
            trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        except Exception:
            params = trainable = None
        layers = [lyr for lyr in model.layers if type(lyr).__name__ != "InputLayer"]
        meta = {"model": {"name": model.name, "class": type(model).__name__, "params": params,
                          "trainable_params": trainable, "layers": describe_layers(layers)},
                **describe_loss(model),
                "optimizer": type(model.optimizer).__name__ if getattr(model, "optimizer", None) else None,
                "num_samples": ctx.fit_info.get("num_samples"),
                "batch_size": ctx.fit_info.get("batch_size"),
                "steps_per_epoch": ctx.fit_info.get("steps_per_epoch"),
                "epochs": ctx.fit_info.get("epochs"),
                "has_validation": ctx.fit_info.get("has_validation"),
                "class_counts": ctx.fit_info.get("class_counts"),
                "loss_weighted": bool(ctx.fit_info.get("loss_weighted")),
                "loss_weight_mean": ctx.fit_info.get("loss_weight_mean"),
                "training": ctx.fit_info.get("training"),
                "monitor": ctx.monitor, "backend": keras.backend.backend(),
                "fit": ctx.fit_index, "epoch_offset": ctx.epoch_offset, "resumed": bool(resuming),
                "config": ctx.config.to_dict()}
        ctx.runlog.log("meta", epoch=ctx.epoch_offset, **meta)

    def on_epoch_begin(self, epoch, logs=None):
        ctx = self.context
        ctx.epoch = ctx.run_epoch(epoch)
        it = _iterations(self.model)
        if it is not None:
            ctx.epoch_start_step = it
        ctx.step = ctx.epoch_start_step
        ctx.lr = _current_lr(self.model)
        self._epoch_lr = ctx.lr
        self._prev_mean, self._prev_seen = 0.0, 0
        self._means, self._drained = {}, 0

    def on_train_batch_begin(self, batch, logs=None):
        ctx = self.context
        ctx.step = ctx.epoch_start_step + int(batch)
        self._drain()

    def on_train_batch_end(self, batch, logs=None):
        # async_safe: Keras may call this on its callback thread, late and out of order. Only
        # store the running mean by batch index; _drain (main thread) turns the means into
        # per-batch losses and records, in batch order.
        self._means[int(batch)] = _scalar((logs or {}).get("loss"))

    def _drain(self, epoch_end: bool = False):
        """Turn the running means stored so far (contiguous from the last one done) into records.
        At the epoch's end (`epoch_end`) the highest batch index is the epoch's last batch."""
        ctx = self.context
        means = self._means
        info = ctx.fit_info
        sizes_known = bool(info.get("num_samples") and info.get("batch_size"))
        last = max(means) if epoch_end and means and not sizes_known else None
        while self._drained in means:
            b = self._drained
            mean = means.pop(b)
            self._drained = b + 1
            if mean is None:
                continue
            step = ctx.epoch_start_step + b
            seen = self._seen(b + 1)
            prev_mean, prev_seen = self._prev_mean, self._prev_seen
            if seen > prev_seen and math.isfinite(mean) and math.isfinite(prev_mean):
                # the epoch's last batch of unknown size: its weight in the mean is unknown
                loss = None if b == last and b > 0 else (mean * seen - prev_mean * prev_seen) / (seen - prev_seen)
            else:
                loss = mean
            self._prev_mean, self._prev_seen = mean, seen
            ctx.batch_loss = (step, loss, mean)
            ctx.runlog.log("batch", epoch=ctx.epoch, step=step, loss=loss, lr=ctx.lr, flush=False)
        now = time.time()
        if now - self._last_flush > FLUSH_SECONDS:
            ctx.runlog.flush()
            self._last_flush = now

    def _seen(self, batches: int) -> float:
        """Samples seen after `batches` batches of this epoch (batch units when unknown)."""
        info = self.context.fit_info
        n, bs = info.get("num_samples"), info.get("batch_size")
        if n and bs:
            return float(min(batches * bs, n))
        return float(batches)

    def on_epoch_end(self, epoch, logs=None):
        ctx = self.context
        self._drain(epoch_end=True)  # Keras has waited for every batch-end call of the epoch by now
        self._means = {}
        logs = dict(logs or {})
        if ctx.fit_info.get("has_validation") is None:
            has_val = any(k.startswith("val_") for k in logs)
            ctx.fit_info["has_validation"] = has_val
            ctx.resolve_monitor(has_val, logs)
            if not has_val:
                self._log_meta(False)
        clean = {k: _scalar(v) for k, v in logs.items() if _scalar(v) is not None}
        run_epoch = ctx.run_epoch(epoch)
        it = _iterations(self.model)
        step = (it - 1) if it is not None and it > 0 else ctx.step
        ctx.step = max(step, 0)
        ctx.runlog.log("epoch", epoch=run_epoch, step=ctx.step, logs=clean, lr=self._epoch_lr, monitor=ctx.monitor)
        row = {"epoch": run_epoch, "lr": self._epoch_lr, **clean}
        ctx.epoch_rows = [r for r in ctx.epoch_rows if r["epoch"] != run_epoch] + [row]
        ctx.epochs_logged = max(ctx.epochs_logged, run_epoch + 1)
        if ctx.run_dir is not None:
            append_jsonl(ctx.path("history.jsonl"), [row])
            self.write_history_csv()
        if ctx.monitor not in logs and not validation_skipped(ctx.monitor, logs, ctx.fit_info.get("has_validation")):
            ctx.runlog.flush()
            raise ConfigError(
                f"the recipe monitors {ctx.monitor!r} (early stopping, LR halving, best checkpoint), but fit logs "
                f"no such metric; it logs: {', '.join(sorted(logs))}. Pass one of these as monitor= to "
                "default() (e.g. monitor='val_accuracy' needs metrics=['accuracy'] in compile); the files of "
                "this run are kept.")

    def write_history_csv(self):
        ctx = self.context
        cols = ["epoch", "lr"]
        for r in ctx.epoch_rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, restval="")
        w.writeheader()
        for r in sorted(ctx.epoch_rows, key=lambda r: r["epoch"]):
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        atomic_write_text(ctx.path("history.csv"), buf.getvalue())

    def on_train_end(self, logs=None):
        ctx = self.context
        self._drain()
        ctx.fit_open = False
        ctx.runlog.flush()
        # Keras keeps a resumed run's initial epoch on the model; a later fit must start afresh.
        if getattr(self.model, "_initial_epoch", None) is not None:
            self.model._initial_epoch = None


def load_context_from_dir(run_dir: str, config) -> RunContext:
    """A RunContext continuing an existing run directory (a new process resuming a crashed run)."""
    from kerasrecipe.runlog import RunLog

    ctx = RunContext(config, run_dir)
    if os.path.exists(os.path.join(run_dir, "runlog.jsonl")):
        old = RunLog.load(run_dir)
        ctx.runlog.records = old.records
        epochs = [r["epoch"] for r in old.of("epoch") if "epoch" in r]
        ctx.epochs_logged = (max(epochs) + 1) if epochs else 0
        metas = old.of("meta")
        ends = [r for r in old.of("event") if r.get("event") == "end"]
        if metas:
            ctx.fit_index = int(metas[-1].get("fit", 0))
            last_meta_t = metas[-1].get("time", 0)
            crashed = not any(e.get("time", 0) >= last_meta_t for e in ends)
            if crashed and os.path.exists(os.path.join(run_dir, "backup")):
                ctx.fit_open = True
                ctx.epoch_offset = int(metas[-1].get("epoch_offset", 0))
        for r in old.of("epoch"):
            row = {"epoch": r["epoch"], "lr": r.get("lr"), **r.get("logs", {})}
            ctx.epoch_rows = [x for x in ctx.epoch_rows if x["epoch"] != r["epoch"]] + [row]
    return ctx


def is_finite_logs(logs, keys=("loss",)) -> bool:
    return all(is_finite_number(logs.get(k)) for k in keys if k in (logs or {}))
