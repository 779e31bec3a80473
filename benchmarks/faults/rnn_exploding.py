"""Exploding gradients in a recurrent net without clipping (fix: clip by global norm, D8).

A SimpleRNN whose recurrent matrix has gain 1.6 over 40 steps: backpropagation through time
multiplies the gradient by up to 1.6 per step. The fixed twin clips the global norm at 1.0 with
kerasrecipe.optimizers.clip_global_norm.
"""
import keras
import numpy as np

from ._common import case

TAGS = ("exploding_gradients", "nan", "lr_too_high", "oscillating_loss")
EPOCHS = 4
T = 40


def _data(n, rng):
    x = rng.normal(0, 1, (n, T, 1)).astype("float32")
    y = (x[:, :5, 0].sum(1) > 0).astype("float32")   # the label depends on the first steps
    return x, y


def build(fixed):
    rng = np.random.default_rng(0)
    x, y = _data(800, rng)
    val = _data(200, rng)
    model = keras.Sequential([
        keras.Input((T, 1)),
        keras.layers.SimpleRNN(32, activation="tanh", recurrent_initializer=keras.initializers.Orthogonal(gain=1.6)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    opt = keras.optimizers.SGD(0.02, momentum=0.9)
    if fixed:
        from kerasrecipe.optimizers import clip_global_norm

        opt = clip_global_norm(opt, 1.0)
    model.compile(opt, "binary_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
