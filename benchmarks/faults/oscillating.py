"""Oscillating loss: Adam at 0.05 on a small MLP (fix: 1e-3)."""
from ._common import adam, case, digits, mlp

TAGS = ("oscillating_loss", "lr_too_high", "train_rising", "dead_relu")
EPOCHS = 4


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (128, 128))
    model.compile(adam(1e-3 if fixed else 0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
