"""The one place that computes gradients outside `fit`, per backend (tf.GradientTape,
torch.autograd, jax.grad). Probes (health monitor, preflight, lr tools) use:

    loss, grads = weight_grads(model, x, y, loss_fn)         # grads: list, like model.trainable_variables
    fn = weight_grads_fn(model, loss_fn)                      # the same, traced once, for repeated probes

Both run the model in inference mode by default (training=False), return NumPy arrays, and leave
the model's variables untouched.
"""
from __future__ import annotations

import numpy as np
import keras
from keras import ops


def backend() -> str:
    return keras.backend.backend()


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


class _NoMetric:
    def update_state(self, *args, **kwargs):
        pass


def _fit_loss_class():
    from keras.src.trainers.compile_utils import CompileLoss

    class FitLoss(CompileLoss):
        """Keras's compiled loss without its per-output loss metrics (a probe must not add its
        batch to the running means fit reports, nor assign to variables inside a jit trace)."""

        def build(self, y_true, y_pred):
            super().build(y_true, y_pred)
            self._metrics = [_NoMetric() for _ in self._metrics]

    return FitLoss


def _default_loss(model):
    """The loss `fit` minimises, as `loss_fn(y_true, y_pred) -> scalar`: Keras's own compiled-loss
    logic (labels of shape (n,) against outputs (n, 1), dict/list losses of multi-output models,
    loss_weights), without the model's regularisation losses."""
    loss = getattr(model, "loss", None)
    if loss is None:
        from kerasrecipe.errors import NotCompiledError

        raise NotCompiledError("the model has no loss: compile it first (model.compile(optimizer, loss))")
    compiled = getattr(model, "_compile_loss", None)
    try:
        return _fit_loss_class()(compiled._user_loss, compiled._user_loss_weights, output_names=compiled.output_names)
    except Exception:  # (a Keras without this class layout: the plain loss function)
        return keras.losses.get(loss) if isinstance(loss, str) else loss


def weight_grads(model, x, y, loss_fn=None, *, training=False, variables=None):
    """Loss value and gradients of `loss_fn(y, model(x))` w.r.t. `variables`
    (default: model.trainable_variables). Returns (float loss, list of np.ndarray)."""
    loss_fn = loss_fn or _default_loss(model)
    variables = list(model.trainable_variables if variables is None else variables)
    b = backend()
    if b == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = model(x, training=training)
            loss = ops.mean(loss_fn(y, out))
        grads = tape.gradient(loss, [v.value for v in variables])
        return float(to_numpy(loss)), [np.zeros(v.shape, v.dtype) if g is None else to_numpy(g) for g, v in zip(grads, variables)]
    if b == "torch":
        import torch

        model.zero_grad() if hasattr(model, "zero_grad") else None
        out = model(x, training=training)
        loss = ops.mean(loss_fn(y, out))
        params = [v.value for v in variables]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return float(loss.detach().cpu().item()), [
            np.zeros(tuple(v.shape), v.dtype) if g is None else g.detach().cpu().numpy() for g, v in zip(grads, variables)
        ]
    if b == "jax":
        import jax

        trainable = list(model.trainable_variables)
        ids = {id(v): i for i, v in enumerate(trainable)}
        non_trainable = [v.value for v in model.non_trainable_variables]

        def f(tv):
            out, _ = model.stateless_call(tv, non_trainable, x, training=training)
            return ops.mean(loss_fn(y, out))

        loss, g_all = jax.value_and_grad(f)([v.value for v in trainable])
        grads = [to_numpy(g_all[ids[id(v)]]) if id(v) in ids else np.zeros(v.shape, v.dtype) for v in variables]
        return float(loss), grads
    raise NotImplementedError(f"backend {b!r} is not supported")


def weight_grads_fn(model, loss_fn=None, *, extractor=None, training=False):
    """A reusable, compiled-where-possible probe: `fn(x, y) -> (loss, grads, acts)`.

    Same results as `weight_grads` (grads: list of np.ndarray like model.trainable_variables),
    plus `acts`: the outputs of `extractor` (a keras.Model over the same layers, e.g. the
    per-layer probe model of kerasrecipe.probes) on x, as a list of backend tensors, or None.
    Compiled once (jax.jit / tf.function) on JAX and TensorFlow so that frequent probes during
    fit cost about one training step; eager on torch. Added for the health monitor (issue 7).
    """
    loss_fn = loss_fn or _default_loss(model)
    variables = list(model.trainable_variables)
    b = backend()

    def _zeros_for_none(grads):
        return [np.zeros(tuple(v.shape), v.dtype) if g is None else to_numpy(g) for g, v in zip(grads, variables)]

    def _as_list(acts):
        if acts is None:
            return None
        return list(acts) if isinstance(acts, (list, tuple)) else [acts]

    if b == "jax":
        import jax

        ntv_all = list(model.non_trainable_variables)
        tpos = {id(v): i for i, v in enumerate(variables)}
        npos = {id(v): i for i, v in enumerate(ntv_all)}
        if extractor is not None:
            e_t = [tpos.get(id(v)) for v in extractor.trainable_variables]
            e_n = [npos.get(id(v)) for v in extractor.non_trainable_variables]
            if None in e_t or None in e_n:
                extractor = None  # variables outside the model: probe activations eagerly instead

        @jax.jit
        def f(tv, ntv, x, y):
            def lossf(tvals):
                out, _ = model.stateless_call(tvals, ntv, x, training=training)
                return ops.mean(loss_fn(y, out))

            loss, grads = jax.value_and_grad(lossf)(tv)
            acts = None
            if extractor is not None:
                acts, _ = extractor.stateless_call([tv[i] for i in e_t], [ntv[i] for i in e_n], x, training=False)
            return loss, grads, acts

        def run(x, y):
            loss, grads, acts = f([v.value for v in variables], [v.value for v in ntv_all], x, y)
            return float(loss), [to_numpy(g) for g in grads], _as_list(acts)

        return run
    if b == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def f(x, y):
            with tf.GradientTape() as tape:
                out = model(x, training=training)
                loss = ops.mean(loss_fn(y, out))
            grads = tape.gradient(loss, [v.value for v in variables])
            acts = extractor(x, training=False) if extractor is not None else None
            return loss, grads, acts

        def run(x, y):
            loss, grads, acts = f(x, y)
            return float(to_numpy(loss)), _zeros_for_none(grads), _as_list(acts)

        return run

    def run(x, y):  # torch (and anything else): eager
        loss, grads = weight_grads(model, x, y, loss_fn, training=training)
        acts = extractor(x, training=False) if extractor is not None else None
        return loss, grads, _as_list(acts)

    return run
