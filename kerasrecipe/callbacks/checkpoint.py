"""Checkpoints (tip A5) and crash recovery.

RecipeCheckpoint saves the model's weights (with the optimizer's state, as Keras's
`save_weights` does) to `RUN_DIR/checkpoints/epoch0007-val_loss0.1234.weights.h5`: the epoch
(1-based, as Keras prints it) and the monitored value are in the name. `mode="best"` keeps the
best `keep_best` files, `mode="every"` keeps one per epoch. A checkpoint is written only when the
monitored value and every weight are finite, so a diverged epoch can never become "best".
`checkpoints/index.json` lists what is there and which one is best.

RecipeBackup makes a run resumable after a crash, like Keras's BackupAndRestore but with atomic
writes and the recipe's state included: at every epoch end it writes `RUN_DIR/backup/` (the
values of the model's weights and of the optimizer's variables in `latest.npz`, the epoch to
resume from, the state of early stopping / LR plateau callbacks: their counters, best value
and early stopping's best weights, and the multiplier LR halving put on a schedule). The backup is internal (read back only by RecipeBackup into
the same model), so it is a plain array file: 8-16 ms an epoch for the small CNN of
benchmarks/bench_recipe.py, where the checkpoint's `save_weights` takes 27-44 ms (benchmarks/RESULTS.md,
section "recipe"). When `fit` is called again after
a crash — with the same callbacks, or with `default(run_dir=THE_SAME_DIR)` in a new process — it
restores all of it and Keras resumes at the next epoch. A fit that ends normally deletes the
backup.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from typing import List, Optional

import keras
import numpy as np

from kerasrecipe.callbacks._context import (RunContext, fit_has_validation, is_finite_number, monitor_mode,
                                            validation_skipped)
from kerasrecipe.errors import ConfigError
from kerasrecipe.io import atomic_write_bytes, atomic_write_json


def save_weights_atomic(model, path: str) -> None:
    """model.save_weights through a temporary file in the same directory, then a rename."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".tmp-{uuid.uuid4().hex}.weights.h5")
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _weights_finite(model) -> bool:
    for w in model.weights:
        a = np.asarray(keras.ops.convert_to_numpy(w.value))
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            return False
    return True


