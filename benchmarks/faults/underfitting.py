"""Underfitting: a 1-unit tanh bottleneck cannot separate 10 classes (fix: 64 units, C5).

tanh, not ReLU, in both set-ups: a single ReLU unit can die, and a dead unit is a second fault
(dead_relu) on top of the one this case is about.
"""
from ._common import adam, case, digits, mlp

TAGS = ("underfitting", "cannot_overfit", "stuck", "slow_convergence")
EPOCHS = 6


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (64 if fixed else 1,), act="tanh")
    model.compile(adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
