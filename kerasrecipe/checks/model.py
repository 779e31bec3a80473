"""Model checks that do not train: parameter count (C7), initial loss (C1), batch independence (C6)."""
from __future__ import annotations

import math

import numpy as np

from kerasrecipe.checks.sample import take
from kerasrecipe.checks.targets import BIAS_FIX, _needs, expected_initial_loss

PARAMS_PER_SAMPLE_WARN = 100.0   # C7: "don't fit 1M parameters on 10k samples"


# ---------------------------------------------------------------------- C7
def check_params(ctx, row):
    _ = ctx.pred0  # builds an unbuilt model, like fit would
    params = int(ctx.model.count_params())
    trainable = int(sum(int(np.prod(v.shape)) for v in ctx.model.trainable_variables))
    n = ctx.train.n_total or ctx.train.n
    ratio = params / max(n, 1)
    per_layer = sorted(((layer.name, int(layer.count_params())) for layer in getattr(ctx.model, "layers", [])
                        if layer.built), key=lambda t: -t[1])[:3]
    row.evidence.update({"params": params, "trainable_params": trainable, "samples": n,
                         "samples_known": ctx.train.n_total is not None, "params_per_sample": ratio,
                         "largest_layers": dict(per_layer)})
    approx = "" if ctx.train.n_total is not None else " (at least; the data size is unknown)"
    row.summary = f"{params:,} parameters ({trainable:,} trainable) for {n:,} samples{approx}: {ratio:.3g} per sample"
    if ratio > PARAMS_PER_SAMPLE_WARN:
        reg = regularisation(ctx.model)
        row.evidence["regularisation"] = reg
        if reg:
            # the warning's own remedy is already in place: advice only
            row.add("overfitting", "info", row.summary + ": the model can memorise the data; it is regularised "
                    f"({', '.join(reg[:4])}), watch the validation loss", "early stopping (C7, F4)")
        else:
            row.add("overfitting", "warning", row.summary + ": the model can memorise the data",
                    "expect overfitting: use a smaller model, more data or augmentation, weight decay/dropout, "
                    "early stopping (C7, F1, F4)")


_DROPOUT = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
            "GaussianDropout", "GaussianNoise")


def regularisation(model) -> list:
    """What regularises the model: dropout/noise layers with a non-zero rate, weight/activity
    regularizers, optimizer weight decay (short descriptions; empty when none)."""
    from kerasrecipe.checks.context import all_layers

    out = []
    for layer in all_layers(model):
        name = type(layer).__name__
        if name in _DROPOUT and (getattr(layer, "rate", 0) or getattr(layer, "stddev", 0)):
            out.append(f"{name}({getattr(layer, 'rate', None) or getattr(layer, 'stddev', None):g})")
        for attr in ("kernel_regularizer", "activity_regularizer", "recurrent_regularizer"):
            if getattr(layer, attr, None) is not None:
                out.append(f"{layer.name}.{attr}")
    wd = getattr(getattr(model, "optimizer", None), "weight_decay", None)
    try:
        if wd is not None and float(wd) > 0:
            out.append(f"weight_decay={float(wd):g}")
    except (TypeError, ValueError):
        pass
    return out


# ---------------------------------------------------------------------- C1
def _has_bias_at_prior(ctx):
    from kerasrecipe.checks.introspect import output_dense

    layer = output_dense(ctx.model)
    if layer is None or getattr(layer, "bias", None) is None:
        return None
    b = np.asarray(layer.bias.numpy() if hasattr(layer.bias, "numpy") else layer.bias)
    return bool(np.any(np.abs(b) > 1e-8))


# C1, classification: what an overconfident init costs is the EXCESS loss in nats (about
# var(logit difference)/8 for a sigmoid output, s^2/2 for a wide softmax with logit std s); a ratio
# alone depends on the number of classes: 1.5x of log 2 is only +0.35 nat, ordinary for a
# Glorot/He-initialised binary head on normalised inputs and unlearned in the first steps, while
# 1.5x of log 10 is +1.15 nat. So the warning also needs an excess of 1 nat; the error
# (ratio > 5) stays ratio-based.
EXCESS_WARN_NATS = 1.0


