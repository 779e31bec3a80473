"""RecipeEarlyStopping: Keras's EarlyStopping (tip F2) that knows the recipe's monitor.

Two differences from `keras.callbacks.EarlyStopping`, both for `default()`:

- its direction (`mode`) follows the monitored name (`max` for accuracy-like metrics, AUC, F1,
  R2...; else `min`), also after the recipe retargets it (val_X -> X without validation data),
  so custom metrics such as `val_my_acc` need no `mode=`;
- an epoch that ran no validation (`fit(validation_freq=k)`) is skipped silently instead of
  warning that `val_...` is missing.
"""
from __future__ import annotations

import keras

from kerasrecipe.callbacks._context import fit_has_validation, monitor_mode, validation_skipped


class RecipeEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping with the recipe's monitor direction; silent on epochs without validation.

    Args: those of `keras.callbacks.EarlyStopping`; `mode` defaults to the direction of `monitor`.

    Example:
        >>> es = RecipeEarlyStopping(monitor="val_auc", patience=10, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", mode=None, **kwargs):
        super().__init__(monitor=monitor, mode=mode or monitor_mode(monitor), **kwargs)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._has_validation = fit_has_validation(self.model)

    def get_monitor_value(self, logs):
        if validation_skipped(self.monitor, logs, getattr(self, "_has_validation", None)):
            return None
        return super().get_monitor_value(logs)
