"""What the recipe's callbacks share during a run: the RunLog, the run directory, the monitored
metric, the probe batch and the step counter. `kerasrecipe.default()` builds one RunContext and
hands it to every callback it creates; a callback used on its own makes a private one.

Keras does not show callbacks the data given to `fit`. The recipe needs a little of it (a fixed
probe batch, the batch size, whether validation data was given), so `capture_fit_args` reads the
local variables of the `fit` frame that is calling the callbacks (Keras 3's trainers keep them
under stable names: x, y, batch_size, validation_data). When that is not possible (a generator
that cannot be rewound, an unusual trainer) the recipe says so in a `note` event and carries on.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.metric_direction import monitor_mode  # noqa: F401 (the callbacks import it from here)
from kerasrecipe.runlog import RunLog


def validation_skipped(monitor: str, logs, has_validation: Optional[bool] = None) -> bool:
    """True when `monitor` is a validation metric and this epoch ran no validation although the fit
    has validation data (`fit(validation_freq=k)`): its absence from the logs is expected, not an
    error. `has_validation` (from `fit_has_validation`): False means the fit has none at all (the
    monitor is then really missing); None: unknown, taken as given."""
    if has_validation is False:
        return False
    return str(monitor).startswith("val_") and not any(str(k).startswith("val_") for k in (logs or {}))


def fit_has_validation(model) -> Optional[bool]:
    """Whether the `fit` running `model` was given validation data (validation_data or
    validation_split); None when the fit call cannot be read. Call it from a callback hook."""
    args = capture_fit_args(model)
    return None if not args else args.get("validation_data") is not None


def is_finite_number(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _optimizer_state(model) -> list:
    """The optimizer's variables a restore puts back: all but the learning rate (which the
    schedule, LR halving or the user may have set since)."""
    opt = getattr(model, "optimizer", None)
    if opt is None or not getattr(opt, "built", False):
        return []
    return [v for v in opt.variables if str(getattr(v, "name", "")).rsplit("/", 1)[-1] != "learning_rate"]


class FiniteState:
    """The model's weights and its optimizer's state (iterations, moments...) at one step, as
    NumPy arrays, taken only when all are finite: what NaNGuard puts back after a divergence
    (weights alone would leave NaN moments that re-poison the first step after the restore)."""

    def __init__(self, step: int, weights: list, optimizer: list):
        self.step, self.weights, self.optimizer = int(step), weights, optimizer

    @classmethod
    def take(cls, model, step: int) -> Optional["FiniteState"]:
        """The state now, or None when any of it is non-finite. (JAX: sync the model first.)"""
        import keras

        weights = model.get_weights()
        opt = [np.array(keras.ops.convert_to_numpy(v.value)) for v in _optimizer_state(model)]
        for a in weights + opt:
            if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.all(np.isfinite(a)):
                return None
        return cls(step, weights, opt)

    def restore(self, model) -> None:
        """Weights and optimizer state back to this step; an optimizer built after the snapshot
        (TensorFlow builds it at the first step) goes back to its state before any step (zeros)."""
        model.set_weights(self.weights)
        variables = _optimizer_state(model)
        if len(variables) == len(self.optimizer) and all(
                tuple(v.shape) == a.shape for v, a in zip(variables, self.optimizer)):
            for v, a in zip(variables, self.optimizer):
                v.assign(a)
        else:
            for v in variables:
                v.assign(np.zeros(tuple(v.shape), dtype=str(v.dtype)))


class RunContext:
    """State shared by the recipe's callbacks for one run (one or several `fit` calls)."""

    def __init__(self, config: Optional[RecipeConfig] = None, run_dir: Optional[str] = None,
                 runlog: Optional[RunLog] = None, rename_at_end: bool = False):
        self.config = resolve_config(config)
        self.runlog = runlog if runlog is not None else RunLog(run_dir)
        if run_dir is not None and self.runlog.run_dir is None:
            self.runlog.run_dir = run_dir
            os.makedirs(run_dir, exist_ok=True)
        self.base_dir = self.runlog.run_dir      # the name before any best-metric suffix
        self.rename_at_end = rename_at_end
        self.monitor = self.config.monitor
        self.monitor_fallback = False
        self.retarget: List[Any] = []             # callbacks whose `.monitor` follows self.monitor
        self.fit_info: Dict[str, Any] = {}
        self.probe = None                         # (x, y) numpy, fixed for the run
        self.probe_note: Optional[str] = None
        self.fit_index = -1
        self.epoch_offset = 0                     # run epoch = offset + Keras epoch
        self.epochs_logged = 0
        self.fit_open = False                     # True between train_begin and train_end
        self.step = 0                             # optimizer step of the current batch
        self.epoch_start_step = 0
        self.epoch = 0                            # run epoch of the current epoch
        self.batch_loss = None                    # (step, this batch's loss) from RunLogger
        self.lr = None                            # last known learning rate
        self.finite_snapshot: Optional[FiniteState] = None  # the last known finite training state
        self.epoch_rows: List[dict] = []          # history rows (for history.csv)
        self.stopped_reason: Optional[str] = None
        self.nan_handled_fit = -1
        self.tensorboard = None                   # the EpochTensorBoard of default(), if any (follows renames)
        self.name_stamp: Optional[str] = None     # the run directory's timestamp part (default() names)

    # ------------------------------------------------------------------ paths
    @property
    def run_dir(self) -> Optional[str]:
        return self.runlog.run_dir

    def path(self, *parts) -> Optional[str]:
        return None if self.run_dir is None else os.path.join(self.run_dir, *parts)

    # ------------------------------------------------------------------ steps and epochs
    def run_epoch(self, keras_epoch: int) -> int:
        return self.epoch_offset + int(keras_epoch)

    def note(self, message: str, **details) -> dict:
        return self.runlog.log("event", epoch=self.epoch, step=self.step, event="note", message=message, **details)

    # ------------------------------------------------------------------ monitor
    def set_monitor(self, name: str) -> None:
        self.monitor = name
        for cb in self.retarget:
            if getattr(cb, "monitor", None) != name:
                cb.monitor = name
                if hasattr(cb, "mode"):
                    cb.mode = monitor_mode(name)
                if hasattr(cb, "monitor_op"):
                    cb.monitor_op = None  # Keras recomputes it lazily from the new name and mode

    def resolve_monitor(self, has_validation: Optional[bool], logs: Optional[dict] = None) -> None:
        """Fall back from 'val_X' to 'X' when the fit has no validation data (said once per fit)."""
        wanted = self.config.monitor
        if not wanted.startswith("val_"):
            self.set_monitor(wanted)
            return
        missing = has_validation is False or (logs is not None and wanted not in logs and wanted[4:] in logs)
        if missing:
            if not self.monitor_fallback:
                self.monitor_fallback = True
                self.note(
                    f"no validation data: monitoring the training metric {wanted[4:]!r} instead of {wanted!r} "
                    "for early stopping, LR halving and the best checkpoint; curve rules that need "
                    "validation are skipped. Pass validation_split=0.2 or validation_data (B2, F2).",
                    monitor=wanted[4:],
                )
            self.set_monitor(wanted[4:])
        else:
            self.monitor_fallback = False
            self.set_monitor(wanted)


