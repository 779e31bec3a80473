"""Exploding gradients in a recurrent net without clipping (fix: clip by global norm, D8).

A linear SimpleRNN whose recurrent matrix has gain 1.1 over 40 steps, on small inputs (the forward
pass stays moderate, the initial loss is normal): backpropagation through
time multiplies the gradient by up to 1.1**40 ~ 45, and SGD turns the big
gradients into steps that grow the weights, which grows the gradients further (the run feeds on
itself). The fixed twin clips the global norm at 1.0 with kerasrecipe.optimizers.clip_global_norm:
every step is then at most lr * 1.0, and the same net trains.
"""
import keras
import numpy as np

from ._common import case

TAGS = ("exploding_gradients", "nan", "lr_too_high", "oscillating_loss")
EPOCHS = 4
T = 40


def _data(n, rng):
    x = rng.normal(0, 1, (n, T, 1)).astype("float32")
    y = x[:, :5, 0].sum(1, keepdims=True).astype("float32") / np.sqrt(5.0)   # depends on the first steps
    x *= 0.05   # small inputs: the forward pass stays moderate (initial loss ~ the target's variance)
    return x, y


def build(fixed):
    rng = np.random.default_rng(0)
    x, y = _data(800, rng)
    val = _data(200, rng)
    model = keras.Sequential([
        keras.Input((T, 1)),
        keras.layers.SimpleRNN(32, activation=None, recurrent_initializer=keras.initializers.Orthogonal(gain=1.1)),
        keras.layers.Dense(1, kernel_initializer=keras.initializers.VarianceScaling(0.01)),   # starts near 0 = the target mean
    ])
    opt = keras.optimizers.SGD(0.02)
    if fixed:
        from kerasrecipe.optimizers import clip_global_norm

        opt = clip_global_norm(opt, 1.0)
    model.compile(opt, "mse")
    return case(model, x, y, val)
