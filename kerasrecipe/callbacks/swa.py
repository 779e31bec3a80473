"""Stochastic weight averaging (tip I4): the average of the weights visited late in training, a
cheap ensemble in one model. For an exponential moving average of the weights use Keras's own
`optimizer(use_ema=True, ema_momentum=0.99)` instead (see docs/RECIPES.md)."""
from __future__ import annotations

import warnings

import keras
import numpy as np

from kerasrecipe.checks.introspect import all_layers
from kerasrecipe.errors import ConfigError, is_integer


class SWA(keras.callbacks.Callback):
    """Average the model's trainable weights over epochs, put the average in at the end of training
    and recompute BatchNorm statistics for it (Izmailov et al. 2018; tip I4).

    From `start_epoch` on, every `freq` epochs, the weights at the end of the epoch join a running
    arithmetic mean (in float64). At the end of training the model gets the mean; then, if the
    model has BatchNormalization layers and `bn_data` is given, their moving mean/variance are
    recomputed as the exact average of the batch statistics over `bn_data` (forward passes in
    training mode; no weight changes). Pair it with a constant or cyclic learning rate late in
    training (SWA's own recipe), not with a rate decayed to ~0.

    Args:
        start_epoch: first (0-based) epoch whose weights are averaged; None -> 75% of the run.
        freq: average every `freq` epochs.
        bn_data: training inputs (array, or dataset/generator of batches) for the BatchNorm
            update; without it a model with BatchNorm keeps its last statistics (warned).
        bn_batch_size: batch size for array `bn_data`.
        verbose: 1 prints when the average is applied.

    Attributes: `n_averaged`, `averaged_epochs`.

    Example:
        model.fit(x, y, epochs=40, callbacks=[kr.callbacks.SWA(start_epoch=30, bn_data=x)])
    """

    def __init__(self, start_epoch=None, freq=1, bn_data=None, bn_batch_size=32, verbose=0):
        super().__init__()
        if start_epoch is not None and (not is_integer(start_epoch) or start_epoch < 0):
            raise ConfigError(f"SWA start_epoch={start_epoch!r} is invalid: expected None or an integer >= 0")
        if not is_integer(freq) or freq <= 0:
            raise ConfigError(f"SWA freq={freq!r} is invalid: expected an integer > 0")
        if not is_integer(bn_batch_size) or bn_batch_size <= 0:
            raise ConfigError(f"SWA bn_batch_size={bn_batch_size!r} is invalid: expected an integer > 0")
        self.start_epoch = None if start_epoch is None else int(start_epoch)
        self.freq = int(freq)
        self.bn_data = bn_data
        self.bn_batch_size = int(bn_batch_size)
        self.verbose = verbose
        self._mean = None
        self.n_averaged = 0
        self.averaged_epochs = []

    def on_train_begin(self, logs=None):
        self._mean, self.n_averaged, self.averaged_epochs = None, 0, []
        self._start = self.start_epoch
        if self._start is None:
            self._start = int(0.75 * int(self.params.get("epochs", 1)))

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self._start or (epoch - self._start) % self.freq:
            return
        ws = [np.asarray(keras.ops.convert_to_numpy(v.value), dtype="float64") for v in self.model.trainable_variables]
        self.n_averaged += 1
        if self._mean is None:
            self._mean = ws
        else:
            k = self.n_averaged
            self._mean = [m + (w - m) / k for m, w in zip(self._mean, ws)]
        self.averaged_epochs.append(int(epoch))

    def on_train_end(self, logs=None):
        if self._mean is None:
            warnings.warn(f"SWA: no epoch reached start_epoch={self._start}; the weights are left as they are",
                          stacklevel=2)
            return
        for v, m in zip(self.model.trainable_variables, self._mean):
            v.assign(m.astype(keras.backend.standardize_dtype(v.dtype)))
        bns = [l for l in all_layers(self.model, include_self=True) if isinstance(l, keras.layers.BatchNormalization)]
        if bns:
            if self.bn_data is None:
                warnings.warn("SWA: the model has BatchNormalization but no bn_data was given: its statistics belong "
                              "to the last weights, not the averaged ones. Pass bn_data=x_train.", stacklevel=2)
            else:
                update_batchnorm(self.model, self.bn_data, batch_size=self.bn_batch_size)
        if self.verbose:
            print(f"SWA: averaged {self.n_averaged} epochs {self.averaged_epochs}")



def _batches(data, batch_size):
    if isinstance(data, np.ndarray) or hasattr(data, "shape"):
        data = np.asarray(data)
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size]
        return
    for b in data:
        yield b[0] if isinstance(b, (tuple, list)) else b


def update_batchnorm(model, data, batch_size=32) -> int:
    """Recompute every BatchNormalization layer's moving mean/variance as the average of the batch
    statistics over `data` (inputs only), with the current weights. Returns the batches used."""
    bns = [l for l in all_layers(model, include_self=True) if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    saved = [(l, l.momentum, l.trainable) for l in bns]
    for l in bns:
        l.moving_mean.assign(np.zeros(tuple(l.moving_mean.shape), "float32"))
        l.moving_variance.assign(np.ones(tuple(l.moving_variance.shape), "float32"))
    k = 0
    try:
        for l in bns:
            l.trainable = True  # a frozen BN runs in inference mode and would not update
        for xb in _batches(data, batch_size):
            for l in bns:
                l.momentum = k / (k + 1.0)  # cumulative average: m_k = m_{k-1} * k/(k+1) + s_k / (k+1)
            model(xb, training=True)
            k += 1
    finally:
        for l, mom, tr in saved:
            l.momentum = mom
            l.trainable = tr
    return k
