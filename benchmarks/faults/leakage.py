"""Validation data leaking training samples: half of the validation set copied from train
(fix: a disjoint split, B2)."""
import numpy as np

from ._common import adam, case, digits, mlp

TAGS = ("leakage",)
EPOCHS = 3


def build(fixed):
    (x, y), (xv, yv) = digits()
    if not fixed:
        k = len(xv) // 2
        xv, yv = np.concatenate([x[:k], xv[k:]]), np.concatenate([y[:k], yv[k:]])
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, (xv, yv))
