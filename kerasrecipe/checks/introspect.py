"""What the model is: its output layer and activation, its loss, the task it solves.

Used by the preflight checks and by `kerasrecipe.init.set_output_bias`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

_LOSS_KINDS = {
    "sparse_categorical_crossentropy": "sparse_cce",
    "sparsecategoricalcrossentropy": "sparse_cce",
    "categorical_crossentropy": "cce",
    "categoricalcrossentropy": "cce",
    "binary_crossentropy": "bce",
    "binarycrossentropy": "bce",
    "mse": "mse",
    "mean_squared_error": "mse",
    "meansquarederror": "mse",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "meanabsoluteerror": "mae",
    "huber": "regression",
    "huber_loss": "regression",
    "log_cosh": "regression",
    "logcosh": "regression",
    "mean_squared_logarithmic_error": "regression",
    "meansquaredlogarithmicerror": "regression",
    "msle": "regression",
    "mean_absolute_percentage_error": "regression",
    "meanabsolutepercentageerror": "regression",
    "mape": "regression",
    "hinge": "hinge",
    "squared_hinge": "hinge",
    "squaredhinge": "hinge",
    "categorical_hinge": "cce_hinge",
    "categoricalhinge": "cce_hinge",
    "binary_focal_crossentropy": "bce_focal",
    "binaryfocalcrossentropy": "bce_focal",
    "categorical_focal_crossentropy": "cce_focal",
    "categoricalfocalcrossentropy": "cce_focal",
}
PROBABILITY_LOSSES = ("sparse_cce", "cce", "bce", "bce_focal", "cce_focal")
# hinge losses: the outputs are unbounded scores (margins; labels -1/1 or 0/1), classified by sign
# (binary, per unit) or argmax (categorical_hinge)
MARGIN_LOSSES = ("hinge", "cce_hinge")
REGRESSION_LOSSES = ("mse", "mae", "regression")
SQUASHING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softmax": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0),
             "softsign": (-1.0, 1.0)}
NONNEGATIVE = ("relu", "relu6", "softplus", "exponential", "elu_pos")


# words in a loss's name that tell its task when the kinds above do not know the name
_CLASSIFICATION_WORDS = re.compile(r"crossentropy|hinge|kl_?divergence|kullback|focal|poisson_nll", re.I)
_REGRESSION_WORDS = re.compile(r"squared|absolute|huber|log_?cosh|mse|mae|mape|msle|cosine", re.I)


def loss_name_task(name) -> Optional[str]:
    """'classification' or 'regression' from a loss's name (the known kinds first, then words in
    the name: 'my_focal_crossentropy', 'weighted_mse'); None when the name does not tell. The one
    rule the recipe's run log, cross-validation and the estimators read a loss's task with."""
    if not name:
        return None
    kind = _LOSS_KINDS.get(str(name).lower())
    if kind is not None:
        return "regression" if kind in REGRESSION_LOSSES else "classification"
    if _CLASSIFICATION_WORDS.search(str(name)):
        return "classification"
    if _REGRESSION_WORDS.search(str(name)):
        return "regression"
    return None


@dataclass
class LossInfo:
    """The compiled loss: `fn(y_true, y_pred)` (per sample or reduced), its name and kind."""

    name: str
    kind: str          # sparse_cce | cce | bce | bce_focal | cce_focal | hinge | cce_hinge | mse | mae | regression | other
    from_logits: bool
    fn: Callable
    ignore_class: Optional[int] = None   # sparse categorical: the label id the loss skips

    def mean(self, y_true, y_pred) -> float:
        from keras import ops

        y_true = np.asarray(y_true)
        if self.kind != "sparse_cce" and y_true.ndim == np.ndim(y_pred) - 1 and np.shape(y_pred)[-1] == 1:
            y_true = y_true[..., None]  # what Keras's compiled loss does (squeeze_or_expand_to_same_rank)
        if np.issubdtype(y_true.dtype, np.integer) and self.kind not in ("sparse_cce",):
            y_true = y_true.astype("float32")
        return float(ops.convert_to_numpy(ops.mean(self.fn(y_true, y_pred))))


def resolve_loss(model) -> Optional[LossInfo]:
    """The model's loss as a LossInfo; None when the model is not compiled or has several losses."""
    import keras

    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    ignore_class = None
    if isinstance(loss, str):
        fn = keras.losses.get(loss)
        name = loss
        from_logits = False
    elif isinstance(loss, keras.losses.Loss):
        fn = loss
        inner = getattr(loss, "fn", None)
        name = getattr(inner, "__name__", None) or type(loss).__name__
        cfg = {}
        try:
            cfg = loss.get_config() or {}
        except Exception:
            pass
        from_logits = bool(cfg.get("from_logits", getattr(loss, "_fn_kwargs", {}).get("from_logits", False)))
        ignore_class = cfg.get("ignore_class", (getattr(loss, "_fn_kwargs", None) or {}).get("ignore_class"))
    elif callable(loss):
        fn = loss
        name = getattr(loss, "__name__", type(loss).__name__)
        from_logits = False
    else:
        return None
    kind = _LOSS_KINDS.get(str(name).lower(), _LOSS_KINDS.get(type(fn).__name__.lower(), "other"))
    ignore = ignore_class if kind == "sparse_cce" and ignore_class is not None else None
    return LossInfo(str(name), kind, from_logits, fn, None if ignore is None else int(ignore))


