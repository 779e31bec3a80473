"""Heavy class imbalance judged by accuracy: 2% positives and a weak signal; the model settles on
the majority class at 98% accuracy (fix: class weights that balance the classes, C2/B9)."""
import numpy as np

from ._common import adam, case, mlp

TAGS = ("class_imbalance", "stuck_at_prior")
EPOCHS = 4


def _data(n, rng):
    y = (rng.random(n) < 0.02).astype("float32")
    x = rng.normal(0, 1, (n, 20)).astype("float32")
    x[:, 0] += 1.0 * y
    return x, y


def build(fixed):
    rng = np.random.default_rng(0)
    x, y = _data(2000, rng)
    val = _data(500, rng)
    model = mlp(20, (32,), out=1, out_act="sigmoid")
    model.compile(adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    kw = {}
    if fixed:
        p = float(y.mean())
        kw["class_weight"] = {0: 0.5 / (1 - p), 1: 0.5 / p}
    return case(model, x, y, val, **kw)
