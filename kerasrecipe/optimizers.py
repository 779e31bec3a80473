"""Optimizer tools (tips D1, D5, D7, D8, D10): reading and setting the learning rate of any
optimizer, fused global-norm clipping, layer-wise learning rates, presets.

Everyone reads and changes the learning rate through these two functions, never through
`optimizer.learning_rate` (which is a tensor for schedules, not settable with a schedule, and
raises AttributeError on a MultiOptimizer):

    from kerasrecipe.optimizers import get_learning_rate, set_learning_rate
    lr = get_learning_rate(model.optimizer)           # float, now
    set_learning_rate(model.optimizer, lr * 0.5, model=model)
"""
from __future__ import annotations

import math
from typing import List, Optional

import keras
import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


# ---------------------------------------------------------------------------- learning rate
def _check_optimizer(optimizer):
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        hint = " (did you compile the model? model.optimizer is None before compile)" if optimizer is None else ""
        raise InputTypeError(f"expected a keras.optimizers.Optimizer, got {type(optimizer).__name__}{hint}")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def _is_multi(optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.MultiOptimizer)


def _single_lr(opt) -> float:
    lr = opt._learning_rate
    if isinstance(lr, LearningRateSchedule):
        value = lr(opt._iterations)
    elif isinstance(lr, keras.Variable):
        value = lr.value
    elif callable(lr):
        value = lr()
    else:
        value = lr
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


def get_learning_rates(optimizer) -> List[float]:
    """Current learning rate of each sub-optimizer of a MultiOptimizer (in `.optimizers` order);
    a one-element list for any other optimizer."""
    opt = _check_optimizer(optimizer)
    if _is_multi(opt):
        return [_single_lr(o) for o in opt.optimizers]
    return [_single_lr(opt)]


def get_learning_rate(optimizer) -> float:
    """The optimizer's current learning rate as a float.

    Works for a float learning rate, any LearningRateSchedule (evaluated at the optimizer's
    current iteration), a callable, a LossScaleOptimizer and a MultiOptimizer (for which it
    returns the largest rate of its sub-optimizers: the head's rate in layer-wise set-ups; see
    `get_learning_rates` for all of them).
    """
    return max(get_learning_rates(optimizer))


def _needs_retrace(opt, value) -> bool:
    """Set `opt`'s learning rate to `value`; True when a traced train step must be rebuilt."""
    from kerasrecipe.schedules import PlateauAware

    lr = opt._learning_rate
    if isinstance(lr, keras.Variable):
        lr.assign(value)
        return False
    if isinstance(lr, LearningRateSchedule) or callable(lr):
        if not isinstance(lr, PlateauAware):
            if not isinstance(lr, LearningRateSchedule):
                raise InputTypeError(
                    f"optimizer {opt.name!r} takes its learning rate from a plain callable ({lr!r}); it cannot be "
                    "changed from outside. Use a float or a keras LearningRateSchedule instead."
                )
            lr = PlateauAware(lr)
            # Bypass the optimizer's variable tracker: nothing to track, the variables stay as they are.
            object.__setattr__(opt, "_learning_rate", lr)
        base = float(np.asarray(keras.ops.convert_to_numpy(lr.base(opt._iterations))))
        if base <= 0:
            raise ConfigError(
                f"cannot set the learning rate of {opt.name!r} now: its schedule gives {base:g} at step "
                f"{int(keras.ops.convert_to_numpy(opt._iterations))}, so no multiplier reaches {value:g}."
            )
        lr.multiplier = value / base if value > 0 else 1e-30
        return True
    object.__setattr__(opt, "_learning_rate", float(value))
    return True