class RecipeCheckpoint(keras.callbacks.Callback):
    """Per-epoch weight checkpoints named by epoch and monitored value; never a non-finite best.

    Args:
        directory: where to write (default: RUN_DIR/checkpoints).
        mode: "best" (keep the best `keep_best`) or "every" (one per epoch).
        keep_best: how many files "best" keeps.
        monitor: metric to rank by (default: the recipe's monitor, 'val_loss', or 'loss' when
            the fit has no validation data).
        context: the RunContext shared with the other recipe callbacks (default() passes it).

    Attributes:
        entries: list of {"epoch", "value", "monitor", "file"} of the files kept.
        best: the best entry, or None.

    Example:
        >>> ckpt = RecipeCheckpoint("runs/a/checkpoints", mode="every")
        >>> model.fit(x, y, validation_split=0.2, callbacks=[ckpt])
        >>> model.load_weights(ckpt.best["file"])
    """

    def __init__(self, directory: Optional[str] = None, mode: str = "best", keep_best: int = 3,
                 monitor: Optional[str] = None, context: Optional[RunContext] = None):
        super().__init__()
        if mode not in ("best", "every"):
            raise ConfigError(f"RecipeCheckpoint mode={mode!r} is invalid: expected 'best' or 'every'")
        if not isinstance(keep_best, int) or keep_best < 1:
            raise ConfigError(f"RecipeCheckpoint keep_best={keep_best!r} is invalid: expected an integer >= 1")
        self.context = context if context is not None else RunContext()
        self._directory = directory
        if directory is None and self.context.run_dir is None:
            raise ConfigError("RecipeCheckpoint needs a directory (or a run context with a run directory)")
        self.mode = mode
        self.keep_best = keep_best
        self._monitor = monitor
        self.entries: List[dict] = []
        self._loaded = False
        self._has_validation = None

    def on_train_begin(self, logs=None):
        self._has_validation = fit_has_validation(self.model)

    @property
    def directory(self) -> str:
        return self._directory or self.context.path("checkpoints")

    @property
    def monitor(self) -> str:
        return self._monitor or self.context.monitor

    def get_config(self):
        return {"directory": self._directory, "mode": self.mode, "keep_best": self.keep_best, "monitor": self._monitor}

    @property
    def best(self) -> Optional[dict]:
        ranked = self._ranked()
        return ranked[0] if ranked else None

    def _ranked(self):
        sign = -1.0 if monitor_mode(self.monitor) == "max" else 1.0
        same = [e for e in self.entries if e["monitor"] == self.monitor]
        return sorted(same, key=lambda e: (sign * e["value"], e["epoch"]))

    def _load_index(self):
        self._loaded = True
        path = os.path.join(self.directory, "index.json")
        if os.path.exists(path):
            try:
                with open(path) as f:
                    data = json.load(f)
                self.entries = [e for e in data.get("entries", []) if os.path.exists(self._abs(e["file"]))]
            except (OSError, ValueError, KeyError):
                self.entries = []

    def _abs(self, name):
        return name if os.path.isabs(name) else os.path.join(self.directory, name)

    def on_epoch_end(self, epoch, logs=None):
        if not self._loaded:
            self._load_index()
        ctx = self.context
        run_epoch = ctx.run_epoch(epoch) if ctx.fit_index >= 0 else int(epoch)
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None and validation_skipped(self.monitor, logs, self._has_validation):
            return  # an epoch without validation (fit's validation_freq): nothing to rank it by
        if not is_finite_number(value) or ("loss" in logs and not is_finite_number(logs["loss"])):
            ctx.runlog.log("event", epoch=run_epoch, step=ctx.step, event="checkpoint_skipped",
                           message=f"no checkpoint for epoch {run_epoch + 1}: {self.monitor}={value}"
                                   + (f", loss={logs.get('loss')}" if self.monitor != "loss" else "")
                                   + " (a diverged epoch is never saved)")
            return
        value = float(value)
        if self.mode == "best" and len(self._ranked()) >= self.keep_best:
            worst = self._ranked()[-1]["value"]
            better = value > worst if monitor_mode(self.monitor) == "max" else value < worst
            if not better:
                return
        if not _weights_finite(self.model):
            ctx.runlog.log("event", epoch=run_epoch, step=ctx.step, event="checkpoint_skipped",
                           message=f"no checkpoint for epoch {run_epoch + 1}: the weights are not finite")
            return
        name = f"epoch{run_epoch + 1:04d}-{self.monitor}{value:.4f}.weights.h5"
        save_weights_atomic(self.model, os.path.join(self.directory, name))
        self.entries = [e for e in self.entries if e["file"] != name and e["epoch"] != run_epoch]
        self.entries.append({"epoch": run_epoch, "value": value, "monitor": self.monitor, "file": name})
        if self.mode == "best":
            keep = self._ranked()[: self.keep_best]
            for e in self.entries:
                if e not in keep and e["monitor"] == self.monitor:
                    try:
                        os.unlink(self._abs(e["file"]))
                    except OSError:
                        pass
            self.entries = [e for e in self.entries if e in keep or e["monitor"] != self.monitor]
        ctx.runlog.log("event", epoch=run_epoch, step=ctx.step, event="checkpoint", file=name,
                       value=value, monitor=self.monitor, best=(self.best or {}).get("file") == name)
        self.write_index()

    def write_index(self):
        atomic_write_json(os.path.join(self.directory, "index.json"),
                          {"monitor": self.monitor, "mode": self.mode, "best": self.best,
                           "entries": sorted(self.entries, key=lambda e: e["epoch"])})


_STATE_ATTRS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter", "monitor")


def _callback_state(cb) -> dict:
    st = {}
    for a in _STATE_ATTRS:
        if hasattr(cb, a):
            v = getattr(cb, a)
            if v is None or isinstance(v, (int, float, str, bool, np.integer, np.floating)):
                st[a] = v.item() if isinstance(v, (np.integer, np.floating)) else v
    return st


def _save_arrays(path: str, arrays) -> None:
    """A list of arrays as one .npz, written atomically (kerasrecipe.io)."""
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(a) for a in arrays])
    atomic_write_bytes(path, buf.getvalue())


def _load_arrays(path: str) -> list:
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