# ---------------------------------------------------------------------- the output layer
def _history_op(tensor):
    hist = getattr(tensor, "_keras_history", None)
    return None if hist is None else hist[0]


def output_operation(model):
    """The layer (or functional op) that produces the model's single output; None if unknown."""
    import keras

    op = None
    try:
        outs = model.outputs
    except (AttributeError, ValueError):
        outs = None
    if outs is not None and len(outs) == 1:
        op = _history_op(outs[0])
    if op is None and isinstance(model, keras.Sequential) and model.layers:
        op = model.layers[-1]
    if isinstance(op, keras.Model) and op is not model:
        inner = output_operation(op)
        return inner if inner is not None else op
    return op


def _inbound_op(model, op):
    """The operation feeding `op` (single-input ops only)."""
    import keras

    nodes = getattr(op, "_inbound_nodes", None) or []
    for node in nodes:
        ins = list(getattr(node, "input_tensors", []) or [])
        if len(ins) == 1:
            prev = _history_op(ins[0])
            if prev is not None and not isinstance(prev, keras.layers.InputLayer):
                return prev
    if isinstance(model, keras.Sequential):
        layers = model.layers
        for i, layer in enumerate(layers):
            if layer is op and i > 0:
                return layers[i - 1]
    return None


_PASS_THROUGH = ("Activation", "Softmax", "Dropout", "Flatten", "Reshape", "Identity", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "ReLU", "LeakyReLU", "ELU")


def activation_name(op) -> Optional[str]:
    """The activation an op applies to its output ("linear" when none); None when unknown."""
    import keras

    if op is None:
        return None
    cls = type(op).__name__
    if cls == "Softmax":
        return "softmax"
    if cls in ("ReLU",):
        return "relu"
    if cls in ("Dropout", "Flatten", "Reshape", "Identity", "GaussianNoise", "GaussianDropout", "AlphaDropout"):
        return "linear"
    act = getattr(op, "activation", None)
    if act is not None:
        name = getattr(act, "__name__", None)
        if name is None:
            try:
                name = keras.activations.serialize(act)
                name = name if isinstance(name, str) else name.get("config", {}).get("name")
            except Exception:
                name = None
        return name
    if not isinstance(op, keras.layers.Layer):  # a functional op: keras.ops.softmax / sigmoid ...
        name = getattr(op, "name", "") or ""
        base = name.rstrip("0123456789_")
        if base in ("softmax", "sigmoid", "tanh", "relu", "log_softmax", "softplus", "exp"):
            return base
    return None