def set_learning_rate(optimizer, value: float, *, model=None) -> None:
    """Set the optimizer's current learning rate to `value`.

    - float learning rate: the optimizer's learning-rate variable is assigned (no retrace needed);
    - a schedule: its `PlateauAware` multiplier is set so that the rate is `value` now and the
      schedule's shape continues from there (a plain schedule is wrapped in `PlateauAware`
      the first time); traced train steps bake the multiplier in, so pass `model` (inside `fit`)
      and its train function is rebuilt on the TensorFlow and JAX backends;
    - MultiOptimizer: every sub-optimizer is scaled by the same factor, so the largest rate
      becomes `value` and the ratios between groups (layer-wise rates) are kept.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"learning rate {value!r} is invalid: expected a finite number >= 0")
    value = float(value)
    opt = _check_optimizer(optimizer)
    if _is_multi(opt):
        current = get_learning_rates(opt)
        top = max(current) if current else 0.0
        retrace = False
        for o, lr in zip(opt.optimizers, current):
            retrace |= _needs_retrace(o, value * lr / top if top > 0 else value)
    else:
        retrace = _needs_retrace(opt, value)
    if retrace and model is not None:
        refresh_train_function(model)


def scale_learning_rate(optimizer, factor: float, *, min_lr: float = 0.0, model=None) -> bool:
    """Multiply every learning rate of the optimizer by `factor`, never going below `min_lr`
    (sub-optimizers of a MultiOptimizer are floored one by one). Returns True if any changed."""
    opt = _check_optimizer(optimizer)
    subs = opt.optimizers if _is_multi(opt) else [opt]
    retrace = changed = False
    for o in subs:
        old = _single_lr(o)
        if old > np.float32(min_lr):
            retrace |= _needs_retrace(o, max(old * factor, min_lr))
            changed = True
    if retrace and model is not None:
        refresh_train_function(model)
    return changed


def refresh_train_function(model) -> None:
    """Rebuild a model's traced train function (TensorFlow, JAX) so that Python-side changes
    (a schedule's multiplier, an optimizer's hyperparameter) take effect at the next step."""
    traced = keras.backend.backend() in ("tensorflow", "jax") or bool(getattr(model, "jit_compile", False))
    if traced and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


# ---------------------------------------------------------------------------- fused clipping (D8)
class GlobalNormClipping:
    """Mixin: clip gradients by their global L2 norm through `kerasrecipe.kernels` at Keras's
    clipping hook (`_clip_gradients`), recording the pre-clip norm in `last_global_norm`.

    Not used directly: `clip_global_norm(optimizer, max_norm)` builds the class. The classes are
    made from the optimizer's *concrete* class, so on the torch backend the fused
    `torch._foreach` update path Keras swaps in for its own optimizers is kept.

    Args (added to the wrapped optimizer's own):
        max_norm: the largest allowed global norm (D8: 1, 5, 10 or 15).
        clip_eps: torch's `eps`: coef = max_norm / (norm + clip_eps), clamped to 1.
    """

    def __init__(self, *args, max_norm=1.0, clip_eps=1e-6, **kwargs):
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            if kwargs.get(k) is not None:
                raise ConfigError(
                    f"{k}={kwargs[k]!r} cannot be combined with kerasrecipe's global-norm clipping "
                    f"(max_norm={max_norm!r}): use one of them."
                )
            kwargs.pop(k, None)
        super().__init__(*args, **kwargs)
        _check_positive("max_norm", max_norm)
        if isinstance(clip_eps, bool) or not isinstance(clip_eps, (int, float)) or not (0 <= clip_eps < math.inf):
            raise ConfigError(f"clip_eps={clip_eps!r} is invalid: expected a finite number >= 0")
        self.max_norm = float(max_norm)
        self.clip_eps = float(clip_eps)
        self.last_global_norm = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", aggregation="only_first_replica", name="last_global_norm"
        )

    def _clip_gradients(self, grads):
        from kerasrecipe import kernels

        clipped, norm, _ = kernels.clip_by_global_norm(list(grads), self.max_norm, eps=self.clip_eps)
        self.last_global_norm.assign(keras.ops.cast(norm, "float32"))
        return clipped

    def get_config(self):
        config = super().get_config()
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            config.pop(k, None)
        config.update({"max_norm": self.max_norm, "clip_eps": self.clip_eps})
        return config


class _MultiGlobalNormClipping(GlobalNormClipping):
    """For a MultiOptimizer: one global norm over every group, clipped before dispatching."""

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if grads:
            grads = self._clip_gradients(grads)
        return super().apply(grads, trainable_variables)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number > 0 (D8: 1, 5, 10 or 15).")
    return float(value)


_CLIPPED = {}


def clipped_class(base: type) -> type:
    """The global-norm-clipping subclass of optimizer class `base`, made once and registered with
    Keras as `kerasrecipe>GlobalNormClipped<Name>` (so models save and load with it). Classes for
    Keras's built-in optimizers exist as soon as this module is imported; for your own optimizer
    class call this before `keras.models.load_model`."""
    if not (isinstance(base, type) and issubclass(base, keras.optimizers.Optimizer)):
        raise InputTypeError(f"clipped_class expects a keras Optimizer class, got {base!r}")
    if issubclass(base, GlobalNormClipping):
        return base
    if base in _CLIPPED:
        return _CLIPPED[base]
    name = f"GlobalNormClipped{base.__name__}"
    mixin = _MultiGlobalNormClipping if issubclass(base, keras.optimizers.MultiOptimizer) else GlobalNormClipping
    cls = type(name, (mixin, base), {"__module__": __name__, "__doc__": f"{base.__name__} with fused global-norm "
                                     "clipping (kerasrecipe.optimizers.clip_global_norm)."})
    keras.saving.register_keras_serializable(package="kerasrecipe", name=name)(cls)
    _CLIPPED[base] = cls
    return cls


def _concrete(cls):
    """The class Keras really instantiates for `cls` (on torch: its torch._foreach variant)."""
    if keras.backend.backend() == "torch":
        from keras.src.backend.torch.optimizers.torch_optimizer import TorchOptimizer

        probe = TorchOptimizer.__new__(cls)  # maps Keras's own classes to their torch variants
        return type(probe)
    return cls


for _name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion", "Ftrl",
              "Lamb", "Adafactor", "MultiOptimizer"):
    if hasattr(keras.optimizers, _name):
        clipped_class(_concrete(getattr(keras.optimizers, _name)))


def clip_global_norm(optimizer, max_norm: float, *, eps: float = 1e-6):
    """An optimizer like `optimizer` that clips gradients by global norm with the fused kernel (D8).

    The returned optimizer has the same hyperparameters (and the same learning-rate schedule
    object), clips every step through `kerasrecipe.kernels.clip_by_global_norm` (native C++/CUDA
    on eager torch/NumPy, the keras.ops reference inside traced steps), keeps the pre-clip global
    norm of the last step in `optimizer.last_global_norm` (a float32 keras Variable, saved with
    the model, read by the health monitor) and keeps Keras's fused torch update path.

    Semantics are torch's `clip_grad_norm_`: coef = max_norm / (norm + eps) clamped to 1 (Keras's
    `global_clipnorm` has no eps: weights differ by a relative ~eps/norm when clipping); a NaN/Inf
    norm propagates into the gradients (NaNGuard stops the run).

    Args:
        optimizer: a Keras optimizer instance (not yet built), or a name ("adam").
        max_norm: largest allowed global norm, > 0 (D8: 1, 5, 10 or 15).
        eps: see above.

    Example:
        opt = kr.optimizers.clip_global_norm(keras.optimizers.Adam(3e-4), 1.0)
        model.compile(opt, "sparse_categorical_crossentropy")
        model.fit(x, y); float(opt.last_global_norm)
    """
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise InputTypeError(f"clip_global_norm expects a keras optimizer, got {type(optimizer).__name__}")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise InputTypeError("clip_global_norm: wrap the inner optimizer, then the LossScaleOptimizer around it")
    _check_positive("max_norm", max_norm)
    if getattr(optimizer, "built", False):
        raise ConfigError(
            f"clip_global_norm: optimizer {optimizer.name!r} is already built (it has state); wrap it before "
            "model.compile/fit, e.g. model.compile(clip_global_norm(keras.optimizers.Adam(3e-4), 1.0), loss)."
        )
    for k in ("clipnorm", "clipvalue"):
        if getattr(optimizer, k, None) is not None:
            raise ConfigError(f"clip_global_norm: optimizer {optimizer.name!r} already has {k}="
                              f"{getattr(optimizer, k)!r}; use one kind of clipping.")
    cls = clipped_class(type(optimizer))
    config = optimizer.get_config()
    config.pop("global_clipnorm", None)
    config.update({"max_norm": float(max_norm), "clip_eps": eps})
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        config["optimizer_map"] = optimizer._optimizer_map
    else:
        lr = optimizer._learning_rate
        config["learning_rate"] = lr if (isinstance(lr, LearningRateSchedule) or callable(lr)) and not isinstance(
            lr, keras.Variable) else _single_lr(optimizer)
    new = cls(**config)
    for attr in ("_exclude_from_weight_decay", "_exclude_from_weight_decay_pattern"):
        if hasattr(optimizer, attr):
            setattr(new, attr, getattr(optimizer, attr))
    return new
