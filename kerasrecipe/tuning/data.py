"""Data helpers of the search: stratified reproducible subsampling (B7), class subsets, splits."""
from __future__ import annotations

import hashlib
import math
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError


def _check_arrays(x, what="x"):
    if isinstance(x, Mapping):
        for v in x.values():
            _check_arrays(v, what)
        return
    if isinstance(x, (list, tuple)) and x and all(hasattr(v, "shape") for v in x):
        for v in x:
            _check_arrays(v, what)
        return
    if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
        raise InputTypeError(
            f"{what} must be an array (or a list/dict of arrays) to subsample, split or fold it; got "
            f"{type(x).__name__}. A tf.data.Dataset or a generator cannot be subsampled: materialise "
            "the arrays, or search without subsample=/classes=/cv=."
        )


def n_samples(x) -> int:
    _check_arrays(x)
    if isinstance(x, Mapping):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)):
        x = x[0]
    return int(x.shape[0])


def _leaves(x, path="x"):
    """(path, array) of every array in x (an array, or a list/tuple/dict of arrays)."""
    if isinstance(x, Mapping):
        for k, v in x.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif isinstance(x, (list, tuple)) and x and all(hasattr(v, "shape") for v in x):
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    elif getattr(x, "shape", None) is not None and len(x.shape):
        yield path, x


def check_cardinality(x, y=None, what: str = "") -> None:
    """InputTypeError unless every array of x and y has the same number of rows (Keras's
    "Data cardinality is ambiguous", said before any truncation or indexing error)."""
    sizes = {}
    for part, name in ((x, f"{what}x"), (y, f"{what}y")):
        for path, a in _leaves(part, name):
            sizes.setdefault(int(a.shape[0]), []).append(path)
    if len(sizes) > 1:
        listed = "; ".join(f"{', '.join(paths)}: {n} rows" for n, paths in sizes.items())
        raise InputTypeError(
            f"inputs and targets must have the same number of samples (rows), got {listed}: "
            "pass matching arrays"
        )


def fingerprint(*parts, rows: int = 256) -> str:
    """A cheap fingerprint of data (arrays, or lists/dicts of arrays, or None): the shape and dtype
    of every array, `rows` evenly spaced rows of it and, for numbers, its sum — enough to tell
    another data set of the same size from this one without hashing it all."""
    h = hashlib.sha256()
    for i, part in enumerate(parts):
        h.update(f"|{i}".encode())
        for path, a in _leaves(part, "x"):
            a = np.asarray(a)
            pick = np.unique(np.linspace(0, len(a) - 1, num=min(len(a), rows)).round().astype(np.int64))
            sample = np.ascontiguousarray(a[pick])
            h.update(f"{path}{a.shape}{a.dtype}".encode())
            if a.dtype.kind in "biufc":
                h.update(sample.tobytes())
                h.update(repr(np.sum(a, dtype=np.complex128 if a.dtype.kind == "c" else np.float64)).encode())
            else:
                h.update(repr(sample.tolist()).encode())
    return h.hexdigest()[:16]


