"""NaNGuard: stop on a non-finite loss, restore the last finite weights, name the origin (tip G2).

Checks the loss of every batch and the epoch's train/validation losses. On a non-finite training
loss it

1. stops training (`model.stop_training = True`; fit returns normally, every file is kept);
2. finds where it started: NaN/Inf in the training data first (the arrays fit was given, else the
   probe batch: inputs, then targets), since a bad sample poisons the loss, the gradients and then
   every weight in one step; else, on the fixed probe batch with the weights as they are now, the
   first layer (in layer order) whose weights are non-finite, else whose output is, else whose
   gradient is; else the loss itself (e.g. log(0)) — and the step and epoch;
3. restores the last weights known to be finite, with the optimizer's state (iterations,
   momentum and Adam moments, not the learning rate) of the same moment (taken at the start of
   each epoch and at every health probe), and says after which step they were taken
   (`restored_step`: the state after that step; -1: before the first step);
4. writes an `event` record {"event": "nan", "where", "layer", "step", "epoch", ...} that the
   diagnosis rules turn into a finding.

A non-finite validation loss after a finite training epoch points at the validation data: the
guard stops and logs it (`where: "validation"`) but keeps the weights.

Overhead: the guard is `async_safe`, so Keras keeps dispatching batch-end callbacks on its
callback thread instead of waiting for the device after every step. `on_train_batch_end` (maybe
on that thread, maybe late) only notes the first non-finite loss and its step; the guard acts on
the main thread at the next batch begin, or at the end of the epoch at the latest (Keras waits for
all batch-end calls before it). Training stops after the step running then, and the last finite
weights are put back at the end of that epoch (a step begun before the stop would otherwise
overwrite them). The recorded step is the step whose loss was first non-finite.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np

from kerasrecipe.callbacks._context import FiniteState, RunContext, capture_fit_args, is_finite_number
from kerasrecipe.callbacks.health import nonfinite_origin, sync_model_state
from kerasrecipe.probes import LayerProbe


def _all_finite(arrays) -> bool:
    return all(np.all(np.isfinite(a)) for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


def _array_leaves(data):
    """The arrays of `data` (an array, or a dict/list/tuple of arrays) as NumPy, or None when it is
    something else (a tf.data.Dataset, a generator, a PyDataset, a DataLoader: not readable here)."""
    if data is None:
        return []
    leaves = keras.tree.flatten(data)
    if not leaves or not all(hasattr(a, "shape") and hasattr(a, "dtype") and not hasattr(a, "element_spec")
                             for a in leaves):
        return None
    try:
        return [np.asarray(keras.ops.convert_to_numpy(a)) for a in leaves]
    except Exception:
        return None


def _nonfinite_samples(arrays):
    """(non-finite values, samples holding one, index of the first such sample) over float arrays
    whose axis 0 is the sample axis; None when every value is finite."""
    from kerasrecipe.checks.data import nonfinite_rows

    values, bad = 0, set()
    for a in arrays:
        found = nonfinite_rows(a)
        if found is not None and (found[0] or found[1]):
            values += found[0] + found[1]
            bad.update(int(i) for i in found[2])
    if not values:
        return None
    return values, len(bad), min(bad)


def nonfinite_data(model, probe=None) -> Optional[dict]:
    """NaN/Inf in the training data: the arrays the running `fit` of `model` was given (its
    training part), else the probe batch `(x, y)`; inputs before targets. A dict {"what": "inputs" |
    "targets", "source": "training data" | "probe batch", "values", "samples", "first"} or None.
    Call it from a callback hook (it reads fit's arguments off the call stack)."""
    sources = []
    args = capture_fit_args(model)
    if args:
        x, y = _array_leaves(args.get("x")), _array_leaves(args.get("y"))
        if x is not None:
            sources.append(("training data", x, y or []))
    if probe is not None:
        sources.append(("probe batch", _array_leaves(probe[0]) or [], _array_leaves(probe[1]) or []))
    for source, x, y in sources:
        for what, arrays in (("inputs", x), ("targets", y)):
            found = _nonfinite_samples(arrays)
            if found:
                values, samples, first = found
                return {"what": what, "source": source, "values": values, "samples": samples, "first": first}
    return None


class NaNGuard(keras.callbacks.Callback):
    """Stops a diverging fit, restores the last finite weights and names the origin (G2).

    Args:
        restore: restore the last finite weights and optimizer state (default True).
        context: the RunContext shared with the other recipe callbacks (default() passes it).

    Attributes:
        tripped: the `nan` event record of the last trip in this run, or None.

    Example:
        >>> guard = NaNGuard()
        >>> model.fit(x, y, callbacks=[guard])
        >>> guard.tripped and guard.tripped["layer"]
    """

    # on_train_batch_end only stores a tuple (see the module docstring): safe on Keras's thread.
    async_safe = True

    def __init__(self, restore: bool = True, context: Optional[RunContext] = None):
        super().__init__()
        self.context = context if context is not None else RunContext()
        self.restore = bool(restore)
        self.tripped = None
        self._probe = None
        self._probe_model = None
        self._fit_tripped = False
        self._bad = None        # (step, loss) of the first non-finite batch loss, set by batch end
        self._restore_to = None  # the FiniteState to put back at the end of the epoch

    @property
    def runlog(self):
        return self.context.runlog

    def get_config(self):
        return {"restore": self.restore}

    def on_train_begin(self, logs=None):
        self._fit_tripped = False
        self._bad = None
        self._restore_to = None

    def on_epoch_begin(self, epoch, logs=None):
        sync_model_state(self.model)
        ctx = self.context
        done = ctx.step  # optimizer steps done so far (RunLogger keeps it); else the optimizer's count
        if ctx.fit_index < 0:
            try:
                done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            except Exception:
                done = 0
        snap = FiniteState.take(self.model, done - 1)  # the state after step done - 1
        if snap is not None:
            self.context.finite_snapshot = snap

    def on_train_batch_end(self, batch, logs=None):
        # May run on Keras's callback thread, late: only note the first non-finite loss. The loss
        # Keras reports is the epoch's running mean, non-finite from the first bad batch on.
        if self._bad is None and not self._fit_tripped:
            value = (logs or {}).get("loss")
            if value is not None and not is_finite_number(value):
                ctx = self.context
                step = ctx.epoch_start_step + int(batch) if ctx.fit_index >= 0 else ctx.step
                self._bad = (step, value)

    def on_train_batch_begin(self, batch, logs=None):
        if self._bad is not None and not self._fit_tripped:
            self._trip_bad(restore_now=False)

    def _trip_bad(self, restore_now):
        step, value = self._bad
        self.trip("loss", f"training loss became {float(value)} at step {step}", step=step,
                  restore_now=restore_now)

    def on_epoch_end(self, epoch, logs=None):
        if not self._fit_tripped:
            if self._bad is not None:
                self._trip_bad(restore_now=True)
            else:
                logs = logs or {}
                if "loss" in logs and not is_finite_number(logs["loss"]):
                    self.trip("loss", f"loss became {logs['loss']} in epoch {self.context.epoch + 1}")
                elif "val_loss" in logs and not is_finite_number(logs["val_loss"]):
                    self.trip_validation(logs["val_loss"])
        self._apply_restore()

    def on_train_end(self, logs=None):
        self._apply_restore()

    def _apply_restore(self):
        if self._restore_to is None:
            return
        sync_model_state(self.model)
        try:
            self._restore_to.restore(self.model)
        except Exception as e:  # pragma: no cover - shapes never change mid-fit
            self.context.note(f"could not restore the last finite weights ({type(e).__name__}: {e})")
        self._restore_to = None

    # ------------------------------------------------------------------ the trip
    def trip_validation(self, value) -> dict:
        """The validation loss is non-finite while the training loss is finite: the model is fine
        on the data it trains on, so the validation data (NaN/Inf, or targets outside the loss's
        domain) is the suspect. Stop (early stopping and the checkpoints cannot rank epochs on a
        NaN), keep the weights, log the event."""
        ctx, model = self.context, self.model
        self._fit_tripped = True
        model.stop_training = True
        message = (f"val_loss became {value} in epoch {ctx.epoch + 1} while the training loss is finite: "
                   "the validation data holds NaN/Inf inputs or targets the loss cannot take; "
                   "the weights are kept (training itself is finite)")
        rec = ctx.runlog.log("event", epoch=ctx.epoch, step=ctx.step, event="nan", message=message,
                             where="validation", layer=None, nonfinite_weights=[], activation_origin=None,
                             gradient_origin=None, restored_step=None, trigger="val_loss")
        ctx.runlog.log("event", epoch=ctx.epoch, step=ctx.step, event="stop", message="stopped by NaNGuard",
                       reason="nan")
        ctx.stopped_reason = "nan"
        self.tripped = rec
        return rec

    def trip(self, what: str, message: str, *, step: Optional[int] = None, restore_now: bool = True) -> dict:
        """Stop, find the origin, restore (now, or at the end of the epoch) and log the event."""
        ctx, model = self.context, self.model
        step = ctx.step if step is None else int(step)
        self._fit_tripped = True
        model.stop_training = True
        sync_model_state(model)
        where, layer = "loss", None
        weights_bad = []
        if self._probe_model is not model:
            self._probe = LayerProbe(model)
            self._probe_model = model
        for lyr in self._probe.layers:
            try:
                if not _all_finite([np.asarray(keras.ops.convert_to_numpy(w.value)) for w in lyr.weights]):
                    weights_bad.append(lyr.name)
            except Exception:
                pass
        origin = {"activation": None, "gradient": None, "loss": None, "gradient_error": "no probe batch"}
        if ctx.probe is not None:
            origin = nonfinite_origin(model, self._probe, *ctx.probe)
        data = nonfinite_data(model, ctx.probe)
        if data is not None:  # bad samples: the weights, outputs and gradients went non-finite after them
            where = "input" if data["what"] == "inputs" else "targets"
        elif weights_bad:
            where, layer = "weights", weights_bad[0]
        elif origin["activation"]:
            where, layer = "activation", origin["activation"]
        elif origin["gradient"]:
            where, layer = "gradient", origin["gradient"]
        elif self._probe.layers:
            layer = self._probe.layers[-1].name
        restored_step = None
        snap = ctx.finite_snapshot
        if self.restore and snap is not None:
            restored_step = snap.step
            self._restore_to = snap
            if restore_now:
                self._apply_restore()
        if data is not None:
            full = (f"{message}; origin: the {data['source']} holds {data['values']} non-finite {data['what']} "
                    f"value(s) (NaN/Inf) in {data['samples']} sample(s), the first in sample {data['first']}")
        elif where != "loss":
            full = f"{message}; first non-finite: {where} of layer {layer!r}"
        elif origin["gradient_error"] is None:
            full = (f"{message}; origin: the loss itself (weights, layer outputs and gradients on the probe batch "
                    "are finite: the loss overflowed" + (f"; output layer {layer!r})" if layer else ")"))
        else:
            full = (f"{message}; origin not found: weights" + (" and layer outputs" if ctx.probe is not None else "")
                    + f" are finite, the gradients were not checked ({origin['gradient_error']})")
        full += ("; no finite weights to restore" if restored_step is None
                 else "; restored the last finite weights and optimizer state, "
                 + ("as they were before the first step" if restored_step < 0
                    else f"as they were after step {restored_step}"))
        rec = ctx.runlog.log("event", epoch=ctx.epoch, step=step, event="nan", message=full, where=where,
                             layer=layer, nonfinite_weights=weights_bad, activation_origin=origin["activation"],
                             gradient_origin=origin["gradient"], nonfinite_data=data, restored_step=restored_step,
                             trigger=what)
        ctx.runlog.log("event", epoch=ctx.epoch, step=step, event="stop", message="stopped by NaNGuard",
                       reason="nan")
        ctx.stopped_reason = "nan"
        self.tripped = rec
        return rec
