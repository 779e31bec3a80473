"""`predictions.npz`: a classifier's predictions on held-out data, for the report (tip C9).

The file (NumPy .npz, written atomically by `save_predictions`) holds:

    y_true       int64 (N,)      true class of each evaluated sample
    y_pred       int64 (N,)      predicted class (argmax of proba)
    proba        float32 (N, C)  predicted class probabilities
    loss         float32 (N,)    per-sample cross-entropy, -log proba[i, y_true[i]]
    worst_index  int64 (k,)      indices (into the N samples) of the k largest losses, worst first
    worst_x      (k, ...)        the inputs of those samples, as given (images stay images)
    class_names  str (C,)        optional class labels
    split        str ()          which data this is, e.g. "validation"

The report draws the confusion matrix from y_true/y_pred and the "top losses" panel from
worst_x (as images when the inputs are images, else as a table).

    from kerasrecipe.report import save_predictions
    save_predictions(run_dir, y_val, model.predict(x_val), x=x_val)
"""
from __future__ import annotations

import io
import os
from typing import Optional, Sequence

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.io import atomic_write_bytes

PREDICTIONS_FILE = "predictions.npz"
_EPS = 1e-12


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - np.max(z, axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def save_predictions(run_dir: str, y_true, proba, *, x=None, k: int = 16, from_logits: bool = False,
                     class_names: Optional[Sequence[str]] = None, split: str = "validation") -> str:
    """Write `run_dir/predictions.npz` (see the module docstring); returns its path.

    Args:
        run_dir: the run directory.
        y_true: (N,) integer labels, or (N, C) one-hot.
        proba: (N, C) class probabilities (or logits with `from_logits=True`); (N,) or (N, 1) for a
            binary sigmoid output (probability of class 1).
        x: the N inputs; the k worst are kept for the report. None: no examples shown.
        k: how many of the worst examples to keep.
        from_logits: apply a softmax (sigmoid for one column) to `proba` first.
        class_names: optional labels of the C classes.
        split: name of the evaluated data, shown in the report.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 1:
        proba = proba[:, None]
    if proba.ndim != 2:
        raise InputTypeError(f"save_predictions: proba must be (N, C) or (N,), got shape {proba.shape}")
    if proba.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-proba[:, 0])) if from_logits else proba[:, 0]
        proba = np.stack([1.0 - p1, p1], axis=1)
    elif from_logits:
        proba = _softmax(proba)
    if y_true.ndim == 2 and y_true.shape[1] > 1:
        y_true = np.argmax(y_true, axis=1)
    y_true = y_true.reshape(-1)
    if not np.issubdtype(y_true.dtype, np.number):
        raise InputTypeError(f"save_predictions: y_true must hold integer class ids, got dtype {y_true.dtype}")
    y_true = y_true.astype(np.int64)
    n, c = proba.shape
    if y_true.shape[0] != n:
        raise ConfigError(f"save_predictions: {y_true.shape[0]} labels but {n} rows of predictions")
    if n and (y_true.min() < 0 or y_true.max() >= c):
        raise ConfigError(
            f"save_predictions: labels must be in [0, {c - 1}] for {c} predicted classes, got "
            f"[{y_true.min()}, {y_true.max()}]"
        )
    if x is not None and len(x) != n:
        raise ConfigError(f"save_predictions: {len(x)} inputs but {n} rows of predictions")
    if not isinstance(k, int) or k < 0:
        raise ConfigError(f"save_predictions: k={k!r} must be an integer >= 0")
    if class_names is not None and len(class_names) != c:
        raise ConfigError(f"save_predictions: {len(class_names)} class_names for {c} classes")
    loss = -np.log(np.clip(proba[np.arange(n), y_true], _EPS, 1.0))
    worst = np.argsort(-loss, kind="stable")[:k]
    arrays = {
        "y_true": y_true,
        "y_pred": np.argmax(proba, axis=1).astype(np.int64),
        "proba": proba.astype(np.float32),
        "loss": loss.astype(np.float32),
        "worst_index": worst.astype(np.int64),
        "split": np.asarray(str(split)),
    }
    if x is not None:
        arrays["worst_x"] = np.asarray(x)[worst]
    if class_names is not None:
        arrays["class_names"] = np.asarray([str(s) for s in class_names])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = os.path.join(run_dir, PREDICTIONS_FILE)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_predictions(run_dir: str) -> Optional[dict]:
    """The arrays of `run_dir/predictions.npz` as a dict, or None when the file is absent."""
    path = os.path.join(run_dir, PREDICTIONS_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    for key in ("y_true", "y_pred"):
        if key not in out:
            raise ConfigError(f"{path} has no {key!r} array; write it with kerasrecipe.report.save_predictions")
    if "split" in out:
        out["split"] = str(out["split"])
    return out
