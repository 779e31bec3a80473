"""RecipeEarlyStopping: Keras's EarlyStopping (tip F2) that knows the recipe's monitor.

Two differences from `keras.callbacks.EarlyStopping`, both for `default()`:

- its direction (`mode`) follows the monitored name (`max` for accuracy-like metrics, AUC, F1,
  R2...; else `min`), also after the recipe retargets it (val_X -> X without validation data),
  so custom metrics such as `val_my_acc` need no `mode=`;
- an epoch that ran no validation (`fit(validation_freq=k)`) is skipped silently instead of
  warning that `val_...` is missing;
- with the recipe's RunContext (`default()` passes it) it leaves a trace in the run log: an `event`
  record `stop` (reason `early_stopping`) when it stops the fit, and `restored_best` (the epoch whose
  weights the model ends with) when it puts the best weights back.
"""
from __future__ import annotations

import keras

from kerasrecipe.callbacks._context import fit_has_validation, monitor_mode, validation_skipped


class RecipeEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping with the recipe's monitor direction; silent on epochs without validation.

    Args: those of `keras.callbacks.EarlyStopping`; `mode` defaults to the direction of `monitor`;
        `context`: the recipe's RunContext (default() passes it) for the run log's events.

    Example:
        >>> es = RecipeEarlyStopping(monitor="val_auc", patience=10, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", mode=None, context=None, **kwargs):
        super().__init__(monitor=monitor, mode=mode or monitor_mode(monitor), **kwargs)
        self.context = context

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._has_validation = fit_has_validation(self.model)
        self._last_epoch = None

    def _run_epoch(self, epoch):
        return int(epoch) if self.context is None else self.context.run_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._last_epoch = epoch
        ctx = self.context
        if ctx is not None and self.stopped_epoch == epoch and epoch > 0:
            best = self._run_epoch(self.best_epoch) + 1
            ctx.runlog.log("event", epoch=self._run_epoch(epoch), step=ctx.step, event="stop", reason="early_stopping",
                           message=f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                                   f"(best {float(self.best):.4g} at epoch {best})")
            ctx.stopped_reason = ctx.stopped_reason or "early_stopping"

    def on_train_end(self, logs=None):
        restore = (self.restore_best_weights and self.best_weights is not None
                   and self._last_epoch is not None and self.best_epoch != self._last_epoch)
        super().on_train_end(logs)
        ctx = self.context
        if ctx is not None and restore:
            best = self._run_epoch(self.best_epoch)
            ctx.runlog.log("event", epoch=best, step=ctx.step, event="restored_best", monitor=self.monitor,
                           value=float(self.best),
                           message=f"restored the weights of epoch {best + 1}, the best {self.monitor} "
                                   f"({float(self.best):.4g}); the last epoch was {self._run_epoch(self._last_epoch) + 1}")

    def get_monitor_value(self, logs):
        if validation_skipped(self.monitor, logs, getattr(self, "_has_validation", None)):
            return None
        return super().get_monitor_value(logs)
