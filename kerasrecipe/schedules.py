"""Learning-rate schedules (tips D3, D4, D9), as `keras.optimizers.schedules.LearningRateSchedule`
subclasses: serializable (`get_config`/`from_config`, registered with Keras so they survive
`model.save` / `keras.models.load_model`) and usable inside traced train steps (keras.ops only).

    import kerasrecipe as kr
    sched = kr.schedules.PlateauAware(kr.schedules.Warmup(keras.optimizers.schedules.CosineDecay(
        1e-3, decay_steps=1000), warmup_steps=100))
    model.compile(keras.optimizers.Adam(sched), "sparse_categorical_crossentropy")
    model.fit(x, y, callbacks=[kr.callbacks.ReduceLROnPlateauAny()])

Keras already has CosineDecay (with warm-up), CosineDecayRestarts and PiecewiseConstantDecay: they
are used, not rewritten (`from_config` builds them).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import keras
from keras import ops

from kerasrecipe.errors import ConfigError, InputTypeError

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.saving.register_keras_serializable(package="kerasrecipe")


# ---------------------------------------------------------------------------- helpers
def _check_lr(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
        value < 0 if allow_zero else value <= 0
    ):
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number {'>= 0' if allow_zero else '> 0'}.")
    return float(value)


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer >= {minimum}.")
    return int(value)


def _as_schedule_or_float(name, value):
    if isinstance(value, LearningRateSchedule):
        return value
    if callable(value):
        raise InputTypeError(
            f"{name} must be a float or a keras LearningRateSchedule (serializable), got the callable {value!r}; "
            "wrap it in a LearningRateSchedule subclass."
        )
    return _check_lr(name, value)


def _serialize(value):
    if isinstance(value, LearningRateSchedule):
        return keras.saving.serialize_keras_object(value)
    return float(value)


def _deserialize(value):
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


def _value_at(schedule_or_float, step):
    """The base's learning rate at `step` as a float32 tensor (traceable)."""
    if isinstance(schedule_or_float, LearningRateSchedule):
        return ops.cast(schedule_or_float(step), "float32")
    return ops.convert_to_tensor(schedule_or_float, dtype="float32")


def _step(step):
    return ops.cast(step, "float32")


def peak_of(schedule, total_steps: int) -> float:
    """Largest learning rate the schedule reaches in [0, total_steps] (evaluated, not assumed)."""
    lrs = values(schedule, total_steps + 1)
    return max(lrs) if lrs else 0.0


def values(schedule, steps: int) -> list:
    """The schedule's learning rate at steps 0..steps-1, as Python floats (eager)."""
    if not isinstance(schedule, LearningRateSchedule):
        return [float(schedule)] * int(steps)
    import numpy as np

    s = ops.arange(int(steps), dtype="float32")
    try:  # most schedules are elementwise in `step`: one vectorised call
        out = np.asarray(ops.convert_to_numpy(schedule(s)), dtype="float64").reshape(-1)
        if out.shape[0] == int(steps):
            return [float(v) for v in out]
    except Exception:  # noqa: BLE001 - schedules that only take scalars: step by step below
        pass
    return [float(ops.convert_to_numpy(schedule(ops.convert_to_tensor(i, dtype="int32")))) for i in range(int(steps))]


# ---------------------------------------------------------------------------- PlateauAware
@_register
class PlateauAware(LearningRateSchedule):
    """Any schedule (or a constant) times a multiplier that a callback can change (tip D3).

    `kerasrecipe.callbacks.ReduceLROnPlateauAny` halves the learning rate by multiplying
    `multiplier`, so plateau halving works with a constant LR and with any schedule (Keras's own
    ReduceLROnPlateau raises TypeError when the optimizer holds a schedule).

    Args:
        schedule: the base: a float (constant learning rate) or a `LearningRateSchedule`.
        multiplier: float > 0 applied to the base (1.0 at the start; saved in the config, so a
            reloaded model continues at the reduced rate).

    The multiplier is a Python float: traced train steps (JAX jit, tf.function) bake it in, so
    after changing it inside `fit` call `model.make_train_function(force=True)`;
    `kerasrecipe.optimizers.set_learning_rate(opt, lr, model=model)` and the callback do that.

    Example:
        sched = PlateauAware(keras.optimizers.schedules.CosineDecay(1e-3, 1000))
        opt = keras.optimizers.Adam(sched)
        sched.multiplier *= 0.5      # halve from now on
    """

    def __init__(self, schedule: Union[float, LearningRateSchedule] = 1e-3, multiplier: float = 1.0):
        self.schedule = _as_schedule_or_float("schedule", schedule)
        self.multiplier = _check_lr("multiplier", multiplier)

    def base(self, step):
        """The wrapped schedule's value at `step` (without the multiplier)."""
        return _value_at(self.schedule, step)

    def __call__(self, step):
        return self.base(step) * ops.convert_to_tensor(self.multiplier, dtype="float32")

    def get_config(self):
        return {"schedule": _serialize(self.schedule), "multiplier": float(self.multiplier)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)
