"""Output-layer initialisation (tip C2): start the model at the prior, not at a random guess.

`set_output_bias(model, y)` sets the bias of the final Dense layer so the untrained model
predicts the class priors (softmax: log priors; sigmoid: the prior's logit) or the target mean
(regression). The loss then starts at the prior's entropy / the target's variance (C1), and the
first iterations are not spent learning the bias (Karpathy's "hockey stick" loss).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from kerasrecipe.errors import ConfigError

KINDS = ("softmax", "sigmoid", "regression")
_EPS = 1e-6


def infer_bias_kind(model) -> str:
    """'softmax', 'sigmoid' or 'regression', from the output activation and the compiled loss."""
    from kerasrecipe.checks.introspect import output_activation, resolve_loss

    act = output_activation(model)
    if act in ("softmax", "sigmoid"):
        return act
    loss = resolve_loss(model)
    if loss is not None:
        if loss.kind in ("sparse_cce", "cce", "cce_focal") and loss.from_logits:
            return "softmax"
        if loss.kind in ("bce", "bce_focal") and loss.from_logits:
            return "sigmoid"
        if loss.kind in ("mse", "mae", "regression"):
            return "regression"
    if act in (None, "linear") and loss is None:
        raise ConfigError("cannot infer the kind of output: compile the model first or pass "
                          f"kind= one of {KINDS}")
    raise ConfigError(f"cannot infer the output kind from activation {act!r} and loss "
                      f"{getattr(loss, 'name', None)!r}; pass kind= one of {KINDS}")


def output_bias_values(y, kind: str, units: int) -> np.ndarray:
    """The bias vector for `kind` and targets `y` (see module docstring)."""
    y = np.asarray(y)
    if y.size == 0:
        raise ConfigError("y is empty: set_output_bias needs the training targets")
    if kind == "softmax":
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot / probabilities
            if y.shape[1] != units:
                raise ConfigError(f"y has {y.shape[1]} columns but the output layer has {units} units")
            counts = y.astype("float64").sum(0)
        else:
            labels = y.reshape(-1)
            if not np.all(labels == np.round(labels)) or labels.min() < 0:
                raise ConfigError("softmax output: y must be integer class ids 0..C-1 or one-hot rows")
            labels = labels.astype("int64")
            if labels.max() >= units:
                raise ConfigError(f"labels go up to {labels.max()} but the output layer has {units} units")
            counts = np.bincount(labels, minlength=units).astype("float64")
        p = np.clip(counts / counts.sum(), _EPS, None)
        p = p / p.sum()
        return np.log(p)
    if kind == "sigmoid":
        yf = y.reshape(len(y), -1).astype("float64")
        if yf.min() < 0 or yf.max() > 1:
            raise ConfigError(f"sigmoid output: y must be in [0, 1], got [{yf.min():.4g}, {yf.max():.4g}]")
        p = np.clip(yf.mean(0), _EPS, 1 - _EPS)
        if p.size == 1 and units > 1:
            p = np.repeat(p, units)
        if p.size != units:
            raise ConfigError(f"y has {p.size} label columns but the output layer has {units} units")
        return np.log(p / (1 - p))
    if kind == "regression":
        yf = y.reshape(len(y), -1).astype("float64")
        m = yf.mean(0)
        if m.size == 1 and units > 1:
            m = np.repeat(m, units)
        if m.size != units:
            raise ConfigError(f"y has {m.size} target columns but the output layer has {units} units")
        return m
    raise ConfigError(f"kind must be None (inferred) or one of {KINDS}, got {kind!r}")


def set_output_bias(model, y, *, kind: Optional[str] = None) -> np.ndarray:
    """Set the final Dense layer's bias to the prior of the targets (C2).

    Args:
        model: a built Keras model whose output comes from a Dense layer (optionally followed by
            an Activation/Softmax layer).
        y: training targets: class ids or one-hot rows (softmax), 0/1 labels (sigmoid), values
            (regression).
        kind: "softmax" (bias = log class priors), "sigmoid" (bias = log(p / (1 - p))) or
            "regression" (bias = mean of y; needs a linear output). None: inferred from the output
            activation and the compiled loss.

    Returns:
        The bias values set (NumPy array).

    Example:
        >>> model.compile("adam", "binary_crossentropy")
        >>> kr.init.set_output_bias(model, y_train)   # 1:10 imbalance -> p = 0.09 at init
    """
    from kerasrecipe.checks.introspect import output_activation, output_dense

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind must be None (inferred) or one of {KINDS}, got {kind!r}")
    layer = output_dense(model)
    if layer is None:
        raise ConfigError("set_output_bias needs a model whose output comes from a Dense layer (optionally "
                          "followed by an Activation/Softmax layer); this model's output layer is "
                          f"{_describe_output(model)}. Set the bias of your output layer yourself, or add a "
                          "final Dense layer.")
    if not getattr(layer, "built", False):
        raise ConfigError(f"the output layer {layer.name!r} is not built: build the model first "
                          "(give it a keras.Input, or call it on a batch)")
    if not getattr(layer, "use_bias", True) or getattr(layer, "bias", None) is None:
        raise ConfigError(f"the output layer {layer.name!r} has no bias (use_bias=False): nothing to set")
    kind = kind or infer_bias_kind(model)
    if kind == "regression":
        act = output_activation(model)
        if act not in (None, "linear"):
            raise ConfigError(f"kind='regression' sets the bias to the target mean, which is the output only "
                              f"for a linear output; this output applies {act!r}")
    units = int(np.prod(layer.bias.shape))
    if kind == "softmax":  # labels the loss ignores (SparseCategoricalCrossentropy(ignore_class=-1)) are no class
        from kerasrecipe.checks.introspect import resolve_loss

        ignore = getattr(resolve_loss(model), "ignore_class", None)
        y = np.asarray(y)
        if ignore is not None and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            y = y.reshape(-1)[y.reshape(-1) != ignore]
    values = output_bias_values(y, kind, units).reshape(tuple(layer.bias.shape))
    layer.bias.assign(values.astype(layer.bias.dtype))
    return values


def _describe_output(model) -> str:
    from kerasrecipe.checks.introspect import output_operation

    op = output_operation(model)
    return "unknown (not a functional/Sequential model)" if op is None else f"{op.name!r} ({type(op).__name__})"