def ensure_built(model, probe) -> Optional[str]:
    """Build a model that fit has not built yet, as fit itself does on JAX and PyTorch before the
    callbacks start (TensorFlow without a distribution strategy builds at the first step, after
    `on_train_begin`: a subclassed model, or a Sequential without an Input, then has no weights
    for the crash backup to restore nor for the probes to watch). Uses the probe batch's shapes.
    Returns None when the model is built (or now is), else why not."""
    try:
        unbuilt = not all(layer.built for layer in model._flatten_layers())
    except Exception:
        unbuilt = not getattr(model, "built", True)
    if not unbuilt:
        return None
    build = getattr(model, "_symbolic_build", None)
    if probe is None or build is None:
        return "the model is not built before its first step and no probe batch is known to build it from"
    try:
        build(data_batch=(probe[0], probe[1], None))
    except Exception as e:
        return f"could not build the model from the probe batch ({type(e).__name__}: {e})"
    return None


def move_run_dir(ctx: "RunContext", target: str) -> bool:
    """Rename the run directory (one os.rename in the same parent); the run log, the TensorBoard
    writer (`ctx.tensorboard`) and every path the callbacks derive from the context follow.
    Returns False (and leaves a note) when the rename fails."""
    current = ctx.run_dir
    if current is None or os.path.abspath(target) == os.path.abspath(current):
        return True
    if os.path.exists(target):
        target = f"{target}-{os.getpid()}"
    try:
        ctx.runlog.flush()
        os.rename(current, target)
    except OSError as e:
        ctx.note(f"could not rename the run directory to {os.path.basename(target)!r} ({type(e).__name__}: {e})")
        return False
    ctx.runlog.run_dir = target
    if ctx.tensorboard is not None:
        ctx.tensorboard.log_dir = os.path.join(target, "tensorboard")
    return True