def check_initial_loss(ctx, row):
    if not _needs(ctx, row):
        return
    if not ctx.single_output or not isinstance(ctx.pred0, np.ndarray):
        return row.skip("multi-output model")
    y = ctx.y_probe
    exp = expected_initial_loss(ctx.loss.kind, ctx.task, y, ctx.units)
    if exp is None:
        return row.skip(f"no expected initial value for the loss {ctx.loss.name!r} on this task")
    try:
        measured = ctx.loss.mean(y, ctx.pred0)
    except Exception as e:  # shape mismatches are reported by the targets check
        return row.skip(f"the loss cannot be computed on the targets ({type(e).__name__}: {str(e)[:120]})")
    uni, pri = exp["uniform"], exp["prior"]
    bias_set = _has_bias_at_prior(ctx)
    ref_name = "prior" if abs(measured - pri) <= abs(measured - uni) else "uniform"
    ref = pri if ref_name == "prior" else uni
    row.evidence.update({"measured": measured, "expected_uniform": uni, "expected_prior": pri,
                         "reference": ref_name, "formula": exp["formula"], "output_bias_set": bias_set,
                         "samples": int(len(y))})
    row.summary = f"initial loss {measured:.4g}; expected {exp['formula']}"
    regression = ctx.loss.kind in ("mse", "mae")
    if not math.isfinite(measured):
        row.add("initial_loss", "error", f"the initial loss is {measured}: NaN/Inf before any training",
                "check the inputs for NaN/Inf and the loss for log(0) (probabilities with from_logits=False "
                "reaching 0) (G2)")
        return
    if ref <= 0:
        return
    ratio = measured / ref
    row.evidence["ratio"] = ratio
    if not regression:
        row.evidence["excess_nats"] = measured - ref
    hi_warn, hi_fail = (3.0, 100.0) if regression else (1.5, 5.0)
    fix = ("scale the inputs (B3) and use the default initialisers (He/Glorot, E2); set the output bias with "
           f"{BIAS_FIX}")
    cause = ""
    if ratio > hi_warn:
        from kerasrecipe.checks.data import NORMALIZE_FIX, SCALE_WARN, input_scale

        try:
            scale = input_scale(ctx)
        except Exception:  # the input_scale row reports what goes wrong there
            scale = 0.0
        if scale > SCALE_WARN:
            row.evidence["input_scale"] = scale
            cause = (f"; the likely cause: the inputs are not normalised (feature means/stds up to {scale:.3g}, "
                     "see input_scale)")
            fix = NORMALIZE_FIX + f"; then set the output bias with {BIAS_FIX}"
    if ratio > hi_fail:
        row.add("initial_loss", "error", f"the initial loss {measured:.4g} is {ratio:.1f}x the expected "
                f"{ref:.4g}: the outputs at initialisation are far too confident or far off" + cause, fix)
    elif ratio > hi_warn and (regression or measured - ref > EXCESS_WARN_NATS):
        row.add("initial_loss", "warning", f"the initial loss {measured:.4g} is {ratio:.1f}x the expected "
                f"{ref:.4g} ({exp['formula']})" + cause, fix)
    elif ratio < 0.5 and not regression:
        row.add("initial_loss", "info", f"the initial loss {measured:.4g} is well below the prior's {ref:.4g}: "
                "the model is already trained (fine if pretrained), or the targets leak into the inputs")
    if regression:
        yf = y.reshape(len(y), -1).astype("float64")
        if float(np.mean(yf.mean(0) ** 2)) > float(np.mean(yf.var(0))) and not bias_set:
            row.add("initial_loss", "info", f"the output starts near 0 but the target mean is "
                    f"{float(np.mean(yf.mean(0))):.4g}: the first steps only learn the offset",
                    f"set the output bias to the target mean with {BIAS_FIX}")
    elif ref_name == "uniform" and pri < 0.8 * uni:
        row.add("initial_loss", "info", f"imbalanced targets: the loss starts at ~{uni:.4g} = the uniform guess, "
                f"while predicting the priors gives {pri:.4g}", f"initialise the output bias with {BIAS_FIX}")


