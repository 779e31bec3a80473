"""Checks that train, always on a CLONE: zero-input baseline (C3), overfit one batch (C4),
capacity step (C5).

The user's model, its weights and its optimizer (its state, iterations, learning rate) are never
touched: each check builds `keras.models.clone_model(model)`, copies the weights when it needs
the same starting point, and compiles the clone with the same loss and a fresh optimizer of the
same class and configuration. Every loop stops at its step limit or at the deadline the budget
gives it, whichever comes first.
"""
from __future__ import annotations

import math
import time

import numpy as np

from kerasrecipe.checks.context import all_layers, predict, zeros_like_tree
from kerasrecipe.checks.sample import n_rows, take
from kerasrecipe.checks.targets import _needs

# C3: a comparison with the zero-input baseline is conclusive only after this many steps (fewer
# options["baseline_steps"] make it always inconclusive): with a default learning rate a healthy small model has seen a few
# hundred samples by then and beats the prior on held-out data; fewer steps compare two untrained models.
MIN_BASELINE_STEPS = 30
# C4: "still falling" = the best loss of the last quarter of the steps is at least this much
# (relative) below the best of the quarter before: a loop stopped then had not plateaued.
STILL_FALLING = 0.05

_NOISE_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
                 "GaussianDropout", "GaussianNoise")


# ---------------------------------------------------------------------- clones
def fresh_optimizer(optimizer):
    """A new optimizer of the same class and configuration (no slots, iterations at 0)."""
    import keras

    try:
        return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    except Exception:
        pass
    try:
        return type(optimizer).from_config(optimizer.get_config())
    except Exception:
        pass
    try:
        from kerasrecipe.optimizers import get_learning_rate

        lr = float(get_learning_rate(optimizer))
    except Exception:
        lr = 1e-3
    return keras.optimizers.Adam(learning_rate=lr)


def clone_compiled(model, *, copy_weights=True, clone_function=None, no_noise=False):
    """A compiled clone: same architecture (optionally transformed), same loss, fresh optimizer."""
    import keras

    kwargs = {} if clone_function is None else {"clone_function": clone_function}
    clone = keras.models.clone_model(model, **kwargs)
    if copy_weights:
        clone.set_weights(model.get_weights())
    if no_noise:
        for layer in all_layers(clone):
            name = type(layer).__name__
            if name in _NOISE_LAYERS:
                if hasattr(layer, "rate"):
                    layer.rate = 0.0
                if hasattr(layer, "stddev"):
                    layer.stddev = 0.0
    clone.compile(optimizer=fresh_optimizer(model.optimizer), loss=model.loss, **_named_metrics(model))
    return clone


def _named_metrics(model) -> dict:
    """The model's compiled metrics when they are given by name: the clone's train step is then
    the same program as the model's (JAX's compilation cache serves it instead of compiling
    again). Metric objects are left out: a clone must not share their state."""
    cfg = getattr(getattr(model, "_compile_config", None), "config", None) or {}
    out = {}
    for key in ("metrics", "weighted_metrics"):
        value = cfg.get(key)
        flat = value if isinstance(value, (list, tuple)) else [value]
        if value is not None and all(isinstance(v, str) for v in flat):
            out[key] = value
    return out


def _cannot_clone(row, e):
    row.skip(f"the model cannot be cloned ({type(e).__name__}: {str(e)[:160]}); subclassed models need "
             "get_config/from_config for the training checks")


class CloneTrainer:
    """One compiled clone shared by the training checks, reset to the user's weights and a fresh
    optimizer state before each use (one compilation instead of one per check)."""

    def __init__(self, model):
        self.model = clone_compiled(model, no_noise=True)
        self.model.optimizer.build(self.model.trainable_variables)
        self._weights = [np.array(w) for w in self.model.get_weights()]
        self._opt = [np.array(keras_to_numpy(v)) for v in self.model.optimizer.variables]

    def reset(self):
        self.model.set_weights(self._weights)
        for v, a in zip(self.model.optimizer.variables, self._opt):
            v.assign(a)
        return self.model


def keras_to_numpy(v):
    import keras

    return keras.ops.convert_to_numpy(v)


