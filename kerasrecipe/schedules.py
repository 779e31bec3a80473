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

from kerasrecipe.errors import ConfigError, InputTypeError, is_real

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.saving.register_keras_serializable(package="kerasrecipe")


# ---------------------------------------------------------------------------- helpers
def _check_lr(name, value, allow_zero=False):
    if not is_real(value) or (value < 0 if allow_zero else value <= 0):
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number {'>= 0' if allow_zero else '> 0'}.")
    return float(value)


def _check_int(name, value, minimum=1):
    if not is_real(value) or int(value) != value or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer >= {minimum}.")
    return int(value)


def _check_in(what, value, lo, hi, *, lo_open=False, hi_open=False) -> float:
    """A finite number in the interval (ConfigError naming `what` otherwise)."""
    ok = is_real(value) and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{what}={value!r} is invalid: expected a number in {interval}")
    return float(value)


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


# ---------------------------------------------------------------------------- Warmup (D9)
@_register
class Warmup(LearningRateSchedule):
    """Linear warm-up in front of any schedule (tip D9).

    lr(step) = base(step) * f(step), f rising linearly from `start_factor` at step 0 to 1 at
    `warmup_steps` (and 1 after). For cosine decay Keras's own
    `CosineDecay(..., warmup_target=, warmup_steps=)` does the same and is what `from_config`
    uses; this wrapper gives any other schedule (or a constant) a warm-up.

    Args:
        schedule: the base: a float or a LearningRateSchedule.
        warmup_steps: optimizer steps of the warm-up (> 0).
        start_factor: fraction of the base rate at step 0, in [0, 1).

    Example:
        Warmup(keras.optimizers.schedules.ExponentialDecay(1e-3, 1000, 0.5), warmup_steps=200)
    """

    def __init__(self, schedule, warmup_steps, start_factor=0.0):
        self.schedule = _as_schedule_or_float("schedule", schedule)
        self.warmup_steps = _check_int("warmup_steps", warmup_steps)
        self.start_factor = _check_in("Warmup start_factor", start_factor, 0, 1, hi_open=True)

    def __call__(self, step):
        frac = ops.minimum(_step(step) / float(self.warmup_steps), 1.0)
        factor = self.start_factor + (1.0 - self.start_factor) * frac
        return _value_at(self.schedule, step) * factor

    def get_config(self):
        return {"schedule": _serialize(self.schedule), "warmup_steps": self.warmup_steps,
                "start_factor": self.start_factor}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)


# ---------------------------------------------------------------------------- CyclicLR (D3)
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@_register
class CyclicLR(LearningRateSchedule):
    """Cyclical learning rate (Smith 2017; tip D3): the rate goes linearly from `base_lr` up to
    `max_lr` over `step_size` steps and back down, over and over.

        cycle = floor(1 + step / (2 step_size));  x = |step / step_size - 2 cycle + 1|
        lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale
        scale = 1 (triangular) | 1 / 2**(cycle - 1) (triangular2) | gamma**step (exp_range)

    Args:
        base_lr, max_lr: the bounds (0 < base_lr < max_lr; an LR range test gives max_lr).
        step_size: steps of half a cycle (Smith: 2-10 epochs' worth).
        mode: "triangular", "triangular2" or "exp_range".
        gamma: decay per step for "exp_range" (e.g. 0.99994).

    Example:
        CyclicLR(1e-4, 1e-2, step_size=4 * steps_per_epoch, mode="triangular2")
    """

    def __init__(self, base_lr, max_lr, step_size, mode="triangular", gamma=1.0):
        self.base_lr = _check_lr("base_lr", base_lr, allow_zero=True)
        self.max_lr = _check_lr("max_lr", max_lr)
        if self.max_lr <= self.base_lr:
            raise ConfigError(f"CyclicLR max_lr={max_lr!r} must be larger than base_lr={base_lr!r}")
        self.step_size = _check_int("step_size", step_size)
        if mode not in CYCLIC_MODES:
            raise ConfigError(f"CyclicLR mode={mode!r} is invalid: expected one of {CYCLIC_MODES}")
        self.mode = mode
        self.gamma = _check_in("CyclicLR gamma", gamma, 0, 1, lo_open=True)

    def __call__(self, step):
        s = _step(step)
        cycle = ops.floor(1.0 + s / (2.0 * self.step_size))
        x = ops.abs(s / float(self.step_size) - 2.0 * cycle + 1.0)
        amp = (self.max_lr - self.base_lr) * ops.maximum(0.0, 1.0 - x)
        if self.mode == "triangular2":
            amp = amp / ops.power(2.0, cycle - 1.0)
        elif self.mode == "exp_range":
            amp = amp * ops.power(self.gamma, s)
        return self.base_lr + amp

    def get_config(self):
        return {"base_lr": self.base_lr, "max_lr": self.max_lr, "step_size": self.step_size, "mode": self.mode,
                "gamma": self.gamma}


