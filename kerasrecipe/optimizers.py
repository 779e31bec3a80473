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

from kerasrecipe import schedules as _schedules  # noqa: F401 - registers the schedules for load_model
from kerasrecipe.checks.introspect import all_layers
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


def plateau_multipliers(optimizer) -> list:
    """Per (sub-)optimizer, the multiplier of its `PlateauAware` schedule (what LR halving has
    done to a schedule), or None where the learning rate is not such a schedule. A float learning
    rate lives in an optimizer variable instead (saved with the optimizer's state)."""
    from kerasrecipe.schedules import PlateauAware

    opt = _check_optimizer(optimizer)
    subs = opt.optimizers if _is_multi(opt) else [opt]
    return [float(o._learning_rate.multiplier) if isinstance(o._learning_rate, PlateauAware) else None for o in subs]


def set_plateau_multipliers(optimizer, multipliers, *, model=None) -> bool:
    """Put back multipliers from `plateau_multipliers` (a crash resume): a schedule is wrapped in
    `PlateauAware` as LR halving does. Returns True if any learning rate changed."""
    from kerasrecipe.schedules import PlateauAware

    opt = _check_optimizer(optimizer)
    subs = opt.optimizers if _is_multi(opt) else [opt]
    if len(multipliers) != len(subs):
        return False
    changed = False
    for o, m in zip(subs, multipliers):
        lr = o._learning_rate
        if m is None or not isinstance(lr, LearningRateSchedule):
            continue
        if isinstance(lr, PlateauAware):
            lr.multiplier = float(m)
        else:
            object.__setattr__(o, "_learning_rate", PlateauAware(lr, float(m)))
        changed = True
    if changed and model is not None:
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
        # torch backend, SGD and Adam/AdamW: the coefficient may go into the update instead of a
        # pass over the gradients (see _clip_gradients)
        self._fold = _fold_kind(type(self))
        self._pending_coef = None

    def _clip_gradients(self, grads):
        from kerasrecipe import kernels

        grads = list(grads)
        if self._fold is not None:
            # CPU torch tensors, SGD or Adam: the coefficient goes into the update step instead
            # of an in-place pass over the gradients' memory (half of clipping's cost on a CPU).
            # SGD's update is linear in the gradient: the step's learning rate is scaled. Adam's
            # moment updates take the coefficient in their foreach weights, (1 - beta_1) * c and
            # (1 - beta_2) * c^2. The norm pass only; _backend_update_step applies the coefficient.
            norm = kernels.torch_cpu_global_norm(grads)
            if norm is not None:
                from kerasrecipe.kernels._reference import clip_coef

                self._pending_coef = clip_coef(norm, self.max_norm, self.clip_eps)
                self.last_global_norm.assign(np.float32(norm))
                return grads
        clipped, norm, _ = kernels.clip_by_global_norm(grads, self.max_norm, eps=self.clip_eps)
        self.last_global_norm.assign(keras.ops.cast(norm, "float32"))
        return clipped

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        coef, self._pending_coef = self._pending_coef, None
        if coef is not None and coef != 1.0:
            if self._fold == "lr":
                learning_rate = learning_rate * coef
            else:  # "adam": the torch foreach update with the coefficient folded in
                return _adam_update_folded(self, grads, trainable_variables, learning_rate, coef)
        return super()._backend_update_step(grads, trainable_variables, learning_rate)

    def get_config(self):
        config = super().get_config()
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            config.pop(k, None)
        config.update({"max_norm": self.max_norm, "clip_eps": self.clip_eps})
        return config


def _fold_kind(cls) -> Optional[str]:
    """How `cls` (a clipped optimizer class) takes the clipping coefficient into its update on the
    torch backend: "lr" (SGD: scale the learning rate), "adam" (Keras's torch Adam/AdamW update,
    exactly that method, not a subclass's own), or None (the gradients are scaled)."""
    if keras.backend.backend() != "torch":
        return None
    if issubclass(cls, keras.optimizers.SGD):
        return "lr"
    from keras.src.backend.torch.optimizers import torch_adam

    if not issubclass(cls, torch_adam.Adam):
        return None
    impl = next((c.__dict__["_parallel_update_step"] for c in cls.__mro__ if "_parallel_update_step" in c.__dict__),
                None)
    return "adam" if impl is torch_adam.Adam.__dict__["_parallel_update_step"] else None