class RecipeBackup(keras.callbacks.Callback):
    """Crash recovery: back up at every epoch end, resume on the next fit (see module docstring).

    Args:
        directory: where the backup lives (default: RUN_DIR/backup).
        stateful: callbacks whose counters (wait, best, ...) and early-stopping best weights are
            backed up and restored with the model (default() passes early stopping and LR halving).
        context: the RunContext shared with the other recipe callbacks (default() passes it).

    Place it after the callbacks it backs up: it restores their state after they reset it.

    Example:
        >>> cbs = [RecipeBackup("runs/a/backup")]
        >>> model.fit(x, y, epochs=50, callbacks=cbs)   # crashes at epoch 20
        >>> model.fit(x, y, epochs=50, callbacks=cbs)   # resumes at epoch 21
    """

    def __init__(self, directory: Optional[str] = None, stateful=(), context: Optional[RunContext] = None):
        super().__init__()
        self.context = context if context is not None else RunContext()
        self._directory = directory
        if directory is None and self.context.run_dir is None:
            raise ConfigError("RecipeBackup needs a directory (or a run context with a run directory)")
        self.stateful = list(stateful)
        self.resumed_from = None
        self._best_saved = {}

    @property
    def directory(self) -> str:
        return self._directory or self.context.path("backup")

    def get_config(self):
        return {"directory": self._directory}

    def _state_variables(self):
        """The variables a backup holds, in a fixed order: the model's weights, then the
        optimizer's variables (iterations, learning rate, moments...)."""
        opt = getattr(self.model, "optimizer", None)
        return list(self.model.weights) + (list(opt.variables) if opt is not None and opt.built else [])

    def on_train_begin(self, logs=None):
        self.resumed_from = None
        self._best_saved = {}
        meta_path = os.path.join(self.directory, "state.json")
        arrays = os.path.join(self.directory, "latest.npz")
        legacy = os.path.join(self.directory, "latest.weights.h5")  # backups written before the npz format
        if not (os.path.exists(meta_path) and (os.path.exists(arrays) or os.path.exists(legacy))):
            return
        with open(meta_path) as f:
            meta = json.load(f)
        opt = getattr(self.model, "optimizer", None)
        if opt is not None and not opt.built:
            opt.build(self.model.trainable_variables)
        if os.path.exists(arrays):
            self._restore_arrays(arrays)
        else:
            self.model.load_weights(legacy)
        for i, cb in enumerate(self.stateful):
            st = meta.get("callbacks", {}).get(str(i), {})
            for k, v in st.items():
                if k == "monitor":
                    continue
                setattr(cb, k, v)
            bw = os.path.join(self.directory, f"best_weights_{i}.npz")
            if hasattr(cb, "best_weights") and os.path.exists(bw):
                cb.best_weights = _load_arrays(bw)
        if meta.get("lr_multipliers") and opt is not None:
            from kerasrecipe.optimizers import set_plateau_multipliers

            set_plateau_multipliers(opt, meta["lr_multipliers"], model=self.model)
        self.model._initial_epoch = int(meta["next_epoch"])
        self.resumed_from = int(meta["next_epoch"])
        ctx = self.context
        if meta.get("step") is not None:  # the crashed epoch's steps are redone: forget their records
            ctx.runlog.discard_after(int(meta["step"]))
        ctx.runlog.log("event", epoch=ctx.run_epoch(self.resumed_from) if ctx.fit_index >= 0 else self.resumed_from,
                       step=meta.get("step"), event="resume",
                       message=f"resumed from the backup of epoch {meta.get('run_epoch', 0) + 1} "
                               f"(step {meta.get('step')}); training continues at the next epoch")

    def _restore_arrays(self, path):
        variables = self._state_variables()
        values = _load_arrays(path)
        if len(values) != len(variables) or any(tuple(a.shape) != tuple(v.shape) for a, v in zip(values, variables)):
            raise ConfigError(
                f"the crash backup in {self.directory} does not fit this model and optimizer ({len(values)} saved "
                f"arrays for {len(variables)} variables, or different shapes): resume with the model the run was "
                "started with, or delete that directory to start over")
        for v, a in zip(variables, values):
            v.assign(a)

    def on_epoch_end(self, epoch, logs=None):
        d = self.directory
        os.makedirs(d, exist_ok=True)
        _save_arrays(os.path.join(d, "latest.npz"),
                     [keras.ops.convert_to_numpy(v.value) for v in self._state_variables()])
        states = {}
        for i, cb in enumerate(self.stateful):
            states[str(i)] = _callback_state(cb)
            bw = getattr(cb, "best_weights", None)
            if bw is not None and self._best_saved.get(i) != getattr(cb, "best_epoch", None):
                _save_arrays(os.path.join(d, f"best_weights_{i}.npz"), bw)
                self._best_saved[i] = getattr(cb, "best_epoch", None)
        ctx = self.context
        opt = getattr(self.model, "optimizer", None)
        multipliers = None
        if opt is not None:  # LR halving of a schedule: a Python float beside the optimizer's variables
            from kerasrecipe.optimizers import plateau_multipliers

            multipliers = plateau_multipliers(opt)
        atomic_write_json(os.path.join(d, "state.json"),
                          {"next_epoch": int(epoch) + 1, "step": ctx.step,
                           "run_epoch": ctx.run_epoch(epoch) if ctx.fit_index >= 0 else int(epoch),
                           "callbacks": states, "lr_multipliers": multipliers})

    def on_train_end(self, logs=None):
        if os.path.exists(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
        if getattr(self.model, "_initial_epoch", None) is not None:
            self.model._initial_epoch = None
