"""`default()`: the whole during-training recipe as a list of Keras callbacks (issue 7).

    import kerasrecipe as kr
    callbacks = kr.default()                              # or kr.default(cfg, learning_rate=1e-3)
    model.fit(x, y, validation_split=0.2, epochs=100, callbacks=callbacks)
    run_dir = kr.recipe.find_run_dir(callbacks)           # where everything went
    log = kr.recipe.find_runlog(callbacks)                # the RunLog, in memory

The callbacks, in the order Keras calls them (they share one RunContext and one RunLog):

| callback                         | tips        | what                                            |
|----------------------------------|-------------|-------------------------------------------------|
| RunLogger                        | A3, A4, A8  | config.json, env.json, runlog.jsonl, history.*  |
| NaNGuard                         | G2          | stop on NaN/Inf, restore finite weights, origin |
| HealthMonitor                    | G3, G4      | per-layer activations/gradients/update ratios   |
| RecipeCheckpoint                 | A5          | checkpoints/epochNNNN-<monitor><value>...       |
| keras EarlyStopping              | F2          | on val_loss, best weights restored              |
| ReduceLROnPlateauAny (LR tools)  | D3          | halve the LR on a plateau, schedules included   |
| EpochTensorBoard (keras TB)      | A6          | RUN_DIR/tensorboard, when tensorboard installed |
| RecipeBackup                     | -           | resume after a crash                            |
| DiagnosisCallback                | G1, G5, C10 | live findings, findings.json, final table       |

The run directory is `config.run_root/<config.run_name or config.short_name()>-<timestamp>`;
at the end of each fit it is renamed to end in `-best_<monitor><value>` (see
callbacks/diagnosis.py). Pass `run_dir=` to choose the directory yourself: it is then never
renamed, and if it holds a crashed run, the run continues there (resume).

Step-time overhead: none of these callbacks blocks Keras's asynchronous batch-end dispatch (the
per-step work runs at batch begin, or in batch-end hooks of `async_safe` callbacks that only store
values), so the device is not waited for after every step on JAX and PyTorch. On TensorFlow Keras
never dispatches asynchronously (its logs are read after every step with or without the recipe).
benchmarks/bench_recipe.py measures the overhead against a plain fit.

Without validation data the monitored metric falls back from `val_loss` to `loss` (a `note`
event says so, and `best.json` records `monitor_fallback: true`).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import List, Optional

import keras

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.runlog import RunLog


def _tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None and importlib.util.find_spec("tensorflow") is not None


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """keras.callbacks.TensorBoard that writes at epoch end only, without slowing the steps (A6).

    Keras's TensorBoard overrides `on_train_batch_end`, and any callback that does so (unless it
    is `async_safe`) makes Keras call batch-end callbacks synchronously and turn the logs into
    Python floats after every step: a device sync per step on JAX and PyTorch. With
    update_freq="epoch", profile_batch=0, write_graph=False and write_steps_per_second=False (what
    this class forces), TensorBoard's batch-end hook only calls `summary.scalar` while no writer is
    active, which writes nothing. This class drops that hook, so it is async_safe; epoch metrics,
    validation metrics and histograms (`histogram_freq`) are written as by TensorBoard.

    On the PyTorch and JAX backends TensorBoard's writes are TensorFlow ops, and TensorFlow's
    default thread pools (one worker per core for intra-op and inter-op work) spin-wait after each
    op, taking the cores the next training steps need: a torch fit on 2 cores ran 9-22% slower per
    epoch after one `tf.summary.scalar` per epoch. So when the backend is not TensorFlow and this
    class is the first to import TensorFlow (the process has no other use of it yet), it gives
    TensorFlow one intra-op and one inter-op thread, plenty for a few summaries per epoch. A
    process that imported TensorFlow itself keeps its configuration.

    Args:
        log_dir: where to write the event files.
        histogram_freq: epochs between weight histograms (0 = none).

    Example:
        >>> tb = EpochTensorBoard("runs/try1/tensorboard")
        >>> model.fit(x, y, epochs=10, callbacks=[tb])
    """

    async_safe = True

    def __init__(self, log_dir="logs", histogram_freq=0, **kwargs):
        for key, value in (("update_freq", "epoch"), ("profile_batch", 0), ("write_graph", False),
                           ("write_steps_per_second", False)):
            if kwargs.pop(key, value) != value:
                raise ConfigError(f"EpochTensorBoard needs {key}={value!r}; use keras.callbacks.TensorBoard "
                                  "for per-batch logging")
        super().__init__(log_dir=log_dir, histogram_freq=histogram_freq, update_freq="epoch", profile_batch=0,
                         write_graph=False, write_steps_per_second=False, **kwargs)
        _quiet_tensorflow_threads()

    def on_train_batch_end(self, batch, logs=None):
        return None  # nothing to write between epochs (see the class docstring)

    # TensorBoard writes the "evaluation_*_vs_iterations" scalars at the end of every validation
    # pass, which inside fit is still within the epoch (4-10 ms of TF summary ops per epoch on the
    # CPU, ~2% of a small model's epoch). Inside fit they are kept and written at epoch end, with
    # the same values and step; a plain evaluate() outside fit writes them at once, as Keras does.
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._pending_eval = None
        super().on_train_begin(logs)

    def on_train_end(self, logs=None):
        self._write_pending_eval()
        self._in_fit = False
        super().on_train_end(logs)

    def on_test_end(self, logs=None):
        if not getattr(self, "_in_fit", False):
            return super().on_test_end(logs)
        opt = self.model.optimizer
        if opt is not None and hasattr(opt, "iterations"):
            self._pending_eval = (dict(logs or {}), opt.iterations)
        self._pop_writer()

    def on_epoch_end(self, epoch, logs=None):
        self._write_pending_eval()
        super().on_epoch_end(epoch, logs)

    def _write_pending_eval(self):
        pending, self._pending_eval = getattr(self, "_pending_eval", None), None
        if pending is None:
            return
        values, step = pending
        with self._val_writer.as_default():
            for name, value in values.items():
                self.summary.scalar(f"evaluation_{name}_vs_iterations", value, step=step)


def _quiet_tensorflow_threads() -> bool:
    """One intra-op and one inter-op TensorFlow thread, when the backend is not TensorFlow and
    TensorFlow is not imported yet (see EpochTensorBoard). True when it was set."""
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return False
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow's context already initialised (imported under another name)
        return False
    return True


def _new_run_dir(cfg: RecipeConfig) -> str:
    name = cfg.run_name or cfg.short_name()
    base = os.path.join(cfg.run_root, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"


def default(config: Optional[RecipeConfig] = None, *, run_dir: Optional[str] = None, probe_data=None,
            **overrides) -> List[keras.callbacks.Callback]:
    """The recipe's callbacks for `model.fit`, sharing one RunLog (see the module docstring).

    Args:
        config: a RecipeConfig, a dict of its fields, or None for the defaults.
        run_dir: the run directory; default: a new one under `config.run_root`, named from the
            key parameters (and renamed at the end with the best monitored value).
        probe_data: (x, y) for the health probe batch; default: the first
            `config.probe_batch_size` training samples given to fit.
        **overrides: RecipeConfig fields to change, e.g. `default(learning_rate=1e-3)`.

    Returns:
        A list of callbacks; pass it to fit as is (or add your own to it).

    Example:
        >>> cbs = kerasrecipe.default(epochs=30, monitor_interval=20)
        >>> model.fit(x, y, validation_split=0.2, epochs=30, callbacks=cbs)
        >>> kerasrecipe.recipe.find_run_dir(cbs)
        'runs/adam-lr3e-04-bs32-plateau-s42-20261127-010203-best_val_loss0.0912'
    """
    from kerasrecipe.callbacks._context import RunContext
    from kerasrecipe.callbacks.checkpoint import RecipeBackup, RecipeCheckpoint
    from kerasrecipe.callbacks.diagnosis import DiagnosisCallback
    from kerasrecipe.callbacks.health import HealthMonitor
    from kerasrecipe.callbacks.nan_guard import NaNGuard
    from kerasrecipe.callbacks.run_logger import RunLogger, load_context_from_dir

    cfg = resolve_config(config, **overrides)
    if probe_data is not None and not (isinstance(probe_data, (tuple, list)) and len(probe_data) == 2):
        raise InputTypeError(f"probe_data must be a tuple (x, y), got {type(probe_data).__name__}")
    if run_dir is None:
        ctx = RunContext(cfg, _new_run_dir(cfg), rename_at_end=True)
    else:
        run_dir = os.fspath(run_dir)
        os.makedirs(run_dir, exist_ok=True)
        ctx = load_context_from_dir(run_dir, cfg)

    cbs: List[keras.callbacks.Callback] = [RunLogger(context=ctx, probe_data=probe_data)]
    if cfg.nan_guard:
        cbs.append(NaNGuard(context=ctx))
    if cfg.monitor_health:
        cbs.append(HealthMonitor(interval=cfg.monitor_interval, context=ctx))
    ckpt = None
    if cfg.checkpoint != "none":
        ckpt = RecipeCheckpoint(context=ctx, mode=cfg.checkpoint, keep_best=max(cfg.keep_best, 1))
        cbs.append(ckpt)
    stateful = []
    es = keras.callbacks.EarlyStopping(monitor=ctx.monitor, patience=cfg.early_stopping_patience,
                                       restore_best_weights=cfg.restore_best_weights, verbose=0)
    ctx.retarget.append(es)
    stateful.append(es)
    cbs.append(es)
    if cfg.schedule == "plateau":
        from kerasrecipe.callbacks import ReduceLROnPlateauAny

        plateau = ReduceLROnPlateauAny(monitor=ctx.monitor, factor=cfg.plateau_factor,
                                       patience=cfg.plateau_patience, min_lr=cfg.min_lr,
                                       runlog=ctx.runlog)
        ctx.retarget.append(plateau)
        stateful.append(plateau)
        cbs.append(plateau)
    tb = None
    if cfg.tensorboard and _tensorboard_available():
        tb = EpochTensorBoard(log_dir=ctx.path("tensorboard"), histogram_freq=0)
        cbs.append(tb)
    if cfg.backup:
        cbs.append(RecipeBackup(context=ctx, stateful=stateful))
    cbs.append(DiagnosisCallback(context=ctx, checkpoint=ckpt, tensorboard=tb))
    return cbs


def _logger(callbacks):
    from kerasrecipe.callbacks.run_logger import RunLogger

    for cb in callbacks or []:
        if isinstance(cb, RunLogger):
            return cb
    raise InputTypeError("no RunLogger among these callbacks: pass the list returned by kerasrecipe.default()")


def find_runlog(callbacks) -> RunLog:
    """The RunLog shared by the callbacks of `default()`."""
    return _logger(callbacks).runlog


def find_run_dir(callbacks) -> Optional[str]:
    """The run directory of the callbacks of `default()` (it follows the end-of-fit rename)."""
    return _logger(callbacks).run_dir
