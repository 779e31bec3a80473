"""Labels not paired with inputs: y shuffled separately from x (fix: keep the pairs)."""
import numpy as np

from ._common import adam, case, digits, mlp

TAGS = ("label_mismatch", "stuck_at_prior", "no_better_than_baseline")
EPOCHS = 4


def build(fixed):
    (x, y), val = digits()
    if not fixed:
        y = np.random.default_rng(1).permutation(y)
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