def take(x, idx):
    """Rows `idx` of an array, or of every array of a list/tuple/dict."""
    if x is None:
        return None
    if isinstance(x, Mapping):
        return {k: take(v, idx) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(hasattr(v, "shape") for v in x):
        return type(x)(take(v, idx) for v in x)
    return np.asarray(x)[np.asarray(idx)]


def labels_of(y) -> Optional[np.ndarray]:
    """Class labels of y for stratification, or None when y is not classification targets:
    integer/bool/str labels of shape (n,) or (n, 1), or one-hot rows (argmax)."""
    if y is None or isinstance(y, Mapping):
        return None
    if isinstance(y, (list, tuple)) and y and all(hasattr(v, "shape") for v in y):
        return None  # several outputs
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        if y.dtype.kind in "iubUSO":
            return y
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            # float labels that are whole numbers with few distinct values (e.g. 0./1.)
            if len(np.unique(y)) <= max(2, int(math.sqrt(y.size))):
                return y.astype(np.int64)
        return None
    if y.ndim == 2 and y.size and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return y.argmax(axis=1)
    return None


def subsample_indices(
    y,
    fraction: Optional[float] = None,
    classes: Union[None, int, Sequence] = None,
    *,
    seed: Optional[int] = 0,
    n: Optional[int] = None,
) -> np.ndarray:
    """Indices (sorted) of a stratified, reproducible subsample (B7).

    Args:
        y: targets (class labels or one-hot rows are stratified; other targets are sampled
            uniformly). May be None with `n` given (uniform sampling).
        fraction: in (0, 1]: the share kept, round(fraction * n) samples in all, the same share of
            each class (every class keeps at least one sample when there are as many samples
            to keep as classes).
        classes: keep only these class labels (a list), or an int k: k classes chosen at random
            (reproducibly). Labels are not renumbered: the model keeps its output size.
        seed: same seed, same indices.
    """
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (0 < fraction <= 1):
            raise ConfigError(
                f"subsample={fraction!r} is invalid: expected a fraction in (0, 1], e.g. 0.1 to tune "
                "on a tenth of the data (B7)"
            )
    labels = labels_of(y)
    if n is None:
        if y is None:
            raise ConfigError("subsample_indices needs y or n")
        n = len(np.asarray(y)) if not isinstance(y, Mapping) else n_samples(y)
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    if classes is not None:
        if labels is None:
            raise ConfigError("classes= selects a subset of classes: y must hold class labels or one-hot rows")
        present = np.unique(labels)
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            if not 1 <= classes <= len(present):
                raise ConfigError(f"classes={classes} is invalid: expected 1..{len(present)} classes to keep")
            keep = np.sort(rng.choice(present, size=int(classes), replace=False))
        else:
            keep = np.asarray(list(classes))
            if keep.size == 0:
                raise ConfigError("classes=[] is empty: list the class labels to keep")
            missing = sorted(set(keep.tolist()) - set(present.tolist()))
            if missing:
                raise ConfigError(f"classes {missing} do not occur in y (labels present: {present.tolist()})")
        idx = idx[np.isin(labels, keep)]
    if fraction is None or fraction == 1:
        return idx
    k = max(1, int(round(fraction * len(idx))))
    if labels is None:
        return np.sort(rng.choice(idx, size=k, replace=False))
    # stratified with the exact total: each class's share rounded by largest remainder (ties at
    # random), so many small classes (or integer regression targets) cannot inflate the sample
    present, inverse = np.unique(labels[idx], return_inverse=True)
    counts = np.bincount(inverse)
    alloc = _allocate(counts, k, rng)
    out = [rng.choice(idx[inverse == c], size=int(alloc[c]), replace=False) for c in range(len(present))]
    return np.sort(np.concatenate(out))


def _allocate(counts: np.ndarray, k: int, rng) -> np.ndarray:
    """How many of each class to draw, k in all, proportional to `counts`; every class gets one
    when there are at least as many draws as classes."""
    exact = counts * (k / counts.sum())
    alloc = np.minimum(np.floor(exact).astype(np.int64), counts)
    rest = k - int(alloc.sum())
    if rest > 0:
        order = np.lexsort((rng.random(len(counts)), -(exact - alloc)))
        order = [c for c in order if alloc[c] < counts[c]]
        alloc[np.asarray(order[:rest], dtype=np.int64)] += 1
    if len(counts) <= k:
        for c in np.flatnonzero(alloc == 0):  # a rare class keeps one sample, taken from the largest
            alloc[int(np.argmax(alloc))] -= 1
            alloc[c] += 1
    return alloc


def subsample(x, y, fraction=None, classes=None, *, seed=0) -> Tuple:
    """(x_sub, y_sub) — see `subsample_indices`."""
    check_cardinality(x, y)
    idx = subsample_indices(y, fraction, classes, seed=seed, n=n_samples(x))
    return take(x, idx), take(y, idx)


def validation_split(x, y, fraction: float, *, seed=0):
    """Stratified (for labels) shuffled split: ((x_train, y_train), (x_val, y_val)). Unlike
    Keras's validation_split, which takes the last rows unshuffled (B2, B4)."""
    if not (0 < fraction < 1):
        raise ConfigError(
            f"validation split {fraction!r} is invalid: pass validation_data, or set "
            "RecipeConfig.validation_split in (0, 1) (0.2 is the recipe's, B2)"
        )
    check_cardinality(x, y)
    n = n_samples(x)
    val = subsample_indices(y, fraction, seed=seed, n=n) if y is not None else subsample_indices(
        None, fraction, seed=seed, n=n)
    mask = np.zeros(n, bool)
    mask[val] = True
    tr = np.flatnonzero(~mask)
    if len(tr) == 0 or len(val) == 0:
        raise ConfigError(f"cannot split {n} samples into training and validation with fraction {fraction}")
    return (take(x, tr), take(y, tr)), (take(x, val), take(y, val))
