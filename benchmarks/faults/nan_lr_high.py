"""Divergence to NaN: plain SGD with a learning rate far too high (fix: lr 0.01).

A regression MLP on the bundled diabetes data (inputs and target standardised): with lr 1.0
every step overshoots and the weights grow geometrically until the loss is Inf/NaN, on every
backend. (A classifier is a poor carrier for this fault: Keras clips the probabilities in its
cross-entropy, so a diverged classifier often sits at a finite loss of ~14 with dead ReLUs
instead of producing NaN.)
"""
import keras

from ._common import case, diabetes, mlp

TAGS = ("nan", "exploding_gradients", "lr_too_high")
EPOCHS = 3


def build(fixed):
    (x, y), (xv, yv) = diabetes()
    mu, sd = y.mean(), y.std()
    y, yv = (y - mu) / sd, (yv - mu) / sd
    model = mlp(10, (64, 64), out=1, out_act=None)
    model.compile(keras.optimizers.SGD(0.01 if fixed else 1.0), "mse")
    return case(model, x, y, (xv, yv))
