"""NaN in the input data: 1% of the pixels missing as NaN (fix: impute with the training mean)."""
import numpy as np

from ._common import adam, case, digits, mlp

TAGS = ("data_nan", "nan")
EPOCHS = 3


def build(fixed):
    (x, y), val = digits()
    x = x.copy()
    rng = np.random.default_rng(0)
    mask = rng.random(x.shape) < 0.01
    x[mask] = np.nan
    if fixed:
        x = np.where(np.isnan(x), np.nanmean(x, 0, keepdims=True), x).astype("float32")
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
