"""Train/validation distribution shift: validation images inverted (1 - x) by a different
pipeline (fix: the same preprocessing for both, B2)."""
from ._common import adam, case, digits, mlp

TAGS = ("distribution_shift", "underfitting", "data_problem", "overfitting")
EPOCHS = 4


def build(fixed):
    (x, y), (xv, yv) = digits()
    if not fixed:
        xv = 1.0 - xv
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, (xv, yv))
