"""OneCycleMomentum: apply a one-cycle momentum / beta_1 schedule to the optimizer (tips D3, D5)."""
from __future__ import annotations

import keras

from kerasrecipe.errors import ConfigError, InputTypeError


def _momentum_attr(opt):
    if hasattr(opt, "beta_1"):
        return "beta_1"
    if hasattr(opt, "momentum") and not isinstance(getattr(opt, "momentum"), bool):
        return "momentum"
    return None


class OneCycleMomentum(keras.callbacks.Callback):
    """Set the optimizer's momentum (SGD) or beta_1 (Adam family) from `schedule.momentum(step)`.

    With `kerasrecipe.schedules.OneCycle` the momentum falls while the learning rate rises and
    rises while it anneals (Smith & Topin). Keras optimizers read momentum/beta_1 as Python
    floats, which traced train steps (TensorFlow, JAX) bake in; so:

    - update="batch": set before every batch (exact; use on torch, or with run_eagerly=True);
    - update="epoch": set at the start of each epoch (value at the epoch's first step) and the
      traced train step is rebuilt (TensorFlow, JAX): cheap and close for long runs;
    - update="auto" (default): "batch" when the train step is eager (torch without jit_compile,
      run_eagerly=True), else "epoch".

    For a MultiOptimizer every group is set.

    Args:
        schedule: an object with `momentum(step) -> float` (e.g. `OneCycle`).
        update: "auto", "batch" or "epoch".

    Example:
        sched = kr.schedules.OneCycle(1e-2, total_steps=epochs * steps_per_epoch)
        model.compile(keras.optimizers.SGD(sched, momentum=0.95), loss)
        model.fit(x, y, epochs=epochs, callbacks=[kr.callbacks.OneCycleMomentum(sched)])
    """

    def __init__(self, schedule, update="auto"):
        super().__init__()
        if not callable(getattr(schedule, "momentum", None)):
            raise InputTypeError("OneCycleMomentum needs a schedule with a momentum(step) method, e.g. "
                                 f"kerasrecipe.schedules.OneCycle; got {type(schedule).__name__}")
        if update not in ("auto", "batch", "epoch"):
            raise ConfigError(f"OneCycleMomentum update={update!r} is invalid: expected 'auto', 'batch' or 'epoch'")
        self.schedule = schedule
        self.update = update
        self._mode = None
        self.history = []  # (step, momentum) each time it was set

    def _optimizers(self):
        opt = self.model.optimizer
        if isinstance(opt, keras.optimizers.LossScaleOptimizer):
            opt = opt.inner_optimizer
        subs = list(opt.optimizers) if isinstance(opt, keras.optimizers.MultiOptimizer) else [opt]
        out = [(o, _momentum_attr(o)) for o in subs]
        if not any(a for _, a in out):
            raise ConfigError(f"OneCycleMomentum: optimizer {opt.name!r} has neither momentum nor beta_1")
        for o, attr in out:
            # Keras's SGD built with momentum=0 keeps no velocity: setting momentum later would
            # index buffers that do not exist (IndexError on JAX/torch, silently ignored on TF)
            if attr == "momentum" and not getattr(o, "momentum", 0):
                raise ConfigError(f"OneCycleMomentum: optimizer {o.name!r} was built with momentum=0, so it keeps "
                                  "no momentum buffers to schedule; construct it with momentum > 0, e.g. "
                                  "keras.optimizers.SGD(lr, momentum=0.9)")
        return out

    def _set(self):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        m = self.schedule.momentum(step)
        for o, attr in self._optimizers():
            if attr:
                setattr(o, attr, m)
        self.history.append((step, m))

    def on_train_begin(self, logs=None):
        self._optimizers()  # a momentum-less optimizer is refused before the first step
        mode = self.update
        if mode == "auto":
            eager = bool(getattr(self.model, "run_eagerly", False)) or (
                keras.backend.backend() == "torch" and not getattr(self.model, "jit_compile", False))
            mode = "batch" if eager else "epoch"
        self._mode = mode

    def on_epoch_begin(self, epoch, logs=None):
        if self._mode == "epoch":
            self._set()
            from kerasrecipe.optimizers import refresh_train_function

            refresh_train_function(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        if self._mode == "batch":
            self._set()