def get_trainer(ctx) -> CloneTrainer:
    """The context's shared CloneTrainer (built on first use; a failure is re-raised each time)."""
    t = getattr(ctx, "_trainer", None)
    if t is None:
        try:
            t = CloneTrainer(ctx.model)
        except Exception as e:  # remembered: every training check reports it
            t = e
        ctx._trainer = t
    if isinstance(t, Exception):
        raise _CloneFailed(t)
    return t


class _CloneFailed(Exception):
    def __init__(self, e):
        super().__init__(str(e))
        self.error = e


def _batches(n, batch_size, rng):
    while True:
        perm = rng.permutation(n)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[s:s + batch_size]


def _loss_on(model, loss, x, y):
    return loss.mean(y, predict(model, x))


def _train(model, x, y, steps, deadline, batch_size, seed):
    """Train on shuffled full batches until `steps` or the deadline; returns (steps done, last loss, cut)."""
    rng = np.random.default_rng(seed)
    it = _batches(n_rows(y), batch_size, rng)
    done, last, cut = 0, float("nan"), False
    for _ in range(steps):
        if time.perf_counter() > deadline:
            cut = True
            break
        idx = next(it)
        last = float(model.train_on_batch(take(x, idx), take(y, idx), return_dict=True)["loss"])
        done += 1
        if not math.isfinite(last):
            break
    return done, last, cut


def _split(ctx, n_max=2048):
    """Train rows and held-out rows of the training sample (or the validation sample)."""
    n = ctx.train.n
    rng = np.random.default_rng(ctx.seed)
    idx = rng.permutation(n)[: min(n, n_max)]
    val = ctx.val
    if val is not None and isinstance(val.y, np.ndarray) and val.n >= 8:
        k = min(val.n, 1024)
        return ctx.train.subset(np.sort(idx)), val.subset(np.arange(k)), "validation_data"
    cut = max(1, int(round(len(idx) * 0.8)))
    return ctx.train.subset(np.sort(idx[:cut])), ctx.train.subset(np.sort(idx[cut:])), "held-out 20% of the sample"


def _batch_size(ctx, n):
    """The training checks' batch size: the user's, else 16 (small batches: cheap steps, and C4's
    "overfit one small batch"); one size for all of them, so the clone compiles once."""
    return max(1, min(int(ctx.options.get("batch_size") or 16), n))


def _training_prereqs(ctx, row):
    if not _needs(ctx, row):
        return False
    if not ctx.compiled:
        row.skip("the model is not compiled")
        return False
    return True


