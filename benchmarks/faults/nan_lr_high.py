"""Divergence to NaN: plain SGD with a learning rate 100x too high (fix: lr 0.1)."""
import keras

from ._common import case, digits, mlp

TAGS = ("nan", "exploding_gradients", "lr_too_high")
EPOCHS = 3


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (128, 128))
    model.compile(keras.optimizers.SGD(0.1 if fixed else 10.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
