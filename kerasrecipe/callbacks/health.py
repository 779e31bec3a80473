"""HealthMonitor: the network's internals on a fixed probe batch, during fit (tips G3, G4).

At a probe step it records, for every top-level layer (see kerasrecipe.probes):

- activation statistics of the layer's output (kerasrecipe.kernels.activation_stats_many, one
  call for all layers): mean, std, min, max, fraction of exact zeros (dead ReLUs), fraction
  saturated (|a| >= saturation_threshold: tanh/sigmoid at their limits), NaN/Inf counts;
- the norm of the loss gradient w.r.t. the layer's weights (kerasrecipe.backend_ops.weight_grads);
- the layer's weight norm and its update/weight ratio ||W_after - W_before|| / ||W_before|| over
  the probe step's own optimizer update (G4: ~1e-3 is healthy);

and a `grad` record with the global gradient norm on the probe batch. When the optimizer exposes
`last_global_norm` (kerasrecipe.optimizers.clip_global_norm), the global norm of the real
training gradients is also recorded at every step, at almost no cost.

Overhead: all per-step work happens in `on_train_batch_begin` (the begin hook of batch i runs
after step i-1 and closes it; the last step of an epoch is closed at epoch end). The monitor has
no batch-end hook, so Keras keeps dispatching batch-end callbacks asynchronously and does not wait
for the device after every step. The per-step `last_global_norm` read (only when the optimizer
clips with kerasrecipe.optimizers.clip_global_norm) is the one per-step device read left.

Probe schedule: the first step of a fit, then every `interval` steps. `interval=None` (default)
aims at ~4 probes per epoch but lengthens the interval so the probes cost at most
`overhead_budget` (2%) of the training time, measured as the run goes.
"""
from __future__ import annotations

import math
import time
from typing import List, Optional

import keras
import numpy as np

from kerasrecipe.callbacks._context import FiniteState, RunContext
from kerasrecipe.probes import LayerProbe