def warm_up(ctx) -> float:
    """Build the shared clone and compile its train step once (one step on one batch, then reset).

    Called by the runner before it shares the budget out among the training checks: on JAX (and
    TF) the first `train_on_batch` compiles, which on a busy CPU can take longer than a hundred
    steps; charged to a check's deadline it would leave the check one step and an inconclusive
    comparison. Returns the seconds it took (0 when already done or not applicable); a failure
    is left for the checks to report."""
    if getattr(ctx, "_warmed", False):
        return 0.0
    ctx._warmed = True
    if not ctx.compiled or ctx.loss is None or not isinstance(ctx.train.y, np.ndarray):
        return 0.0
    t0 = time.perf_counter()
    try:
        trainer = get_trainer(ctx)
        tr, _, _ = _split(ctx)
        idx = np.arange(_batch_size(ctx, tr.n))
        trainer.model.train_on_batch(take(tr.x, idx), take(tr.y, idx))
        trainer.reset()
    except Exception:
        pass
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- C3
def check_zero_baseline(ctx, row, deadline):
    if not _training_prereqs(ctx, row):
        return
    tr, ho, ho_name = _split(ctx)
    if ho.n < 4:
        return row.skip("too few samples for a held-out comparison (need at least 20)")
    try:
        trainer = get_trainer(ctx)
    except _CloneFailed as e:
        return _cannot_clone(row, e.error)
    bs = _batch_size(ctx, tr.n)
    steps = int(ctx.options.get("baseline_steps", 100))
    m = trainer.reset()
    init = _loss_on(m, ctx.loss, ho.x, ho.y)
    init_zero = _loss_on(m, ctx.loss, zeros_like_tree(ho.x), ho.y)
    half = time.perf_counter() + max(0.0, deadline - time.perf_counter()) / 2
    done, last_real, cut = _train(m, tr.x, tr.y, steps, half, bs, ctx.seed)
    real_ho = _loss_on(m, ctx.loss, ho.x, ho.y)
    m = trainer.reset()
    done0, last_zero, cut0 = _train(m, zeros_like_tree(tr.x), tr.y, max(done, 1), deadline, bs, ctx.seed)
    zero_ho = _loss_on(m, ctx.loss, zeros_like_tree(ho.x), ho.y)
    cut = cut or cut0 or done0 < done
    min_steps = MIN_BASELINE_STEPS
    conclusive = not cut and done >= min_steps
    row.evidence.update({"steps": done, "zero_input_steps": done0, "max_steps": steps, "batch_size": bs,
                         "evaluated_on": ho_name, "initial_loss": init, "zero_input_initial_loss": init_zero,
                         "real_loss": real_ho, "zero_input_loss": zero_ho, "budget_limited": cut,
                         "conclusive_min_steps": min_steps, "conclusive": conclusive,
                         "train_loss_last": {"real": last_real, "zero": last_zero}})
    row.summary = (f"after {done} steps: loss {real_ho:.4g} with real inputs vs {zero_ho:.4g} with zeroed inputs "
                   f"(on the {ho_name}; initial {init:.4g})")
    if cut:
        row.summary += " [cut short by the time budget]"
    if done == 0:
        return row.skip("time budget spent before the first step") if cut else row.skip("no steps run")
    if not math.isfinite(real_ho):
        row.add("nan", "error", f"training on the real inputs gave a loss of {real_ho} within {done} steps",
                "lower the learning rate, clip gradients (D8), check the data for NaN/Inf (G2)")
        return
    # how far training got: each model's held-out loss against its own starting value
    moved = max(abs(init - real_ho) / max(abs(init), 1e-12), abs(init_zero - zero_ho) / max(abs(init_zero), 1e-12))
    gain = (zero_ho - real_ho) / max(abs(zero_ho), 1e-12)
    # the part of the gap between its initial loss and the zero-input model's loss (what can be
    # learned without x: the prior) the real model closed: at >= 1/2 training got far enough to
    # compare even when the loss moved little (it started near the prior)
    gap = init - zero_ho
    closed = (init - real_ho) / gap if gap > 1e-12 else None
    far_enough = moved >= 0.05 or (closed is not None and closed >= 0.5)
    row.evidence.update({"relative_gain": gain, "relative_change": moved, "gap_closed": closed,
                         "far_enough": far_enough})
    if gain >= 0.1:
        return
    # From here the real model has not (yet) beaten the zero-input one by 10%. That is evidence
    # only when training ran long enough for a healthy model to learn: every step it was given
    # (not cut by the budget), at least MIN_BASELINE_STEPS of them, and far enough that the loss
    # moved. Otherwise the comparison is inconclusive and says so at info level.
    if not conclusive:
        why = (f"the time budget stopped training after {done} of {steps} steps" if cut else
               f"only {done} steps were run (at least {min_steps} are needed to compare)")
        row.add("no_better_than_baseline", "info", f"inconclusive: {why}, too few for the model to learn "
                f"(real inputs {real_ho:.4g} vs zeroed {zero_ho:.4g})",
                "give preflight a larger time_budget (or options={'baseline_steps': ...})")
    elif not far_enough:
        row.add("lr_too_low", "info", f"inconclusive: {done} steps barely moved the loss ({init:.4g} -> "
                f"{real_ho:.4g}), too little to compare with zeroed inputs; the learning rate may be low",
                "if training is slow too, raise the learning rate (lr_find, D2); or give preflight more steps")
    elif gain < 0.02:
        row.add("no_better_than_baseline", "error", f"after {done} steps the model does no better with the real "
                f"inputs ({real_ho:.4g}) than with all inputs zeroed ({zero_ho:.4g}): it has learned nothing "
                "from x", "check that inputs and labels are paired (same shuffling/order), that the inputs reach "
                "the model (no zeroing or masking), and the preprocessing (C3, C10)")
    else:
        row.add("no_better_than_baseline", "warning", f"after {done} steps real inputs beat zeroed inputs by only "
                f"{gain:.1%} ({real_ho:.4g} vs {zero_ho:.4g})", "check the input/label pairing and the features; "
                "train longer if the model learns slowly (C3)")