# ---------------------------------------------------------------------------- OneCycle (D3, D9)
@_register
class OneCycle(LearningRateSchedule):
    """One-cycle policy (Smith & Topin; torch's OneCycleLR, cosine annealing): warm up from
    max_lr/div_factor to `max_lr` over the first `pct_start` of the steps, then anneal to
    max_lr/(div_factor*final_div_factor) at `total_steps - 1`. Momentum (or Adam's beta_1) moves
    the opposite way, between `max_momentum` and `base_momentum`: `momentum(step)` gives it and
    the `OneCycleMomentum` callback applies it.

        up   (step <= p = pct_start*total_steps - 1): lr = cos_anneal(initial, max_lr, step / p)
        down:                                       lr = cos_anneal(max_lr, min_lr, (step-p)/(total_steps-1-p))
        cos_anneal(a, b, t) = b + (a - b) * (1 + cos(pi t)) / 2

    Args:
        max_lr: the peak (from an LR range test).
        total_steps: steps of the whole training (epochs x steps per epoch).
        pct_start: fraction of the steps spent rising (0.3).
        div_factor: initial rate = max_lr / div_factor (25).
        final_div_factor: final rate = initial / final_div_factor (1e4).
        base_momentum, max_momentum: momentum bounds (0.85, 0.95).

    Example:
        sched = OneCycle(1e-2, total_steps=epochs * steps_per_epoch)
        model.compile(keras.optimizers.SGD(sched, momentum=0.95), loss)
        model.fit(x, y, epochs=epochs, callbacks=[kr.callbacks.OneCycleMomentum(sched)])
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 base_momentum=0.85, max_momentum=0.95):
        self.max_lr = _check_lr("max_lr", max_lr)
        self.total_steps = _check_int("total_steps", total_steps, minimum=2)
        self.pct_start = _check_in("OneCycle pct_start", pct_start, 0, 1, lo_open=True, hi_open=True)
        self.div_factor = _check_lr("div_factor", div_factor)
        self.final_div_factor = _check_lr("final_div_factor", final_div_factor)
        if not (is_real(base_momentum) and is_real(max_momentum) and 0 <= base_momentum <= max_momentum < 1):
            raise ConfigError(f"OneCycle momentum bounds ({base_momentum!r}, {max_momentum!r}) are invalid: "
                              "expected 0 <= base_momentum <= max_momentum < 1")
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def min_lr(self):
        return self.initial_lr / self.final_div_factor

    def _phase(self, s, lo_hi_up, lo_hi_down):
        p = max(self.pct_start * self.total_steps - 1.0, 1.0)
        end = float(self.total_steps - 1)
        t_up = ops.clip(s / p, 0.0, 1.0)
        t_down = ops.clip((s - p) / max(end - p, 1.0), 0.0, 1.0)

        def anneal(a, b, t):
            return b + (a - b) * (1.0 + ops.cos(math.pi * t)) / 2.0

        return ops.where(s <= p, anneal(*lo_hi_up, t_up), anneal(*lo_hi_down, t_down))

    def __call__(self, step):
        return self._phase(_step(step), (self.initial_lr, self.max_lr), (self.max_lr, self.min_lr))

    def momentum(self, step) -> float:
        """Momentum (or beta_1) at `step`: max_momentum -> base_momentum while the rate rises, back after."""
        s = ops.convert_to_tensor(float(step), "float32")
        m = self._phase(s, (self.max_momentum, self.base_momentum), (self.base_momentum, self.max_momentum))
        return float(ops.convert_to_numpy(m))

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor,
                "base_momentum": self.base_momentum, "max_momentum": self.max_momentum}


# ---------------------------------------------------------------------------- MultiStep (D3)
def multistep(initial_lr: float, milestones, steps_per_epoch: int, gamma: float = 0.1):
    """Multiply the rate by `gamma` at each milestone epoch (tip D3), as Keras's own
    `PiecewiseConstantDecay` (serializable as is): the rate changes at the first step of each
    milestone epoch (0-based epochs: milestone 30 -> step 30 * steps_per_epoch).

    Example:
        multistep(0.1, milestones=[30, 60, 90], steps_per_epoch=100, gamma=0.1)
    """
    initial_lr = _check_lr("initial_lr", initial_lr)
    spe = _check_int("steps_per_epoch", steps_per_epoch)
    gamma = _check_lr("gamma", gamma)
    ms = [int(m) for m in milestones]
    if not ms or any(m <= 0 for m in ms) or ms != sorted(set(ms)):
        raise ConfigError(f"multistep milestones={list(milestones)!r} are invalid: expected increasing positive epochs")
    boundaries = [m * spe - 1 for m in ms]
    values = [initial_lr * gamma ** i for i in range(len(ms) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# ---------------------------------------------------------------------------- plot and the D4 check
def _sample_steps(total_steps, max_points=600):
    import numpy as np

    total_steps = int(total_steps)
    if total_steps <= max_points:
        return list(range(total_steps))
    return sorted(set(np.linspace(0, total_steps - 1, max_points).round().astype(int).tolist()))


def _values_at(schedule, steps):
    import numpy as np

    if not isinstance(schedule, LearningRateSchedule):
        return [float(schedule)] * len(steps)
    try:
        out = np.asarray(ops.convert_to_numpy(schedule(ops.convert_to_tensor(np.asarray(steps), dtype="int32"))),
                         dtype="float64").reshape(-1)
        if out.shape[0] == len(steps):
            return out.tolist()
    except Exception:  # noqa: BLE001 - scalar-only schedules (ops.cond inside): vectorized_map, else one by one
        pass
    if keras.backend.backend() != "torch":  # jax.vmap / tf.vectorized_map turn a cond into a select
        try:
            out = ops.vectorized_map(schedule, ops.convert_to_tensor(np.asarray(steps), dtype="int32"))
            out = np.asarray(ops.convert_to_numpy(out), dtype="float64").reshape(-1)
            if out.shape[0] == len(steps):
                return out.tolist()
        except Exception:  # noqa: BLE001
            pass
    return [float(ops.convert_to_numpy(schedule(ops.convert_to_tensor(s, dtype="int32")))) for s in steps]


def plot(schedule, steps: int, path: str, *, steps_per_epoch: Optional[int] = None, title: Optional[str] = None) -> str:
    """The schedule's learning rate over `steps` optimizer steps, as a PNG (written atomically).
    With `steps_per_epoch` the x axis is in epochs. Returns `path`."""

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from kerasrecipe.io import atomic_write_bytes, figure_png

    steps = _check_int("steps", steps)
    xs = _sample_steps(steps, 2000)
    ys = _values_at(schedule, xs)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    try:
        scale = float(steps_per_epoch) if steps_per_epoch else 1.0
        ax.plot([x / scale for x in xs], ys, lw=1.6)
        ax.set_xlabel("epoch" if steps_per_epoch else "step")
        ax.set_ylabel("learning rate")
        ax.set_title(title or type(schedule).__name__)
        ax.grid(True, alpha=0.3)
        data = figure_png(fig, dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, data)
    return path


def check_decay(schedule, total_steps: int, *, floor: float = 0.01, before: float = 0.8):
    """Tip D4: a Finding (tag "lr_decayed_too_early") when the schedule falls below `floor` (1%) of
    its peak for good (warm restarts that come back up do not count) before `before` (80%) of the
    planned `total_steps`; None when it does not.

    Evaluated on up to 600 evenly spaced steps (exact for schedules that change slowly)."""
    from kerasrecipe.diagnose.finding import Finding

    total_steps = _check_int("total_steps", total_steps)
    xs = _sample_steps(total_steps)
    ys = _values_at(schedule, xs)
    peak_i = max(range(len(ys)), key=lambda i: ys[i])
    peak = ys[peak_i]
    if not peak > 0:
        return None
    # the step from which the rate stays below floor * peak for good (warm restarts come back up)
    last_high = max(i for i in range(len(ys)) if ys[i] >= floor * peak)
    if last_high + 1 >= len(ys):
        return None
    i = last_high + 1
    step = xs[i]
    if step >= before * total_steps:
        return None
    frac = step / total_steps
    return Finding(
        rule="lr_decayed_too_early", severity="warning", tag="lr_decayed_too_early",
        symptom=(f"the learning-rate schedule ({type(schedule).__name__}) falls below {floor:.0%} of its peak "
                 f"{peak:.3g} at step {step} of {total_steps} ({frac:.0%} of training) and stays there: the rest of "
                 "training barely moves the weights"),
        evidence={"peak_lr": peak, "peak_step": xs[peak_i], "step": step, "total_steps": total_steps,
                  "fraction": frac, "lr_at_step": ys[i]},
        causes=["decay steps set for a shorter run than planned", "decay rate too strong"],
        fixes=["stretch the decay over the whole run (e.g. CosineDecay(decay_steps=total_steps))",
               "or set a floor (alpha / min_lr) and let ReduceLROnPlateau decide when to decay"],
        tips=["D4"], step=step,
    )


# ---------------------------------------------------------------------------- from a RecipeConfig
def from_config(config=None, steps_per_epoch: int = None, **overrides):
    """The learning rate (float or schedule) that a RecipeConfig names; THE one place a config
    becomes a schedule.

    config.schedule:
      constant         config.learning_rate
      plateau          PlateauAware(learning_rate): ReduceLROnPlateauAny halves it (D3)
      cosine           keras CosineDecay over the whole run to min_lr (warm-up built in)
      cosine_restarts  keras CosineDecayRestarts (SGDR), first cycle restart_epochs, x restart_mult
      onecycle         OneCycle(max_lr=learning_rate) over the whole run (pct_start from warmup_epochs)
      cyclic           CyclicLR(learning_rate/10 .. learning_rate, half cycle = 4 epochs, triangular)
      multistep        PiecewiseConstantDecay: x multistep_gamma at multistep_milestones (epochs)
    warmup_epochs > 0 adds a linear warm-up (D9) in front (Keras's own for cosine; built into onecycle).
    """
    from kerasrecipe.config import resolve_config

    config = resolve_config(config, **overrides)
    spe = _check_int("steps_per_epoch", steps_per_epoch)
    lr = config.learning_rate
    total = max(2, int(round(config.epochs * spe)))
    warm = int(round(config.warmup_epochs * spe))
    name = config.schedule
    if name == "cosine":
        alpha = min(config.min_lr / lr, 1.0)
        if warm > 0:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps=max(1, total - warm), alpha=alpha, warmup_target=lr, warmup_steps=warm)
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=alpha)
    if name == "onecycle":
        pct = min(max(warm / total, 0.05), 0.95) if warm else 0.3
        return OneCycle(lr, total_steps=total, pct_start=pct)
    if name in ("constant", "plateau"):
        base = lr
    elif name == "cosine_restarts":
        base = keras.optimizers.schedules.CosineDecayRestarts(
            lr, first_decay_steps=max(1, int(round(restart_epochs(config) * spe))), t_mul=restart_mult(config),
            m_mul=1.0, alpha=min(config.min_lr / lr, 1.0))
    elif name == "cyclic":
        base = CyclicLR(lr / 10.0, lr, step_size=4 * spe, mode="triangular")
    elif name == "multistep":
        if not config.multistep_milestones:
            raise ConfigError("schedule='multistep' needs multistep_milestones (epochs), e.g. (30, 60, 90)")
        base = multistep(lr, config.multistep_milestones, spe, config.multistep_gamma)
    else:  # pragma: no cover - RecipeConfig validates the name
        raise ConfigError(f"unknown schedule {name!r}")
    if warm > 0:
        base = Warmup(base, warm)
    if name == "plateau":
        return PlateauAware(base)
    return base


def restart_epochs(config) -> float:
    """First SGDR cycle length in epochs (config.extra['restart_epochs'], default 10)."""
    return float(config.extra.get("restart_epochs", 10))


def restart_mult(config) -> float:
    """SGDR cycle growth (config.extra['restart_mult'], default 2)."""
    return float(config.extra.get("restart_mult", 2.0))


def restart_cycle_ends(first_epochs: float, mult: float, total_epochs: int) -> list:
    """Epochs (0-based, the last epoch of each cycle) at which SGDR cycles of `first_epochs`,
    growing by `mult`, end within `total_epochs`: where snapshots are taken (I2)."""
    ends, start, length = [], 0.0, float(first_epochs)
    while start + length <= total_epochs + 1e-9:
        ends.append(int(round(start + length)) - 1)
        start += length
        length *= mult
    return ends