def describe_training(model, batch_size: Optional[int], seed: Optional[int]) -> Dict[str, Any]:
    """What this fit really trains with: the compiled optimizer's class, learning rate now, LR
    schedule, gradient clipping and weight decay, fit's batch size, and the seed applied in this
    process (None when nothing was seeded)."""
    import keras

    from kerasrecipe.optimizers import get_learning_rate

    opt = getattr(model, "optimizer", None)
    out: Dict[str, Any] = {"optimizer": None, "learning_rate": None, "schedule": None, "clipnorm": None,
                           "weight_decay": None, "batch_size": batch_size, "seed": seed}
    if opt is None:
        return out
    inner = opt.inner_optimizer if isinstance(opt, keras.optimizers.LossScaleOptimizer) else opt
    cls = type(inner)
    for c in cls.__mro__:  # the Keras class under kerasrecipe's clipping wrapper
        if c.__module__.split(".")[0] == "keras":
            cls = c
            break
    out["optimizer"] = cls.__name__.lower()
    try:
        out["learning_rate"] = float(get_learning_rate(opt))
    except Exception:
        pass
    lr = getattr(inner, "_learning_rate", None)
    base = getattr(lr, "schedule", lr)  # PlateauAware wraps the schedule
    out["schedule"] = "constant" if base is None or isinstance(base, (int, float)) or isinstance(
        base, keras.Variable) else type(base).__name__.lower()
    for name in ("max_norm", "global_clipnorm", "clipnorm"):
        v = getattr(inner, name, None)
        if isinstance(v, (int, float)) and v:
            out["clipnorm"] = float(v)
            break
    wd = getattr(inner, "weight_decay", None)
    out["weight_decay"] = float(wd) if isinstance(wd, (int, float)) and wd else None
    return out


def training_name(t: Dict[str, Any], plateau: bool) -> str:
    """A run-name fragment (A4) from `describe_training`, e.g. 'sgd-lr1e-01-bs128-cosinedecay-plateau-s42'."""
    parts = [t["optimizer"] or "model"]
    if t["learning_rate"] is not None:
        parts.append(f"lr{t['learning_rate']:.0e}")
    if t["batch_size"]:
        parts.append(f"bs{t['batch_size']}")
    if t["schedule"] and t["schedule"] != "constant":
        parts.append(t["schedule"])
    if plateau:
        parts.append("plateau")
    if t["weight_decay"]:
        parts.append(f"wd{t['weight_decay']:.0e}")
    if t["clipnorm"]:
        parts.append(f"clip{t['clipnorm']:g}")
    if t["seed"] is not None:
        parts.append(f"s{t['seed']}")
    return "-".join(parts)


# ---------------------------------------------------------------------- fit arguments
_FIT_NAMES = ("x", "y", "batch_size", "validation_data", "validation_split", "epoch_iterator", "steps_per_epoch",
              "sample_weight", "class_weight", "epochs", "initial_epoch")


def capture_fit_args(model, max_depth: int = 40) -> Optional[Dict[str, Any]]:
    """Locals of the innermost `fit` frame of `model` on the call stack, or None."""
    f = sys._getframe(1)
    depth = 0
    while f is not None and depth < max_depth:
        if f.f_code.co_name == "fit" and f.f_locals.get("self") is model:
            loc = f.f_locals
            return {k: loc.get(k) for k in _FIT_NAMES}
        f = f.f_back
        depth += 1
    return None