def output_activation(model) -> Optional[str]:
    """The activation of the model's output, looking through Dropout/Reshape-like layers."""
    op = output_operation(model)
    seen = 0
    while op is not None and seen < 8:
        name = activation_name(op)
        if name not in (None, "linear") or type(op).__name__ not in _PASS_THROUGH:
            return name
        prev = _inbound_op(model, op)
        if prev is None:
            return name
        op, seen = prev, seen + 1
    return None


def output_dense(model):
    """The Dense (or EinsumDense) layer whose bias sets the model's output, or None.

    Looks through a trailing Activation/Softmax/Dropout/Reshape layer to the Dense layer before it.
    """
    import keras

    op = output_operation(model)
    seen = 0
    while op is not None and seen < 8:
        if isinstance(op, (keras.layers.Dense, keras.layers.EinsumDense)):
            return op
        if type(op).__name__ not in _PASS_THROUGH and not (
            not isinstance(op, keras.layers.Layer) and activation_name(op) is not None
        ):
            return None
        op, seen = _inbound_op(model, op), seen + 1
    return None


def output_units(model, pred: Optional[np.ndarray] = None) -> Optional[int]:
    try:
        outs = model.outputs
        if outs is not None and len(outs) == 1 and outs[0].shape[-1] is not None and len(outs[0].shape) > 1:
            return int(outs[0].shape[-1])
    except (AttributeError, ValueError):
        pass
    if pred is not None and np.ndim(pred) > 1:
        return int(np.shape(pred)[-1])
    if pred is not None:
        return 1
    return None


def guess_activation_from_predictions(pred: np.ndarray) -> Optional[str]:
    """For models whose output layer cannot be inspected (subclassed): what the outputs look like."""
    p = np.asarray(pred, dtype="float64")
    if p.size == 0 or not np.all(np.isfinite(p)):
        return None
    if p.min() >= 0 and p.max() <= 1:
        if p.ndim > 1 and p.shape[-1] > 1 and np.allclose(p.sum(-1), 1, atol=1e-3):
            return "softmax"
        return "sigmoid"
    return "linear"


# ---------------------------------------------------------------------- the task
@dataclass
class Task:
    """What the model is trained to do, from its output, loss and targets."""

    kind: str                  # "multiclass" | "binary" | "multilabel" | "regression" | "unknown"
    num_classes: Optional[int]
    labels: Optional[np.ndarray]   # integer class ids per sample (classification), else None
    onehot: bool = False
    ignore_class: Optional[int] = None   # the loss's ignore_class: samples with this label are not trained on

    @property
    def classification(self) -> bool:
        return self.kind in ("multiclass", "binary", "multilabel")

    @property
    def kept(self) -> Optional[np.ndarray]:
        """Mask of the samples whose label the loss uses (all but ignore_class), aligned with labels."""
        if self.labels is None:
            return None
        if self.ignore_class is None:
            return np.ones(len(self.labels), dtype=bool)
        return self.labels != self.ignore_class

    @property
    def kept_labels(self) -> Optional[np.ndarray]:
        """The class labels the loss trains on (ignore_class left out)."""
        return None if self.labels is None else self.labels[self.kept]

    @property
    def n_ignored(self) -> int:
        return 0 if self.labels is None else int(len(self.labels) - self.kept.sum())


def is_integer_valued(a: np.ndarray) -> bool:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        return True
    if not np.issubdtype(a.dtype, np.floating):
        return False
    f = a[np.isfinite(a)]
    return f.size > 0 and bool(np.all(f == np.round(f)))


def is_onehot(y: np.ndarray) -> bool:
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] < 2:
        return False
    f = y.astype("float64")
    return bool(np.all((f == 0) | (f == 1)) and np.all(f.sum(1) == 1))


