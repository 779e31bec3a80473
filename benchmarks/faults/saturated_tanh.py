"""Saturated tanh units from unnormalised inputs: pixel values 0..255 (fix: scale to [0, 1], B3)."""
from ._common import adam, case, digits, mlp

TAGS = ("saturation", "unnormalized_input")
EPOCHS = 3


def build(fixed):
    (x, y), (xv, yv) = digits()
    s = 1.0 if fixed else 255.0
    model = mlp(x.shape[1], (64, 64), act="tanh")
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x * s, y, (xv * s, yv))