def _adam_update_folded(opt, grads, keras_variables, learning_rate, coef):
    """Keras's torch Adam update (keras/src/backend/torch/optimizers/torch_adam.py, checked by
    `_fold_kind` to be the method in use) for the gradients `coef * grads`, without scaling them:
    m <- b1 m + (1 - b1) c g, v <- b2 v + (1 - b2) c^2 g^2. Same arithmetic as Keras's update of
    pre-scaled gradients up to float32 rounding; tests compare it with Keras's global_clipnorm."""
    import torch
    from keras import ops

    with torch.no_grad():
        variables = [v.value for v in keras_variables]
        dtype = variables[0].dtype
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(opt.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(opt.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(opt.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m_list = [opt._momentums[opt._get_variable_index(v)].value for v in keras_variables]
        v_list = [opt._velocities[opt._get_variable_index(v)].value for v in keras_variables]
        torch._foreach_mul_(m_list, opt.beta_1)
        torch._foreach_add_(m_list, grads, alpha=(1 - opt.beta_1) * coef)
        torch._foreach_mul_(v_list, opt.beta_2)
        torch._foreach_add_(v_list, torch._foreach_mul(grads, grads), alpha=(1 - opt.beta_2) * coef * coef)
        if opt.amsgrad:
            v_hat_list = [opt._velocity_hats[opt._get_variable_index(v)].value for v in keras_variables]
            torch._foreach_maximum_(v_hat_list, v_list)
            v_list = v_hat_list
        torch._foreach_add_(
            variables,
            torch._foreach_div(torch._foreach_mul(m_list, alpha),
                               torch._foreach_add(torch._foreach_sqrt(v_list), opt.epsilon)),
            alpha=-1,
        )


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
    norm propagates into the gradients (NaNGuard stops the run). On the torch backend with CPU
    tensors, SGD (momentum and Nesterov included) and Adam/AdamW (amsgrad included) do not scale
    the gradients: SGD's update is linear in them, so the coefficient multiplies that step's
    learning rate; Adam's moments take it in their update weights ((1 - beta_1) c and
    (1 - beta_2) c^2). Same update, without a pass over the gradients' memory (weight decay, which
    does not use the gradients, is not scaled either way).

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


# ---------------------------------------------------------------------------- presets (D5, D10)
def adam(learning_rate=3e-4, **kwargs):
    """Adam at 3e-4, the safe start (tip D5). Extra kwargs go to keras.optimizers.Adam."""
    return keras.optimizers.Adam(learning_rate=_lr_arg(learning_rate), **kwargs)


def sgd(learning_rate=1e-2, momentum=0.9, nesterov=False, **kwargs):
    """SGD with momentum 0.9 (tip D5; try 0.5/0.9/0.99), Nesterov optional; tune the rate (lr_find)."""
    if not (0 <= momentum < 1):
        raise ConfigError(f"sgd momentum={momentum!r} is invalid: expected a number in [0, 1)")
    return keras.optimizers.SGD(learning_rate=_lr_arg(learning_rate), momentum=momentum, nesterov=nesterov, **kwargs)


def adamw(learning_rate=3e-4, weight_decay=1e-4, **kwargs):
    """AdamW with decoupled weight decay 1e-4, the first try (tips D5, D10)."""
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ConfigError(f"adamw weight_decay={weight_decay!r} is invalid: expected a number >= 0")
    return keras.optimizers.AdamW(learning_rate=_lr_arg(learning_rate), weight_decay=weight_decay, **kwargs)


def _lr_arg(lr):
    if isinstance(lr, LearningRateSchedule):
        return lr
    return _check_positive("learning_rate", lr)


def from_config(config=None, steps_per_epoch: Optional[int] = None, **overrides):
    """The optimizer a RecipeConfig names; THE one place a config becomes an optimizer.

    optimizer: "adam" | "adamw" | "sgd" (momentum, nesterov) | "rmsprop"; learning rate from
    `kerasrecipe.schedules.from_config(config, steps_per_epoch)` (schedules other than
    "constant" and "plateau" need `steps_per_epoch`); weight_decay (adamw: 1e-4 when the config
    says 0, D10); clipnorm -> `clip_global_norm` (D8).

    Example:
        cfg = kr.RecipeConfig(optimizer="sgd", learning_rate=0.1, schedule="cosine", clipnorm=5.0)
        model.compile(kr.optimizers.from_config(cfg, steps_per_epoch=len(x) // cfg.batch_size), loss)
    """
    from kerasrecipe import schedules
    from kerasrecipe.config import resolve_config

    config = resolve_config(config, **overrides)
    if steps_per_epoch is None:
        if config.schedule not in ("constant", "plateau") or config.warmup_epochs:
            raise ConfigError(
                f"optimizers.from_config: schedule={config.schedule!r} (warmup_epochs={config.warmup_epochs}) needs "
                "steps_per_epoch, e.g. from_config(config, steps_per_epoch=math.ceil(n_train / config.batch_size))"
            )
        steps_per_epoch = 1
    lr = schedules.from_config(config, steps_per_epoch)
    wd = config.weight_decay or None
    name = config.optimizer
    if name == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=wd)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 1e-4)
    elif name == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd)
    elif name == "rmsprop":
        opt = keras.optimizers.RMSprop(lr, weight_decay=wd)
    else:  # pragma: no cover - RecipeConfig validates
        raise ConfigError(f"unknown optimizer {name!r}")
    if config.clipnorm:
        opt = clip_global_norm(opt, config.clipnorm)
    return opt