def infer_task(loss: Optional[LossInfo], y: Optional[np.ndarray], units: Optional[int], activation: Optional[str]) -> Task:
    """Decide the task from the loss first, then the output activation, then the targets."""
    if y is None or not isinstance(y, np.ndarray):
        return Task("unknown", None, None)
    kind = loss.kind if loss is not None else "other"
    y2 = y.reshape(len(y), -1) if y.ndim > 1 else y
    if kind == "sparse_cce" or (kind == "other" and activation == "softmax" and y2.ndim == 1):
        onehot = is_onehot(y2)
        labels = None
        if y2.ndim == 1 or y2.shape[1] == 1:
            flat = y2.reshape(-1)
            labels = flat.astype("int64") if is_integer_valued(flat) else None
        elif onehot:
            labels = y2.argmax(1)
        return Task("multiclass", units if units and units > 1 else None, labels, onehot=onehot,
                    ignore_class=getattr(loss, "ignore_class", None))
    if kind in ("cce", "cce_focal"):
        if is_onehot(y2):
            return Task("multiclass", y2.shape[1], y2.argmax(1), onehot=True)
        if y2.ndim == 2 and y2.shape[1] > 1:  # soft labels
            return Task("multiclass", y2.shape[1], y2.argmax(1), onehot=True)
        labels = y2.reshape(-1).astype("int64") if is_integer_valued(y2) else None
        return Task("multiclass", units, labels)
    if kind in ("bce", "bce_focal"):
        if y2.ndim == 2 and y2.shape[1] > 1:
            if is_onehot(y2):
                return Task("multiclass", y2.shape[1], y2.argmax(1), onehot=True)
            return Task("multilabel", y2.shape[1], None)
        labels = y2.reshape(-1).astype("int64") if is_integer_valued(y2) else None
        return Task("binary", 2, labels)
    if kind in REGRESSION_LOSSES:
        return Task("regression", None, None)
    return Task("unknown", None, None)


# ---------------------------------------------------------------------- integer inputs
# Layers that read integer inputs as ids (tokens, categories), not as numbers.
ID_LAYERS = ("CategoryEncoding", "IntegerLookup", "Hashing", "HashedCrossing")


def id_layer_name(layer) -> Optional[str]:
    """The class name when `layer` reads ids (an Embedding of any kind, a lookup/encoding), else None."""
    name = type(layer).__name__
    return name if (name.endswith("Embedding") or name in ID_LAYERS) else None


def all_layers(layer, *, include_self: bool = False) -> list:
    """Every layer inside `layer`, depth first in order, each once: a model's `.layers` and,
    recursively, theirs, including the sublayers a custom layer holds as attributes (Keras tracks
    them in `_layers`: the BatchNormalization inside a ConvBNReLU). The one enumeration the
    toolkit uses (checks, freezing, SWA)."""
    out, seen = ([layer], {id(layer)}) if include_self else ([], {id(layer)})

    def visit(parent):
        subs = getattr(parent, "layers", None)
        if subs is None:
            subs = getattr(parent, "_layers", None) or []
        for sub in subs:
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            out.append(sub)
            visit(sub)

    visit(layer)
    return out


def _first_id_layer(layers) -> Optional[str]:
    for layer in layers:
        name = id_layer_name(layer)
        if name is not None:
            return name
    return None


def id_consumers(model, n_inputs: int) -> list:
    """For each of the model's `n_inputs` inputs (in `model.inputs` order): the class name of the
    first id-reading layer (Embedding, IntegerLookup, CategoryEncoding, Hashing) that input reaches,
    or None when it reaches none (its integers are numbers: counts, codes, pixel values).

    A functional model is followed from each input through its graph; a model whose graph cannot be
    followed (subclassed) or with one input counts every input as reaching the id layers it has."""
    everything = _first_id_layer(all_layers(model))
    if everything is None:
        return [None] * n_inputs
    if n_inputs == 1:
        return [everything]
    try:
        inputs = list(model.inputs)
        ops = list(model.operations)
    except (AttributeError, ValueError, TypeError):
        return [everything] * n_inputs
    if len(inputs) != n_inputs:
        return [everything] * n_inputs
    out = []
    for tensor in inputs:
        reached, found = {id(tensor)}, None
        for op in ops:
            for node in getattr(op, "_inbound_nodes", None) or []:
                if not any(id(t) in reached for t in node.input_tensors):
                    continue
                reached.update(id(t) for t in node.output_tensors)
                found = found or id_layer_name(op) or _first_id_layer(all_layers(op))
        out.append(found)
    return out
