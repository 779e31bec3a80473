"""What every check can read: the model, the sampled data, the loss, the task and the budget."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from kerasrecipe.checks import introspect
from kerasrecipe.checks.introspect import all_layers  # noqa: F401 - checks.model/training import it from here
from kerasrecipe.checks.sample import Sample, leaves, take, tree_map


class Budget:
    """Time accounting for the checks that train.

    The data and model checks are cheap arithmetic bounded by the sample size: they always run and
    do not draw on the budget. The budget clock starts with the first training check (`begin`);
    each training check gets a deadline: a share of what is left, so time a fast check leaves over
    goes to the next one.
    """

    def __init__(self, seconds: Optional[float], reserve: float = 0.03):
        self.seconds = None if seconds is None else float(seconds)
        self.start: Optional[float] = None
        self.reserve = 0.0 if seconds is None else reserve * float(seconds)

    def begin(self) -> None:
        """Start the clock (idempotent): called when the first training check starts."""
        if self.start is None:
            self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds used of the budget (0 until `begin`)."""
        return 0.0 if self.start is None else time.perf_counter() - self.start

    def remaining(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - self.elapsed() - self.reserve

    def deadline(self, share: float = 1.0) -> float:
        """Absolute perf_counter() time by which a check given `share` of what is left must stop."""
        rem = self.remaining()
        if rem == float("inf"):
            return float("inf")
        return time.perf_counter() + max(0.0, rem) * share


class Context:
    """Shared, lazily computed state of one preflight run."""

    def __init__(self, model, train: Sample, val: Optional[Sample], budget: Budget, options: dict):
        self.model = model
        self.train = train
        self.val = val
        self.budget = budget
        self.options = options
        self.seed = options.get("seed", 0)
        self.loss = introspect.resolve_loss(model)
        self.compiled = getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None
        self._pred0 = None
        self._probe_idx = None
        self._activation = None
        self._id_inputs = None

    # ------------------------------------------------------------------ data views
    @property
    def y(self):
        return self.train.y

    @property
    def single_output_y(self) -> Optional[np.ndarray]:
        y = self.train.y
        return y if isinstance(y, np.ndarray) else None

    @property
    def single_input(self) -> Optional[np.ndarray]:
        lv = leaves(self.train.x)
        return lv[0][1] if len(lv) == 1 else None

    def input_leaves(self, sample: Optional[Sample] = None):
        return leaves((sample or self.train).x)

    @property
    def id_inputs(self) -> dict:
        """The integer inputs the model reads as ids (token ids into an Embedding, categories into a
        lookup/encoding layer): {leaf name: that layer's class name}. Every other input, integer
        or not, is numeric features (counts, codes, raw pixel values): scale, constant columns,
        shift and batch independence apply to it."""
        if self._id_inputs is None:
            lv = leaves(self.train.x)
            consumers = introspect.id_consumers(self.model, len(lv))
            x = self.train.x
            if isinstance(x, dict) and len(lv) == len(x) > 1:
                try:
                    names = [getattr(t, "name", None) for t in self.model.inputs]
                except (AttributeError, ValueError, TypeError):
                    names = []
                if len(names) == len(consumers) and set(x) <= set(names):
                    by_name = dict(zip(names, consumers))
                    consumers = [by_name[k] for k in x]
            self._id_inputs = {name: c for (name, a), c in zip(lv, consumers)
                               if c is not None and np.issubdtype(np.asarray(a).dtype, np.integer)}
        return self._id_inputs

    # ------------------------------------------------------------------ model views
    @property
    def probe_idx(self) -> np.ndarray:
        """Up to 512 rows of the training sample used for forward passes."""
        if self._probe_idx is None:
            n = self.train.n
            k = min(n, int(self.options.get("probe_samples", 512)))
            rng = np.random.default_rng(self.seed)
            self._probe_idx = np.sort(rng.choice(n, k, replace=False)) if k < n else np.arange(n)
        return self._probe_idx

    @property
    def pred0(self):
        """The model's predictions at its current weights on the probe rows (inference mode)."""
        if self._pred0 is None:
            self._pred0 = predict(self.model, take(self.train.x, self.probe_idx))
        return self._pred0

    @property
    def y_probe(self):
        return None if self.train.y is None else take(self.train.y, self.probe_idx)

    @property
    def single_output(self) -> bool:
        try:
            outs = self.model.outputs
            if outs is not None:
                return len(outs) == 1
        except (AttributeError, ValueError):
            pass
        return isinstance(self.pred0, np.ndarray)

    @property
    def activation(self) -> Optional[str]:
        if self._activation is None:
            act = introspect.output_activation(self.model)
            if act is None and self.single_output and isinstance(self.pred0, np.ndarray):
                act = introspect.guess_activation_from_predictions(self.pred0)
                self._activation_guessed = True
            self._activation = act or "unknown"
        return None if self._activation == "unknown" else self._activation

    @property
    def activation_guessed(self) -> bool:
        _ = self.activation
        return getattr(self, "_activation_guessed", False)

    @property
    def units(self) -> Optional[int]:
        u = introspect.output_units(self.model)
        if u is None and isinstance(self.pred0, np.ndarray):
            u = introspect.output_units(self.model, self.pred0)
        return u

    @property
    def task(self) -> introspect.Task:
        return introspect.infer_task(self.loss, self.single_output_y, self.units, self.activation)

    def has_layer(self, *class_names) -> bool:
        return any(type(layer).__name__ in class_names for layer in all_layers(self.model))




def predict(model, x, batch_size: int = 256):
    """model(x, training=False) in chunks, as NumPy (a list for multi-output models).

    Every chunk has the same shape (the last one is padded, then cut): on JAX each new input
    shape costs compilations, so all forward passes of a preflight share one shape.
    """
    from kerasrecipe.checks.sample import n_rows, to_numpy_tree

    n = n_rows(x)
    parts = []
    for s in range(0, n, batch_size):
        k = min(batch_size, n - s)
        idx = np.arange(s, s + batch_size) if k == batch_size else np.concatenate(
            [np.arange(s, n), np.full(batch_size - k, s)])
        out = to_numpy_tree(model(take(x, idx), training=False))
        parts.append(tree_map(lambda a, k=k: a[:k], out))
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([p[i] for p in parts]) for i in range(len(first))]
    return np.concatenate(parts)


def zeros_like_tree(x):
    return tree_map(lambda a: np.zeros_like(a), x)