# ---------------------------------------------------------------------------- layer-wise rates (D7)
def _clone(template, lr_factor):
    """A fresh optimizer like `template` at `lr_factor` x its rate (a schedule: PlateauAware multiplier)."""
    from kerasrecipe.schedules import PlateauAware

    config = template.get_config()
    for k in ("max_norm", "clip_eps"):
        config.pop(k, None)
    config.pop("name", None)
    lr = template._learning_rate
    if isinstance(lr, PlateauAware):
        config["learning_rate"] = PlateauAware(lr.schedule, lr.multiplier * lr_factor)
    elif isinstance(lr, LearningRateSchedule):
        config["learning_rate"] = PlateauAware(lr, lr_factor)
    else:
        config["learning_rate"] = _single_lr(template) * lr_factor
    base = type(template)
    if issubclass(base, GlobalNormClipping):
        base = next(c for c in base.__mro__[1:] if not issubclass(c, GlobalNormClipping))
    return base(**config)


def _weighted_layers(layer, out=None):
    """Leaf layers owning trainable weights, in model order (nested models flattened)."""
    out = [] if out is None else out
    subs = list(getattr(layer, "layers", None) or [])
    if subs:
        for l in subs:
            _weighted_layers(l, out)
    elif layer.trainable_weights:
        out.append(layer)
    return out


def layerwise(model, optimizer, *, decay: float = 0.5, groups: Optional[dict] = None, num_groups: Optional[int] = None):
    """A `keras.optimizers.MultiOptimizer` giving each layer its own learning rate (tip D7).

    Two ways:
      - geometric (default): the layers owning trainable weights, from the head (last) back to the
        input, get rate x 1, x decay, x decay**2, ...; `num_groups` splits them into that many
        contiguous blocks instead (each block one rate);
      - explicit: `groups={pattern: factor}` maps a layer name, or a regex matched (re.fullmatch)
        against layer names and variable paths, to a multiplier of the rate; other layers get
        factor 1.

    Each group is a copy of `optimizer` (same class and hyperparameters); its rate is
    factor x the optimizer's (a schedule is shared through `PlateauAware(schedule, factor)`), so
    `ReduceLROnPlateauAny`, `set_learning_rate` and schedules work across all groups. The map is
    keyed by exact variable paths, so the optimizer is serializable. A clipping optimizer
    (`clip_global_norm`) stays one global norm over all groups.

    Example:
        opt = kr.optimizers.layerwise(model, keras.optimizers.Adam(1e-3), decay=0.5)
        opt = kr.optimizers.layerwise(model, keras.optimizers.SGD(0.1), groups={"backbone.*": 0.1})
        model.compile(opt, loss)
    """
    import re

    if not isinstance(model, keras.Model):
        raise InputTypeError(f"layerwise needs a keras Model, got {type(model).__name__}")
    if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
            optimizer, (keras.optimizers.MultiOptimizer, keras.optimizers.LossScaleOptimizer)):
        raise InputTypeError("layerwise takes one plain keras optimizer as the template (its rate is the head's)")
    if not (0 < decay <= 1):
        raise ConfigError(f"layerwise decay={decay!r} is invalid: expected a number in (0, 1]")
    layers = _weighted_layers(model)
    if not layers:
        raise ConfigError("layerwise: the model has no trainable weights (build it and unfreeze some layers first)")
    factors = {}  # id(layer) -> factor
    if groups is not None:
        if not isinstance(groups, dict) or not groups:
            raise InputTypeError("layerwise groups must be a non-empty dict {layer name or regex: factor}")
        for pat, f in groups.items():
            _check_positive(f"groups[{pat!r}]", f)
            hits = [l for l in layers if l.name == pat or re.fullmatch(pat, l.name)
                    or any(re.fullmatch(pat, v.path) for v in l.trainable_weights)]
            if not hits:
                raise ConfigError(f"layerwise: group {pat!r} matches no trainable layer; layers: "
                                  f"{[l.name for l in layers][:20]}")
            for l in hits:
                if id(l) in factors and factors[id(l)] != float(f):
                    raise ConfigError(f"layerwise: layer {l.name!r} matches several groups with different factors")
                factors[id(l)] = float(f)
    else:
        n = len(layers)
        k = n if num_groups is None else int(num_groups)
        if k <= 0:
            raise ConfigError(f"layerwise num_groups={num_groups!r} must be > 0")
        for i, l in enumerate(layers):
            depth_from_head = (n - 1 - i) * k // n  # block index, 0 = head
            factors[id(l)] = decay ** depth_from_head
    by_factor = {}
    for l in layers:
        by_factor.setdefault(factors.get(id(l), 1.0), []).append(l)
    head = max(by_factor)
    default = _clone(optimizer, head)
    omap = keras.optimizers.OptimizerMap(default)
    for f, ls in sorted(by_factor.items(), reverse=True):
        if f == head:
            continue
        sub = _clone(optimizer, f)
        for l in ls:
            for v in l.trainable_weights:
                omap[re.escape(v.path)] = sub
    multi = keras.optimizers.MultiOptimizer(omap)
    if isinstance(optimizer, GlobalNormClipping):
        multi = clip_global_norm(multi, optimizer.max_norm, eps=optimizer.clip_eps)
    return multi