# ---------------------------------------------------------------------- C6
def check_batch_independence(ctx, row):
    """C6 by perturbation: change one sample's input and see whether any OTHER sample's output
    moves. In inference mode each output depends on its own input only, so the other rows must
    come out bit for bit the same; any change is samples mixed across the batch.

    A forward pass with the same chunk shape as every other preflight forward pass (`predict`),
    so nothing new is traced or compiled (a gradient w.r.t. the inputs, the textbook form of
    this check, costs a backward compile: ~7 s on JAX on a 2-core CPU). Same verdicts: a
    dependence shows in the outputs exactly when it shows in the input gradient, except for a
    dependence that is flat at this point (a max over the batch that sample i does not win),
    which neither a gradient nor a perturbation of one sample sees."""
    from kerasrecipe.checks.context import predict

    x = ctx.single_input
    if x is None:
        return row.skip("multi-input model: checked for single-input models")
    dtype = np.asarray(x).dtype
    if ctx.id_inputs or dtype.kind not in "fiu":
        return row.skip("integer ids (read by an Embedding/lookup layer): a small perturbation of them is "
                        "not defined")
    if not ctx.single_output:
        return row.skip("multi-output model")
    rows = ctx.probe_idx[:256]        # the first chunk of pred0's forward passes: same shape
    B = len(rows)
    if B < 2:
        return row.skip("needs at least 2 samples")
    xb = np.array(take(x, rows), dtype=np.asarray(x).dtype, copy=True)
    base = np.asarray(ctx.pred0[:B], dtype="float64").reshape(B, -1)
    j = B // 2                          # one sample in the middle: earlier and later rows are watched
    rng = np.random.default_rng(ctx.seed)
    flat = xb.reshape(B, -1).astype("float64")
    scale = flat.std(0) + 0.1 * (np.abs(flat).mean() + 1e-3)
    new = flat[j] + scale * rng.standard_normal(flat.shape[1])
    if dtype.kind in "iu":  # integer features (counts, codes): a perturbation of at least 1
        info = np.iinfo(dtype)
        new = np.clip(flat[j] + np.where(new >= flat[j], 1, -1) * np.maximum(1, np.round(np.abs(new - flat[j]))),
                      info.min, info.max)
    xb[j] = new.reshape(xb.shape[1:]).astype(xb.dtype)
    out = np.asarray(predict(ctx.model, xb), dtype="float64").reshape(B, -1)
    delta = np.abs(out - base)
    delta[~np.isfinite(delta)] = np.inf
    own = float(delta[j].max()) if delta.shape[1] else 0.0
    others = np.delete(delta, j, axis=0)
    leak = float(others.max()) if others.size else 0.0
    out_scale = float(np.nanmax(np.abs(base))) if base.size else 0.0
    rel = leak / max(own, 1e-12)
    bn = ctx.has_layer("BatchNormalization", "GroupNormalization", "SyncBatchNormalization")
    row.evidence.update({"batch": B, "mode": "inference", "method": "perturb one sample, compare the others",
                         "own_change_max": own, "other_change_max": leak, "relative_leak": rel,
                         "has_batchnorm": bn,
                         "note": "run in inference mode: BatchNormalization in training mode normalises with the "
                                 "batch's own mean and variance, so samples legitimately interact there; in "
                                 "inference mode it uses fixed statistics and any cross-sample effect is a bug"})
    if leak > 1e-6 * max(1.0, out_scale) and rel > 1e-5:
        row.summary = (f"changing sample {j}'s input changed other samples' outputs by up to {leak:.3g} "
                       f"(its own by {own:.3g}): samples are mixed across the batch")
        row.add("batch_mixing", "error", row.summary,
                "look for ops over axis 0 (mean/sum/softmax over the batch), reshapes/transposes that move the "
                "batch axis, or a view()/reshape across samples (C6)")
    elif own == 0.0 and _saturated(ctx, base[j]):
        row.skip(f"inconclusive: sample {j}'s output is saturated (the {ctx.activation} output sits at its "
                 "bound), so no change of its input can show; unnormalised inputs do this (see input_scale)")
    elif own == 0.0:
        row.summary = "the output does not depend on the inputs at all (changing a sample's input changes nothing)"
        row.add("no_better_than_baseline", "warning", row.summary + ": the inputs do not reach the output",
                "check for layers that zero, mask or detach the input (stop_gradient)")
    else:
        row.summary = (f"independent: changing one sample's input changes only its own output (batch of {B}, "
                       "inference mode" + (", BatchNorm uses moving statistics" if bn else "") + ")")


def _saturated(ctx, out) -> bool:
    """Whether a probability output is pinned at its bounds (0/1), where small changes vanish."""
    from kerasrecipe.checks.introspect import SQUASHING

    act = ctx.activation
    if act not in SQUASHING or not np.size(out):
        return False
    lo, hi = SQUASHING[act]
    out = np.asarray(out, dtype="float64")
    return bool(np.all((np.abs(out - lo) < 1e-6) | (np.abs(out - hi) < 1e-6)))
