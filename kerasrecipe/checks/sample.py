"""Read a bounded sample of the data, whatever form it comes in, as NumPy arrays.

Arrays (NumPy, lists, backend tensors, lists/dicts of them for multi-input models), `tf.data`
datasets (TF backend), `keras.utils.PyDataset` and other iterables of batches are accepted.
At most `max_samples` rows are read: datasets are read batch by batch until the limit
(a PyDataset is read at batches spread over its length), so a huge pipeline costs seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError


# ---------------------------------------------------------------------- tree helpers
def tree_map(fn, x):
    if isinstance(x, dict):
        return {k: tree_map(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(tree_map(fn, v) for v in x)
    return fn(x)


def leaves(x, prefix="x"):
    """[(name, array)] for every array in a (nested) structure."""
    if isinstance(x, dict):
        return [item for k, v in x.items() for item in leaves(v, f"{prefix}[{k!r}]")]
    if isinstance(x, (list, tuple)):
        if len(x) == 1:
            return leaves(x[0], prefix)
        return [item for i, v in enumerate(x) for item in leaves(v, f"{prefix}[{i}]")]
    return [(prefix, x)]


def n_rows(x) -> int:
    lv = leaves(x)
    if not lv:
        raise ConfigError("empty input structure: expected an array or a list/dict of arrays")
    return int(np.shape(lv[0][1])[0])


def take(x, idx):
    return tree_map(lambda a: a[idx], x)


def _to_numpy(a):
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "numpy") and not hasattr(a, "detach"):  # tf tensors
        try:
            return np.asarray(a.numpy())
        except Exception:
            pass
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(a))
    except Exception:
        return np.asarray(a)


def to_numpy_tree(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)) and x and all(np.isscalar(v) for v in x):
        return np.asarray(x)
    return tree_map(_to_numpy, x)


def _concat(parts):
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


# ---------------------------------------------------------------------- the sample
@dataclass
class Sample:
    """A bounded sample of (x, y[, sample_weight]) as NumPy arrays.

    `n_total` is the size of the whole data when it is known (None otherwise);
    `bounded` says whether only part of the data was read.
    """

    x: Any
    y: Any = None
    sample_weight: Any = None
    source: str = "arrays"
    n_total: Optional[int] = None
    bounded: bool = False
    batch_size: Optional[int] = None
    notes: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return n_rows(self.x)

    def subset(self, idx) -> "Sample":
        return Sample(take(self.x, idx), None if self.y is None else take(self.y, idx),
                      None if self.sample_weight is None else take(self.sample_weight, idx),
                      self.source, self.n_total, self.bounded, self.batch_size, list(self.notes))

    def describe(self) -> dict:
        return {"source": self.source, "samples_read": self.n, "n_total": self.n_total,
                "bounded": self.bounded, "batch_size": self.batch_size, "notes": list(self.notes)}


def _split_element(el):
    """A batch from a dataset -> (x, y, w)."""
    if isinstance(el, tuple):
        if len(el) == 1:
            return el[0], None, None
        if len(el) == 2:
            return el[0], el[1], None
        if len(el) == 3:
            return el
        raise ConfigError(f"a data batch must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple of {len(el)}")
    return el, None, None


def _is_tf_dataset(x) -> bool:
    mod = type(x).__module__ or ""
    return "tensorflow" in mod and hasattr(x, "element_spec") and hasattr(x, "take")


def _is_pydataset(x) -> bool:
    try:
        import keras

        return isinstance(x, keras.utils.PyDataset)
    except Exception:  # pragma: no cover
        return False


def _from_batches(batches, max_samples):
    xs, ys, ws, got, bs = [], [], [], 0, None
    for el in batches:
        bx, by, bw = _split_element(el)
        bx, by, bw = to_numpy_tree(bx), to_numpy_tree(by), to_numpy_tree(bw)
        k = n_rows(bx)
        bs = bs or k
        xs.append(bx)
        ys.append(by)
        ws.append(bw)
        got += k
        if got >= max_samples:
            break
    if not xs:
        raise ConfigError("the dataset yielded no batches: preflight needs at least one batch of data")
    y = None if any(v is None for v in ys) else _concat(ys)
    w = None if any(v is None for v in ws) else _concat(ws)
    x = _concat(xs)
    if got > max_samples:
        x, y, w = take(x, slice(0, max_samples)), None if y is None else take(y, slice(0, max_samples)), \
            None if w is None else take(w, slice(0, max_samples))
    return x, y, w, bs


def gather(x, y=None, sample_weight=None, *, max_samples=10000, seed=0, what="training data") -> Sample:
    """Read a bounded sample of the data as NumPy arrays (see module docstring)."""
    if x is None:
        raise ConfigError(f"{what}: x is None; pass arrays, a tf.data.Dataset or a keras.utils.PyDataset")
    if _is_tf_dataset(x):
        if y is not None:
            raise ConfigError(f"{what}: y must be None when x is a tf.data.Dataset (the dataset yields (x, y))")
        card = None
        try:
            c = int(x.cardinality().numpy())
            card = c if c >= 0 else None
        except Exception:
            pass
        bx, by, bw, bs = _from_batches(x.as_numpy_iterator(), max_samples)
        n_total = card * bs if (card is not None and bs) else None
        s = Sample(bx, by, bw, "tf.data", n_total, n_total is None or n_rows(bx) < n_total, bs)
        if n_total is not None:
            s.notes.append("n_total estimated as cardinality x first batch size")
        return s
    if _is_pydataset(x):
        if y is not None:
            raise ConfigError(f"{what}: y must be None when x is a keras.utils.PyDataset (it yields (x, y))")
        nb = x.num_batches
        if nb is None:
            bx, by, bw, bs = _from_batches(iter(x[i] for i in range(10 ** 9)), max_samples)
            return Sample(bx, by, bw, "PyDataset", None, True, bs)
        first = _split_element(x[0])
        bs = max(1, n_rows(to_numpy_tree(first[0])))
        want = max(1, min(nb, -(-max_samples // bs)))
        idx = np.unique(np.linspace(0, nb - 1, want).round().astype(int))
        bx, by, bw, bs = _from_batches((x[int(i)] for i in idx), max_samples)
        s = Sample(bx, by, bw, "PyDataset", nb * bs, len(idx) < nb, bs)
        s.notes.append(f"read {len(idx)} of {nb} batches, spread over the dataset")
        return s
    if isinstance(x, (np.ndarray, list, tuple, dict)) or hasattr(x, "shape"):
        x = to_numpy_tree(x)
        y = to_numpy_tree(y)
        sample_weight = to_numpy_tree(sample_weight)
        n = n_rows(x)
        for name, a in leaves(x) + ([] if y is None else leaves(y, "y")):
            if np.shape(a)[0] != n:
                raise ConfigError(f"{what}: {name} has {np.shape(a)[0]} rows but x has {n}; inputs and targets "
                                  "must have the same number of samples")
        if n == 0:
            raise ConfigError(f"{what}: no samples (0 rows)")
        s = Sample(x, y, sample_weight, "arrays", n, False)
        if n > max_samples:
            idx = np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
            s = s.subset(idx)
            s.n_total, s.bounded = n, True
            s.notes.append(f"random sample of {max_samples} of {n} rows")
        return s
    if hasattr(x, "__iter__") or hasattr(x, "__next__"):
        if y is not None:
            raise ConfigError(f"{what}: y must be None when x is an iterable of batches")
        bx, by, bw, bs = _from_batches(iter(x), max_samples)
        s = Sample(bx, by, bw, "iterable", None, True, bs)
        s.notes.append("read from an iterator: the batches read were consumed")
        return s
    raise InputTypeError(f"{what}: cannot read data of type {type(x).__name__}; expected NumPy arrays, "
                         "a tf.data.Dataset, a keras.utils.PyDataset or an iterable of (x, y) batches")


def gather_validation(validation_data, *, max_samples=10000, seed=0) -> Optional[Sample]:
    if validation_data is None:
        return None
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (2, 3):
            raise ConfigError("validation_data must be (x_val, y_val), (x_val, y_val, sample_weight), "
                              f"a tf.data.Dataset or a PyDataset; got a tuple of {len(validation_data)}")
        return gather(*validation_data, max_samples=max_samples, seed=seed, what="validation_data")
    return gather(validation_data, max_samples=max_samples, seed=seed, what="validation_data")