def _to_numpy(a):
    if a is None:
        return None
    if isinstance(a, dict):
        return {k: _to_numpy(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return type(a)(_to_numpy(v) for v in a)
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(a))
    except Exception:
        return np.asarray(a)


def _head(a, n):
    if a is None:
        return None
    if isinstance(a, dict):
        return {k: _head(v, n) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return type(a)(_head(v, n) for v in a)
    return a[:n]


def _length(a) -> Optional[int]:
    if a is None:
        return None
    if isinstance(a, dict):
        a = next(iter(a.values()), None)
    elif isinstance(a, (list, tuple)) and a and hasattr(a[0], "shape"):
        a = a[0]
    shape = getattr(a, "shape", None)
    if shape is not None and len(shape) > 0 and shape[0] is not None:
        return int(shape[0])
    return None


def _unpack(batch):
    if isinstance(batch, (list, tuple)):
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]
    return batch, None


def probe_from_fit(args: Dict[str, Any], n: int):
    """(x, y, note): the first `n` training samples as numpy, or (None, None, why not)."""
    x, y = args.get("x"), args.get("y")
    if x is None:
        return None, None, "fit was given no training data the recipe could read"
    try:
        import keras

        if isinstance(x, keras.utils.PyDataset):
            bx, by = _unpack(x[0])
            return _to_numpy(_head(bx, n)), _to_numpy(_head(by, n)), None
        # a tf.data.Dataset exists only once TensorFlow is imported: never import it just to ask
        tf = sys.modules.get("tensorflow")
        is_tfdata = tf is not None and isinstance(x, tf.data.Dataset)
        if is_tfdata:
            for batch in x.take(1):
                bx, by = _unpack(batch)
                return _to_numpy(_head(bx, n)), _to_numpy(_head(by, n)), None
            return None, None, "the tf.data training set is empty"
        if _length(x) is not None:
            return _to_numpy(_head(x, n)), _to_numpy(_head(y, n)), None
        if hasattr(x, "__iter__") and hasattr(x, "__len__") and not hasattr(x, "__next__"):
            # a re-iterable loader (e.g. torch DataLoader): a fresh iterator does not consume it
            bx, by = _unpack(next(iter(x)))
            return _to_numpy(_head(bx, n)), _to_numpy(_head(by, n)), None
    except Exception as e:  # never let the probe break a fit
        return None, None, f"could not read a probe batch from the training data ({type(e).__name__}: {e})"
    return None, None, (f"the training data ({type(x).__name__}) cannot be re-read without consuming it; "
                        "pass probe_data=(x, y) to default() for health monitoring")


def class_counts(y, num_classes: Optional[int], *, class_weight=None, sample_weight=None) -> Optional[List[float]]:
    """Label counts of integer or one-hot labels (None for anything else).

    With fit's `class_weight` (each class's count times its weight) or `sample_weight` (the sum of
    each class's sample weights): the class distribution the TRAINING loss sees, whose entropy is
    its prior. Weights that do not fit the labels are ignored (plain counts)."""
    if y is None or isinstance(y, (dict, list, tuple)):
        return None
    y = np.asarray(y)
    if y.size == 0:
        return None
    if y.ndim >= 2 and y.shape[-1] > 1:
        idx = y.reshape(-1, y.shape[-1]).argmax(-1)
        k = y.shape[-1]
    else:
        flat = y.reshape(-1)
        if not np.all(np.isfinite(flat)) or not np.all(flat == np.round(flat)) or flat.min() < 0:
            return None
        idx = flat.astype(np.int64)
        k = max(int(idx.max()) + 1, int(num_classes or 0))
        if k > 10000:
            return None
    counts = np.bincount(idx, minlength=k)
    weighted = None
    if isinstance(class_weight, dict) and class_weight:
        try:
            weighted = [float(counts[c]) * float(class_weight.get(c, 1.0)) for c in range(k)]
        except (TypeError, ValueError):
            weighted = None
    elif sample_weight is not None:
        sw = np.asarray(sample_weight, dtype="float64").reshape(-1)
        if sw.shape[0] == idx.shape[0] and np.all(np.isfinite(sw)):
            weighted = np.bincount(idx, weights=sw, minlength=k)[:k].astype(float).tolist()
    if weighted is not None and sum(weighted) > 0:
        return weighted
    return counts.astype(int).tolist()


# ---------------------------------------------------------------------- model description
def _activation_name(layer) -> Optional[str]:
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    name = getattr(act, "__name__", None) or getattr(act, "name", None) or type(act).__name__
    return str(name)


def describe_layers(layers) -> List[dict]:
    out = []
    for lyr in layers:
        units = getattr(lyr, "units", None) or getattr(lyr, "filters", None)
        try:
            params = int(sum(int(np.prod(w.shape)) for w in lyr.weights))
        except Exception:
            params = None
        out.append({"name": lyr.name, "class": type(lyr).__name__, "activation": _activation_name(lyr),
                    "units": int(units) if isinstance(units, (int, np.integer)) else None, "params": params})
    return out




def describe_loss(model) -> dict:
    """loss name, task, num_classes, from_logits as far as the compiled loss tells."""
    loss = getattr(model, "loss", None)
    from_logits = None
    if isinstance(loss, str):
        name, from_logits = loss, False
    elif loss is None:
        name = None
    elif isinstance(loss, (dict, list, tuple)):
        name = "multiple"
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
        from_logits = getattr(loss, "from_logits", None)
        if from_logits is None:
            from_logits = getattr(loss, "_fn_kwargs", {}).get("from_logits")
        if from_logits is None and callable(loss):
            from_logits = False if hasattr(loss, "__name__") else None
    from kerasrecipe.checks.introspect import loss_name_task

    low = (name or "").lower()
    task = loss_name_task(name) or "unknown"
    num_classes = None
    if task == "classification":
        try:
            outs = getattr(model, "outputs", None)
            width = int(outs[0].shape[-1]) if outs else None
        except Exception:
            width = None
        if width is not None:
            num_classes = 2 if width == 1 else width
        elif "binary" in low:
            num_classes = 2
    return {"loss": name, "task": task, "num_classes": num_classes,
            "from_logits": None if from_logits is None else bool(from_logits)}
