"""ReduceLROnPlateauAny: halve the learning rate when the monitored metric stops improving (tip D3),
for a float learning rate, any LearningRateSchedule and a MultiOptimizer."""
from __future__ import annotations

import math
import warnings

import keras

from kerasrecipe.callbacks._context import fit_has_validation, validation_skipped
from kerasrecipe.errors import ConfigError
from kerasrecipe.optimizers import get_learning_rate, get_learning_rates, scale_learning_rate


class ReduceLROnPlateauAny(keras.callbacks.ReduceLROnPlateau):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience` epochs.

    Unlike `keras.callbacks.ReduceLROnPlateau` (which raises TypeError when the optimizer holds a
    LearningRateSchedule), this works with:

    - a float learning rate (the optimizer's variable is assigned);
    - any schedule: it is wrapped in `kerasrecipe.schedules.PlateauAware` and the wrapper's
      multiplier is reduced, so the schedule keeps its shape at a lower level (the traced train
      step is rebuilt on TensorFlow and JAX when that happens);
    - a MultiOptimizer (layer-wise rates): every group is scaled by the same factor, each floored
      at `min_lr`.

    Each epoch it writes the current rate to `logs["learning_rate"]` (the largest rate for a
    MultiOptimizer, plus `learning_rate_<name>` per group), and, when a `runlog` is given, an
    event record `{"event": "lr_reduced", "old_lr", "new_lr"}` at each reduction.

    Args:
        monitor: metric to watch, e.g. "val_loss" or "val_accuracy" (direction from `mode`).
        factor: multiplier in (0, 1); 0.5 halves (D3).
        patience: epochs without improvement before reducing.
        min_lr: the rate never goes below this (D4: never decay to zero).
        mode: "auto", "min" or "max".
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        verbose: 1 prints a line at each reduction.
        runlog: optional `kerasrecipe.RunLog` to record reductions in (the event's step: the last
            step before the change).
        context: the recipe's RunContext (`default()` passes it): the event's epoch and step are
            the run's (continued across fits).

    Example:
        model.fit(x, y, validation_split=0.2, epochs=50,
                  callbacks=[kr.callbacks.ReduceLROnPlateauAny(patience=3)])
    """

    def __init__(self, monitor="val_loss", factor=0.5, patience=3, min_lr=1e-7, mode="auto", min_delta=1e-4,
                 cooldown=0, verbose=0, runlog=None, context=None):
        if not (0 < factor < 1):
            raise ConfigError(f"ReduceLROnPlateauAny factor={factor!r} is invalid: expected a number in (0, 1); "
                              "0.5 halves the learning rate (D3).")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"ReduceLROnPlateauAny patience={patience!r} is invalid: expected an integer >= 0")
        if not isinstance(min_lr, (int, float)) or not math.isfinite(min_lr) or min_lr < 0:
            raise ConfigError(f"ReduceLROnPlateauAny min_lr={min_lr!r} is invalid: expected a finite number >= 0")
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"ReduceLROnPlateauAny mode={mode!r} is invalid: expected 'auto', 'min' or 'max'")
        super().__init__(monitor=monitor, factor=factor, patience=patience, verbose=verbose, mode=mode,
                         min_delta=min_delta, cooldown=cooldown, min_lr=min_lr)
        self.runlog = runlog
        self.context = context  # the recipe's RunContext (default()): events numbered as the run's
        self.reductions = []  # (epoch, old_lr, new_lr)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._has_validation = fit_has_validation(self.model)

    def _log_lr(self, logs):
        opt = self.model.optimizer
        logs["learning_rate"] = get_learning_rate(opt)
        if isinstance(opt, keras.optimizers.MultiOptimizer):
            for o, lr in zip(opt.optimizers, get_learning_rates(opt)):
                logs[f"learning_rate_{o.name}"] = lr

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        self._log_lr(logs)
        current = logs.get(self.monitor)
        if current is None and validation_skipped(self.monitor, logs, getattr(self, "_has_validation", None)):
            return  # an epoch without validation (fit's validation_freq): nothing to compare
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateauAny: monitor {self.monitor!r} is not in the logs (available: "
                f"{', '.join(sorted(logs))}); the learning rate is not reduced. Pass validation data or "
                "monitor='loss'.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old = logs["learning_rate"]
        # the traced train step is rebuilt only when the change needs it (a schedule's multiplier):
        # a learning-rate variable is just assigned (a rebuild recompiles the step on TF and JAX)
        if scale_learning_rate(self.model.optimizer, self.factor, min_lr=self.min_lr, model=self.model):
            new = get_learning_rate(self.model.optimizer)
            self._log_lr(logs)
            self.reductions.append((int(epoch), old, new))
            self.cooldown_counter = self.cooldown
            self.wait = 0
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateauAny: learning rate {old:.3g} -> {new:.3g}.")
            if self.runlog is not None:
                # the epoch and step the change follows (the run's numbering under default())
                ctx = self.context
                if ctx is not None and ctx.fit_index >= 0:
                    epoch, step = ctx.run_epoch(epoch), ctx.step
                else:
                    step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1
                self.runlog.log("event", epoch=epoch, step=step, event="lr_reduced", old_lr=old, new_lr=new,
                                message=f"{self.monitor} did not improve for {self.patience} epochs: "
                                        f"learning rate {old:.3g} -> {new:.3g}")
