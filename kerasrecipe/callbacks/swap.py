"""SwitchOptimizer: train with Adam, finish with SGD (tip D5: switch Adam -> SGD near convergence)."""
from __future__ import annotations

import keras

from kerasrecipe.errors import ConfigError, InputTypeError


class SwitchOptimizer(keras.callbacks.Callback):
    """At the start of epoch `at_epoch`, replace the model's optimizer by `optimizer` (tip D5).

    The usual use: Adam for the fast start, then SGD with momentum, which often generalises
    better, for the last epochs. The new optimizer starts with fresh state (its moments are
    zero); the traced train step is rebuilt.

    Args:
        at_epoch: 0-based epoch at which to switch (> 0).
        optimizer: the optimizer of the second phase, e.g. `kerasrecipe.optimizers.sgd(1e-2)`.

    Example:
        model.compile(kr.optimizers.adam(), loss)
        model.fit(x, y, epochs=30, callbacks=[kr.callbacks.SwitchOptimizer(20, kr.optimizers.sgd(1e-2))])
    """

    def __init__(self, at_epoch: int, optimizer):
        super().__init__()
        if isinstance(at_epoch, bool) or not isinstance(at_epoch, int) or at_epoch <= 0:
            raise ConfigError(f"SwitchOptimizer at_epoch={at_epoch!r} is invalid: expected an integer > 0")
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise InputTypeError(f"SwitchOptimizer needs a keras optimizer, got {type(optimizer).__name__}")
        if optimizer.built:
            raise ConfigError("SwitchOptimizer: give a fresh (unbuilt) optimizer for the second phase")
        self.at_epoch = at_epoch
        self.optimizer = optimizer
        self.switched_at = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.at_epoch or self.switched_at is not None:
            return
        self.optimizer.build(self.model.trainable_variables)
        self.model.optimizer = self.optimizer
        self.model.make_train_function(force=True)
        self.switched_at = epoch
