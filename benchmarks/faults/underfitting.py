"""Underfitting: a 1-unit bottleneck cannot separate 10 classes (fix: 64 units, C5)."""
from ._common import adam, case, digits, mlp

TAGS = ("underfitting", "stuck", "slow_convergence")
EPOCHS = 6


def build(fixed):
    (x, y), val = digits()
    model = mlp(x.shape[1], (64 if fixed else 1,))
    model.compile(adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