def freeze(backbone) -> None:
    """Freeze a backbone for training the head (tip D7): its weights stop training and its
    BatchNormalization layers run in inference mode (Keras 3 does that for trainable=False)."""
    backbone.trainable = False


def unfreeze(backbone, *, keep_batchnorm_frozen: bool = True) -> None:
    """Make the backbone trainable again for fine-tuning; BatchNormalization layers stay frozen
    (inference mode, moving statistics kept) unless `keep_batchnorm_frozen=False`."""
    backbone.trainable = True
    if keep_batchnorm_frozen:
        for l in all_layers(backbone, include_self=True):
            if isinstance(l, keras.layers.BatchNormalization):
                l.trainable = False



def fine_tune(model, backbone, x, y=None, *, head_epochs: int, epochs: int, optimizer=None,
              backbone_factor: float = 0.1, decay: float = 1.0, callbacks=None, **fit_kwargs):
    """Transfer learning in two phases (tip D7):

    1. freeze `backbone` (BatchNorm in inference mode), train the rest (the head) for
       `head_epochs` with `optimizer`;
    2. unfreeze the backbone (BatchNorm stays frozen) and train everything for `epochs` more,
       the backbone at `backbone_factor` x the head's rate (and, with `decay` < 1, geometrically
       lower towards the input), through `layerwise`.

    The model must be compiled (its loss and metrics are reused; it is recompiled for each phase).
    `optimizer` (default: a fresh copy of the compiled one) is the template for both phases.
    Returns (history of phase 1, history of phase 2).

    Example:
        base = keras.applications.MobileNetV2(include_top=False, weights=None, pooling="avg")
        model = keras.Sequential([keras.Input((96, 96, 3)), base, keras.layers.Dense(10, "softmax")])
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        h1, h2 = kr.optimizers.fine_tune(model, base, x, y, head_epochs=3, epochs=5, validation_split=0.2)
    """
    if not getattr(model, "compiled", False):
        from kerasrecipe.errors import NotCompiledError

        raise NotCompiledError("fine_tune: compile the model first (its loss and metrics are reused)")
    if not 0 < backbone_factor <= 1:
        raise ConfigError(f"fine_tune backbone_factor={backbone_factor!r} must be in (0, 1]")
    compile_cfg = keras.saving.deserialize_keras_object(model.get_compile_config())
    template = optimizer if optimizer is not None else model.optimizer
    if isinstance(template, keras.optimizers.MultiOptimizer):
        raise InputTypeError("fine_tune: pass a plain optimizer as the template (optimizer=...)")

    def recompile(opt):
        cfg = dict(compile_cfg)
        cfg["optimizer"] = opt
        model.compile(**cfg)

    freeze(backbone)
    recompile(_clone(template, 1.0))
    h1 = model.fit(x, y, epochs=head_epochs, callbacks=callbacks, **fit_kwargs)
    unfreeze(backbone)
    back_ids = {id(l) for l in all_layers(backbone, include_self=True)}
    back_layers = [l for l in _weighted_layers(model) if id(l) in back_ids]
    groups = {}
    for i, l in enumerate(back_layers):
        f = backbone_factor * decay ** (len(back_layers) - 1 - i)
        groups[l.name] = f
    opt = layerwise(model, template, groups=groups) if groups else _clone(template, 1.0)
    recompile(opt)
    h2 = model.fit(x, y, initial_epoch=head_epochs, epochs=head_epochs + epochs, callbacks=callbacks, **fit_kwargs)
    return h1, h2