def sync_model_state(model) -> None:
    """JAX keeps the training state outside the model's variables during fit; bring it back."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def _read_optimizer_variable(model, var):
    """Value of an optimizer variable now, also while JAX holds the state (no full sync)."""
    state = getattr(model, "_jax_state", None)
    if state and not getattr(model, "_jax_state_synced", True):
        opt_vars = state.get("optimizer_variables")
        if opt_vars:
            for i, v in enumerate(model.optimizer.variables):
                if v is var:
                    return float(np.asarray(opt_vars[i]))
    return float(np.asarray(keras.ops.convert_to_numpy(var.value)))


def _norm(arrays) -> float:
    s = 0.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        s += float(np.sum(a * a))
    return math.sqrt(s)


class _LayerMap:
    """Which trainable variables (by position in model.trainable_variables) belong to which layer."""

    def __init__(self, model, layers):
        pos = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self.by_layer: List[List[int]] = []
        for lyr in layers:
            idx = []
            try:
                for v in lyr.trainable_weights:
                    if id(v) in pos and pos[id(v)] not in idx:
                        idx.append(pos[id(v)])
            except Exception:
                pass
            self.by_layer.append(idx)


def trainable_numpy(model) -> List[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.trainable_variables]


def nonfinite_origin(model, probe: LayerProbe, x, y) -> dict:
    """The first layer (in layer order) whose output, or gradient, is non-finite on (x, y);
    `gradient_error` says why the gradients could not be checked (None when they were)."""
    out = {"activation": None, "gradient": None, "loss": None, "gradient_error": None}
    try:
        names, acts = probe.outputs(x)
        for name, a in zip(names, acts):
            if not np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(a), dtype=np.float64))):
                out["activation"] = name
                break
    except Exception:
        pass
    if y is None:
        out["gradient_error"] = "the probe batch has no targets"
    else:
        try:
            from kerasrecipe.backend_ops import weight_grads

            loss, grads = weight_grads(model, x, y)
            out["loss"] = loss
            lmap = _LayerMap(model, probe.layers)
            for lyr, idx in zip(probe.layers, lmap.by_layer):
                if any(not np.all(np.isfinite(grads[i])) for i in idx):
                    out["gradient"] = lyr.name
                    break
        except Exception as e:
            out["gradient_error"] = f"{type(e).__name__}: {e}"
    return out


class HealthMonitor(keras.callbacks.Callback):
    """Per-layer activation, gradient and update statistics on a fixed probe batch (G3, G4).

    Args:
        interval: optimizer steps between probes; None = automatic (~4 per epoch, bounded by
            `overhead_budget`).
        probe_data: (x, y) for the probe batch; default: the first `probe_batch_size` samples of
            the training data given to fit.
        saturation: |activation| at or above which a unit counts as saturated.
        overhead_budget: fraction of training time the automatic interval allows probes to take.
        context: the RunContext shared with the other recipe callbacks (default() passes it).

    Example:
        >>> mon = HealthMonitor(interval=10)
        >>> model.fit(x, y, callbacks=[mon])
        >>> mon.runlog.of("layer")[0]["act"]["zero_frac"]
    """

    def __init__(self, interval: Optional[int] = None, probe_data=None, saturation: Optional[float] = None,
                 overhead_budget: float = 0.02, context: Optional[RunContext] = None):
        super().__init__()
        self.context = context if context is not None else RunContext()
        if interval is not None and (not isinstance(interval, int) or interval <= 0):
            from kerasrecipe.errors import ConfigError

            raise ConfigError(f"HealthMonitor interval={interval!r} is invalid: expected None or an integer > 0")
        self.interval = interval if interval is not None else self.context.config.monitor_interval
        self.probe_data = probe_data
        self.saturation = saturation if saturation is not None else self.context.config.saturation_threshold
        self.overhead_budget = float(overhead_budget)
        self._probe = None
        self._probe_model = None
        self._fn = None
        self._lmap = None
        self._next_probe = 0
        self._before = None
        self._probe_costs: List[float] = []
        self._step_time = None
        self._t_last = None
        self._gnorm_var = None
        self._open = None  # the step begun by the last batch-begin hook, not closed yet
        self.probes_done = 0

    @property
    def runlog(self):
        return self.context.runlog

    def get_config(self):
        return {"interval": self.interval, "saturation": self.saturation, "overhead_budget": self.overhead_budget}

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, logs=None):
        ctx = self.context
        if self.probe_data is not None and ctx.probe is None:
            from kerasrecipe.callbacks._context import _head, _to_numpy

            x, y = self.probe_data
            n = ctx.config.probe_batch_size
            ctx.probe = (_to_numpy(_head(x, n)), _to_numpy(_head(y, n)))
        if ctx.probe is None and ctx.fit_index < 0:
            # used without RunLogger: read the probe batch from fit ourselves
            from kerasrecipe.callbacks._context import capture_fit_args, probe_from_fit

            args = capture_fit_args(self.model)
            if args:
                px, py, _ = probe_from_fit(args, ctx.config.probe_batch_size)
                ctx.probe = None if px is None else (px, py)
        if self._probe_model is not self.model:
            self._probe = LayerProbe(self.model)
            self._probe_model = self.model
            self._lmap = _LayerMap(self.model, self._probe.layers)
            if self._probe.note:
                ctx.note(self._probe.note, where="probe")
            from kerasrecipe.backend_ops import weight_grads_fn

            try:
                self._fn = weight_grads_fn(self.model, extractor=self._probe.extractor)
            except Exception as e:  # no loss (not compiled) or an exotic model: activations only
                self._fn = None
                ctx.note(f"no gradient probe for this model ({type(e).__name__}: {e})", where="probe")
        self._gnorm_var = getattr(getattr(self.model, "optimizer", None), "last_global_norm", None)
        self._clip = None
        opt = getattr(self.model, "optimizer", None)
        for name in ("max_norm", "clipnorm_value", "global_clipnorm"):
            v = getattr(opt, name, None)
            if isinstance(v, (int, float)) and v:
                self._clip = float(v)
                break
        self._next_probe = self._current_step(0)  # probe the first step of every fit
        self._t_last = None
        self._open = None
        if ctx.probe is None:
            self._next_probe = None
            ctx.note("health monitoring is off for this fit: no probe batch "
                     f"({ctx.probe_note or 'the training data could not be read'})", where="probe")

    def _current_step(self, batch) -> int:
        ctx = self.context
        if ctx.fit_index < 0:  # no RunLogger: count ourselves
            return self._own_step(batch)
        return ctx.epoch_start_step + int(batch)

    def _own_step(self, batch):
        try:
            return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) if batch == 0 else \
                self._own_epoch_start + int(batch)
        except Exception:
            return int(batch)

    def on_epoch_begin(self, epoch, logs=None):
        if self.context.fit_index < 0:
            try:
                self._own_epoch_start = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            except Exception:
                self._own_epoch_start = 0

    # ------------------------------------------------------------------ steps
    # All per-step work runs at batch BEGIN: the begin hook of batch i runs after step i-1, so it
    # closes step i-1 (its clipped-gradient norm, the probe if step i-1 was a probe step, the
    # step time) and then opens step i. The last step of an epoch is closed at epoch end. The
    # monitor has no batch-end hook, so Keras keeps its asynchronous batch-end dispatch.
    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        self._close_step(now)
        step = self._current_step(batch)
        if self._next_probe is not None and step >= self._next_probe:
            t0 = time.perf_counter()
            sync_model_state(self.model)
            self._before = trainable_numpy(self.model)
            self._before_cost = time.perf_counter() - t0
        else:
            self._before = None
        self._open = step
        self._t_last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._close_step(None)
        self._t_last = None  # the time between epochs is no training step

    def _close_step(self, now):
        """Finish the step opened by the last batch-begin hook (`now`: None = no step timing)."""
        step = self._open
        if step is None:
            return
        self._open = None
        ctx = self.context
        if self._gnorm_var is not None:
            try:
                g = _read_optimizer_variable(self.model, self._gnorm_var)
                ctx.runlog.log("grad", epoch=ctx.epoch, step=step, global_norm=g,
                               clipped=bool(self._clip is not None and g > self._clip), source="optimizer",
                               flush=False)
            except Exception:
                self._gnorm_var = None
        if self._before is not None:
            t0 = time.perf_counter()
            self.probe(step)
            cost = time.perf_counter() - t0 + getattr(self, "_before_cost", 0.0)
            self._probe_costs.append(cost)
            self._schedule_next(step)
            return
        if now is not None and self._t_last is not None:
            dt = now - self._t_last
            self._step_time = dt if self._step_time is None else 0.9 * self._step_time + 0.1 * dt

    def _schedule_next(self, step):
        if self.interval is not None:
            self._next_probe = step + self.interval
            return
        spe = self.context.fit_info.get("steps_per_epoch") or (self.params or {}).get("steps") or 100
        base = max(1, int(spe) // 4)
        costs = self._probe_costs[1:] or self._probe_costs  # the first probe pays one-time set-up
        if self._step_time and costs:
            cost = min(costs[-3:])
            base = max(base, int(math.ceil(cost / (self.overhead_budget * self._step_time))))
            if len(self._probe_costs) < 3:
                # the first probes may still compile (JAX/TF trace the probe functions; a retrace
                # when shapes settle): at most an epoch apart until three costs are measured, so one
                # slow warm-up probe does not push the next one past the end of training
                base = min(base, max(int(spe), 1))
        self._next_probe = step + base

    # ------------------------------------------------------------------ the probe
    def probe(self, step: Optional[int] = None) -> List[dict]:
        """Probe now; returns the layer records written."""
        ctx, model = self.context, self.model
        if ctx.probe is None:
            return []
        step = ctx.step if step is None else step
        x, y = ctx.probe
        sync_model_state(model)
        after = trainable_numpy(model)
        grads, loss, acts = None, None, None
        names = [lyr.name for lyr in self._probe.layers]
        if y is not None and self._fn is not None:
            try:
                loss, grads, acts = self._fn(x, y)
            except Exception as e:
                self._fn = None
                ctx.note(f"gradient probe failed ({type(e).__name__}: {e}); gradient norms are skipped",
                         where="probe")
        if acts is None:
            names, acts = self._probe.outputs(x)
        stats = []
        if acts:
            from kerasrecipe.kernels import activation_stats_many

            stats = activation_stats_many(acts, saturation=self.saturation)
        by_name = dict(zip(names, stats))
        records = []
        for i, (lyr, idx) in enumerate(zip(self._probe.layers, self._lmap.by_layer)):
            st = by_name.get(lyr.name)
            act = None
            if st is not None:
                n = max(int(st["count"]), 1)
                act = {"count": int(st["count"]), "mean": st["mean"], "std": st["std"], "min": st["min"],
                       "max": st["max"], "zero_frac": st["zeros"] / n, "sat_frac": st["saturated"] / n,
                       "nan": int(st["nan"]), "inf": int(st["inf"]), "hist": np.asarray(st["hist"]).tolist()}
            gnorm = _norm([grads[j] for j in idx]) if (grads is not None and idx) else None
            wnorm = _norm([after[j] for j in idx]) if idx else None
            ratio = None
            if idx and self._before is not None:
                before_norm = _norm([self._before[j] for j in idx])
                upd = _norm([after[j] - self._before[j] for j in idx])
                ratio = upd / before_norm if before_norm > 0 else None
            records.append(ctx.runlog.log(
                "layer", epoch=ctx.epoch, step=step, layer=lyr.name, index=i,
                activation=_act_name(lyr), **{"class": type(lyr).__name__}, act=act, grad_norm=gnorm, weight_norm=wnorm, update_ratio=ratio,
                flush=False))
        if grads is not None:
            ctx.runlog.log("grad", epoch=ctx.epoch, step=step, global_norm=_norm(grads), clipped=False,
                           source="probe", loss=loss, flush=False)
        ctx.runlog.flush()
        if np.isfinite(loss if loss is not None else 0.0) and all(np.all(np.isfinite(a)) for a in after):
            snap = FiniteState.take(model, step)
            if snap is not None:
                ctx.finite_snapshot = snap
        self._before = None
        self.probes_done += 1
        return records


def _act_name(layer):
    from kerasrecipe.callbacks._context import _activation_name

    return _activation_name(layer)
