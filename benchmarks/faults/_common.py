"""Data and model helpers shared by the fault cases (bundled scikit-learn data, small Keras models).

Every case module exposes:
    TAGS   the fault's tag first, then the tags that name the same fault by its direct symptom
           (e.g. labels not paired with inputs -> "label_mismatch" or "stuck_at_prior")
    EPOCHS how many epochs the benchmark trains it
    build(fixed: bool) -> dict(model, x, y, validation_data, fit_kwargs)
The faulty set-up and its fixed twin differ only by the fix.
"""
from __future__ import annotations

import numpy as np


def _split(x, y, seed=0, val=0.2):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    k = int(round(len(x) * (1 - val)))
    return (x[idx[:k]], y[idx[:k]]), (x[idx[k:]], y[idx[k:]])


def digits(seed=0):
    """Bundled digits, 8x8 images flattened, scaled to [0, 1]; 80/20 train/validation.

    The pixels that are constant over the training split (image corners) are dropped, in both
    the faulty and the fixed set-ups: they are not one of the faults under test (preflight's
    constant-feature check would otherwise flag every digits case, twins included).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    (x, y), (xv, yv) = _split(d.data.astype("float32") / 16.0, d.target.astype("int32"), seed)
    keep = x.std(0) > 0
    return (x[:, keep], y), (xv[:, keep], yv)


def standardize(xtr, *others):
    """z-score with the training set's statistics (B3)."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    return [((a - mu) / sd).astype("float32") for a in (xtr,) + others]


def cancer(normalized=True, seed=0):
    """Bundled breast cancer (569 x 30, binary); z-scored on train unless normalized=False."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    (xtr, ytr), (xva, yva) = _split(d.data.astype("float32"), d.target.astype("float32"), seed)
    if normalized:
        xtr, xva = standardize(xtr, xva)
    return (xtr, ytr), (xva, yva)


def diabetes(seed=0):
    """Bundled diabetes regression (442 x 10), inputs z-scored; raw targets (25..346)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    (xtr, ytr), (xva, yva) = _split(d.data.astype("float32"), d.target.astype("float32"), seed)
    xtr, xva = standardize(xtr, xva)
    return (xtr, ytr), (xva, yva)


def mlp(n_in, hidden=(64,), act="relu", out=10, out_act="softmax", **dense_kw):
    import keras

    layers = [keras.Input((n_in,))]
    for h in hidden:
        layers.append(keras.layers.Dense(h, activation=act, **dense_kw))
    layers.append(keras.layers.Dense(out, activation=out_act))
    return keras.Sequential(layers)


def adam(lr=1e-3):
    import keras

    return keras.optimizers.Adam(lr)


def case(model, x, y, validation_data, **fit_kwargs):
    return {"model": model, "x": x, "y": y, "validation_data": validation_data, "fit_kwargs": fit_kwargs}