# ---------------------------------------------------------------------- C4
def check_overfit_batch(ctx, row, deadline):
    if not _training_prereqs(ctx, row):
        return
    k = _batch_size(ctx, ctx.train.n)
    rng = np.random.default_rng(ctx.seed)
    idx = np.sort(rng.choice(ctx.train.n, k, replace=False))
    xb, yb = take(ctx.train.x, idx), take(ctx.train.y, idx)
    try:
        m = get_trainer(ctx).reset()
    except _CloneFailed as e:
        return _cannot_clone(row, e.error)
    steps = int(ctx.options.get("overfit_steps", 500))
    regression = ctx.loss.kind in ("mse", "mae", "regression")
    init = _loss_on(m, ctx.loss, xb, yb)
    target = (0.02 * init) if regression else max(0.05, 0.02 * init)
    losses, cut, reached = [], False, None
    for s in range(steps):
        if time.perf_counter() > deadline:
            cut = True
            break
        v = float(m.train_on_batch(xb, yb, return_dict=True)["loss"])
        losses.append(v)
        if not math.isfinite(v):
            break
        if v <= target:
            reached = s + 1
            break
    if not losses:
        row.skip("time budget spent before the first step" if cut else "no steps run")
        row.evidence["budget_limited"] = cut
        return
    final = losses[-1]
    # the accuracy in the mode the loss was measured in: training mode (BatchNormalization with the
    # batch's own statistics, as train_on_batch); in inference mode the moving statistics, barely
    # updated after a few steps, would give an accuracy that contradicts the loss
    from kerasrecipe.checks.sample import to_numpy_tree

    try:
        pred = to_numpy_tree(m(xb, training=True))
    except Exception:
        pred = predict(m, xb)
    acc = None
    if ctx.task.classification and isinstance(pred, np.ndarray):
        acc = _accuracy(ctx, pred, yb)
    best = min([v for v in losses if math.isfinite(v)], default=init)
    row.evidence.update({"samples": k, "steps": len(losses), "max_steps": steps, "initial_loss": init,
                         "final_loss": final, "best_loss": best, "target_loss": target, "reached_at": reached,
                         "accuracy": acc, "accuracy_mode": "training (as the loss: BatchNorm batch statistics)",
                         "budget_limited": cut and reached is None,
                         "loss_curve": [round(v, 5) for v in losses[:: max(1, len(losses) // 20)]],
                         "regularisation_off": "dropout/noise layers set to 0 in the clone"})
    lr_note = ""
    try:
        from kerasrecipe.optimizers import get_learning_rate

        lr_note = f" (lr {float(get_learning_rate(ctx.model.optimizer)):.3g})"
    except Exception:
        pass
    if reached is not None:
        row.summary = f"{k} samples overfit to loss {final:.3g} in {reached} steps" + (
            f", accuracy {acc:.0%}" if acc is not None else "")
        return
    rose = (not math.isfinite(final)) or final > init * 1.1
    row.summary = (f"{k} samples: loss {init:.4g} -> {final:.4g} (best {best:.4g}) after {len(losses)} steps, "
                   f"target {target:.3g}" + (f", accuracy {acc:.0%}" if acc is not None else ""))
    if cut:
        row.summary += " [cut short by the time budget]"
    finite = [v for v in losses if math.isfinite(v)]
    w = max(5, len(finite) // 4)
    falling = None
    if len(finite) >= 2 * w:
        recent, before = min(finite[-w:]), min(finite[-2 * w:-w])
        falling = (before - recent) / max(abs(before), 1e-12)
    row.evidence["recent_relative_drop"] = falling
    if rose:
        row.add("cannot_overfit", "error", f"cannot overfit {k} samples: the loss rose from {init:.4g} to "
                f"{final:.4g}{lr_note}", "the learning rate is too high (try 10x lower, lr_find D2) or the "
                "loss/labels are wrong (C4)")
    elif falling is None or falling >= STILL_FALLING:
        # stopped (budget or step limit) while the loss was still going down, or after too few
        # steps to tell: not evidence of a problem
        why = "the time budget stopped the loop" if cut else "the step limit stopped the loop"
        trend = ("too early to see a trend" if falling is None else
                 f"the loss was still falling ({falling:.0%} over the last {w} steps)")
        row.add("cannot_overfit", "info", f"inconclusive: {why} after {len(losses)} steps, {trend} "
                f"(loss {init:.4g} -> {best:.4g}, target {target:.3g})",
                "give preflight a larger time_budget or options={'overfit_steps': ...}")
    elif best > 0.5 * init:
        row.add("cannot_overfit", "error", f"cannot overfit {k} samples: the loss plateaued at {best:.4g} "
                f"(from {init:.4g}) in {len(losses)} steps{lr_note}", "a bug (inputs not reaching the output, "
                "labels not matching the loss, a frozen model) or a learning rate far off (C4)")
    else:
        row.add("cannot_overfit", "warning", f"{k} samples not overfit: the loss plateaued at {best:.4g} "
                f"(from {init:.4g}, target {target:.3g}) in {len(losses)} steps{lr_note}",
                "the model may be too small or regularised, or the learning rate too high to settle (C4)")


def _accuracy(ctx, pred, y):
    y = np.asarray(y)
    if pred.ndim > 1 and pred.shape[-1] > 1:
        yl = y.argmax(-1) if (y.ndim > 1 and y.shape[-1] > 1) else y.reshape(-1)
        return float(np.mean(pred.argmax(-1) == yl))
    thr = 0.0 if ctx.loss.from_logits else 0.5
    return float(np.mean((pred.reshape(-1) > thr) == (y.reshape(-1) > 0.5)))


# ---------------------------------------------------------------------- C5
def _widen(output_layer_names):
    """A clone_function that makes hidden Dense/Conv/RNN layers 1.5x wider (the output layer stays)."""

    def fn(layer):
        cfg = layer.get_config()
        if layer.name not in output_layer_names:
            for key in ("units", "filters"):
                if isinstance(cfg.get(key), int) and cfg[key] > 0:
                    cfg[key] = int(math.ceil(cfg[key] * 1.5)) if cfg[key] >= 4 else cfg[key] * 2
                    fn.widened.append(layer.name)
                    break
        return layer.__class__.from_config(cfg)

    fn.widened = []
    return fn


def check_capacity(ctx, row, deadline):
    if not _training_prereqs(ctx, row):
        return
    from kerasrecipe.checks.introspect import output_dense, output_operation

    outs = {getattr(output_dense(ctx.model), "name", None), getattr(output_operation(ctx.model), "name", None)}
    widen = _widen(outs)
    try:
        trainer = get_trainer(ctx)
        wide = clone_compiled(ctx.model, copy_weights=False, clone_function=widen, no_noise=True)
    except _CloneFailed as e:
        return _cannot_clone(row, e.error)
    except Exception as e:
        return _cannot_clone(row, e)
    if not widen.widened:
        return row.skip("no hidden Dense/Conv/RNN layer to widen")
    tr, _, _ = _split(ctx)
    bs = _batch_size(ctx, tr.n)
    steps = int(ctx.options.get("capacity_steps", 100))
    base = trainer.reset()
    half = time.perf_counter() + max(0.0, deadline - time.perf_counter()) / 2
    done, _, cut = _train(base, tr.x, tr.y, steps, half, bs, ctx.seed + 1)
    lb = _loss_on(base, ctx.loss, tr.x, tr.y)
    done_w, _, cut_w = _train(wide, tr.x, tr.y, max(done, 1), deadline, bs, ctx.seed + 1)
    lw = _loss_on(wide, ctx.loss, tr.x, tr.y)
    cut = cut or cut_w
    row.evidence.update({"steps": done, "wide_steps": done_w, "widened_layers": sorted(set(widen.widened)),
                         "width_factor": 1.5, "base_params": int(base.count_params()),
                         "wide_params": int(wide.count_params()), "base_train_loss": lb, "wide_train_loss": lw,
                         "budget_limited": cut})
    row.summary = (f"training loss after {done} steps: {lb:.4g} (this size) vs {lw:.4g} (1.5x wider, "
                   f"{int(wide.count_params()):,} params)")
    if done == 0:
        return row.skip("time budget spent before the first step")
    if not (math.isfinite(lw) and lw < lb):
        row.add("stuck", "warning", f"a wider model did not lower the training loss ({lb:.4g} -> {lw:.4g}): "
                "capacity is not what limits training", "look at optimisation first: learning rate (D1, D2), "
                "initialisation (E2), a bottleneck layer (C5)")
