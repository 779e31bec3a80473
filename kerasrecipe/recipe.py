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
| RecipeEarlyStopping              | F2          | on val_loss, best weights restored              |
| ReduceLROnPlateauAny (LR tools)  | D3          | halve the LR on a plateau, schedules included   |
| EpochTensorBoard                 | A6          | RUN_DIR/tensorboard, when tensorboard installed |
| RecipeBackup                     | -           | resume after a crash                            |
| DiagnosisCallback                | G1, G5, C10 | live findings, findings.json, final table       |

The run directory is `config.run_root/<name>-<timestamp>`: `config.run_name` if given, else the
key parameters of what the run trains with, read from the compiled optimizer and fit's arguments
when the first fit begins (e.g. `sgd-lr1e-01-bs128-plateau-s42`: optimizer, learning rate, batch
size, LR schedule, plateau halving, weight decay, clipping, the seed `seed_everything` applied);
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
import time
from typing import List, Optional

import keras

from kerasrecipe.callbacks.tensorboard import EpochTensorBoard
from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.runlog import RunLog


def _tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def _new_run_dir(cfg: RecipeConfig):
    """(path, stamp): a new directory `run_root/<name>-<stamp>`; stamp = time (and a counter)."""
    name = cfg.run_name or cfg.short_name()
    stamp0 = time.strftime('%Y%m%d-%H%M%S')
    stamp, n = stamp0, 1
    while True:
        path = os.path.join(cfg.run_root, f"{name}-{stamp}")
        try:
            os.makedirs(path)
            return path, stamp
        except FileExistsError:
            n += 1
            stamp = f"{stamp0}-{n}"


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
        'runs/adam-lr1e-03-bs32-plateau-s42-20261127-010203-best_val_loss0.0912'
    """
    from kerasrecipe.callbacks._context import RunContext, monitor_mode
    from kerasrecipe.callbacks.checkpoint import RecipeBackup, RecipeCheckpoint
    from kerasrecipe.callbacks.early_stopping import RecipeEarlyStopping
    from kerasrecipe.callbacks.diagnosis import DiagnosisCallback
    from kerasrecipe.callbacks.health import HealthMonitor
    from kerasrecipe.callbacks.nan_guard import NaNGuard
    from kerasrecipe.callbacks.run_logger import RunLogger, load_context_from_dir

    cfg = resolve_config(config, **overrides)
    if probe_data is not None and not (isinstance(probe_data, (tuple, list)) and len(probe_data) == 2):
        raise InputTypeError(f"probe_data must be a tuple (x, y), got {type(probe_data).__name__}")
    for what, path in (("run_root", cfg.run_root if run_dir is None else None), ("run_dir", run_dir)):
        if path is not None and os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{what} {os.fspath(path)!r} is a file, not a directory: give a directory "
                              "(it is created when missing)")
    if run_dir is None:
        path, stamp = _new_run_dir(cfg)
        ctx = RunContext(cfg, path, rename_at_end=True)
        if cfg.run_name is None:  # renamed at the first fit from what it trains with (RunLogger)
            ctx.name_stamp = stamp
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
    es = RecipeEarlyStopping(monitor=ctx.monitor, patience=cfg.early_stopping_patience,
                             restore_best_weights=cfg.restore_best_weights, verbose=0, context=ctx)
    ctx.retarget.append(es)
    stateful.append(es)
    cbs.append(es)
    if cfg.schedule == "plateau":
        from kerasrecipe.callbacks import ReduceLROnPlateauAny

        plateau = ReduceLROnPlateauAny(monitor=ctx.monitor, factor=cfg.plateau_factor,
                                       patience=cfg.plateau_patience, min_lr=cfg.min_lr,
                                       mode=monitor_mode(ctx.monitor), runlog=ctx.runlog, context=ctx)
        ctx.retarget.append(plateau)
        stateful.append(plateau)
        cbs.append(plateau)
    tb = None
    if cfg.tensorboard and _tensorboard_available():
        tb = EpochTensorBoard(log_dir=ctx.path("tensorboard"), histogram_freq=0)
        ctx.tensorboard = tb
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
