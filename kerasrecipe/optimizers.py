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
