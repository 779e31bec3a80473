"""Target checks: class balance (B9), targets that do not fit the loss, output layer / loss
mismatches, and the loss expected at initialisation (C1)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from kerasrecipe.checks.introspect import (NONNEGATIVE, PROBABILITY_LOSSES, REGRESSION_LOSSES, SQUASHING,
                                           is_integer_valued, is_onehot)

MIN_PER_CLASS = 5000      # B9
IMBALANCE_WARN = 3.0      # largest / smallest class
TARGET_SCALE_WARN = 10.0  # |mean| or std of a regression target above this: unscaled (B3)
BIAS_FIX = "kerasrecipe.init.set_output_bias(model, y_train) (C2)"


def _needs(ctx, row, *, loss=True, y=True):
    if y and ctx.train.y is None:
        row.skip("no targets given (y is None and the data yields no targets)")
        return False
    if y and not isinstance(ctx.train.y, np.ndarray):
        row.skip("multi-output targets: this check handles single-output models")
        return False
    if loss and ctx.loss is None:
        row.skip("the model is not compiled (or has several losses): compile it with one loss")
        return False
    return True


# ---------------------------------------------------------------------- class balance (B9, C2)
def class_counts(ctx):
    task = ctx.task
    if task.kind == "multilabel":
        y = ctx.train.y.reshape(len(ctx.train.y), -1).astype("float64")
        pos = y.sum(0)
        return np.stack([len(y) - pos, pos], 1), "multilabel"
    if task.labels is None:
        return None, None
    labels = task.kept_labels  # without the loss's ignore_class
    C = int(max(task.num_classes or 0, labels.max() + 1 if labels.size else 0))
    return np.bincount(np.clip(labels, 0, None), minlength=C), task.kind


def class_mass(ctx, num_classes):
    """Total sample weight per class (single-label tasks), or None without usable sample weights."""
    sw = ctx.train.sample_weight
    task = ctx.task
    labels = task.labels
    if sw is None or labels is None or not isinstance(sw, np.ndarray):
        return None
    w = np.asarray(sw, dtype="float64")
    if w.ndim > 1 and w.size == len(w):
        w = w.reshape(-1)
    if w.ndim != 1 or len(w) != len(labels) or not np.all(np.isfinite(w)):
        return None
    kept = task.kept
    return np.bincount(np.clip(labels[kept], 0, None), weights=w[kept], minlength=num_classes)


def check_class_balance(ctx, row):
    if not _needs(ctx, row, loss=False):
        return
    task = ctx.task
    if not task.classification:
        return row.skip(f"not a classification task ({task.kind})")
    counts, kind = class_counts(ctx)
    if counts is None:
        return row.skip("targets are not class labels")
    scale = 1.0
    if ctx.train.bounded and ctx.train.n_total:
        scale = ctx.train.n_total / ctx.train.n
    if kind == "multilabel":
        rates = counts[:, 1] / counts.sum(1)
        row.evidence.update({"positive_rate": rates.tolist()})
        rare = np.flatnonzero((rates < 0.05) | (rates > 0.95))
        row.summary = f"{len(rates)} labels, positive rates {rates.min():.3f}..{rates.max():.3f}"
        if rare.size:
            row.add("class_imbalance", "warning", f"labels {rare[:10].tolist()} are positive in <5% or >95% of "
                    "samples", f"set the output bias to the prior logits with {BIAS_FIX} and consider "
                    "class/sample weights")
        return
    est = counts * scale
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if present.size else float("inf")
    missing = np.flatnonzero(counts == 0).tolist()
    # what the loss sees is each class's total sample weight: weights (class_weight given as
    # sample_weight) that even it out fix the imbalance the raw counts show
    mass = class_mass(ctx, len(counts))
    wratio = ratio
    if mass is not None:
        pm = mass[counts > 0]
        wratio = float(pm.max() / pm.min()) if pm.size and pm.min() > 0 else float("inf")
    row.evidence.update({"counts": counts.tolist(), "imbalance_ratio": ratio, "missing_classes": missing,
                         "estimated_counts": est.round().astype(int).tolist() if scale != 1 else None,
                         "weighted_mass": None if mass is None else mass.tolist(),
                         "weighted_imbalance_ratio": None if mass is None else wratio})
    row.summary = (f"{len(counts)} classes, counts {int(counts.min())}..{int(counts.max())}, "
                   f"imbalance {ratio:.1f}:1" + ("" if mass is None else f" ({wratio:.1f}:1 by sample weight)"))
    if task.n_ignored:
        row.evidence["ignored"] = {"ignore_class": task.ignore_class, "samples": task.n_ignored}
        row.summary += f"; {task.n_ignored} samples labelled {task.ignore_class} (ignore_class) not counted"
    if missing:
        row.add("class_imbalance", "warning", f"classes {missing[:10]} never occur in the training sample",
                "check the label encoding (labels 0..C-1) and the split")
    if wratio >= IMBALANCE_WARN:
        weighted = "" if mass is None else f"; {wratio:.1f}:1 after the sample weights"
        row.add("class_imbalance", "warning", f"class imbalance {ratio:.1f}:1 (class {int(np.argmax(counts))} has "
                f"{int(counts.max())}, class {int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))} has "
                f"{int(present.min())}){weighted}", f"initialise the output bias to the class priors with "
                f"{BIAS_FIX}; use class_weight or resampling; judge by per-class metrics, not accuracy")
    elif ratio >= IMBALANCE_WARN:
        row.add("class_imbalance", "info", f"class imbalance {ratio:.1f}:1 in the counts, balanced to "
                f"{wratio:.1f}:1 by the sample weights", "judge by per-class metrics, not accuracy")
    if est.min() < MIN_PER_CLASS:
        row.add("class_size", "info", f"the smallest class has ~{int(est.min())} examples, fewer than ~5,000 "
                "(B9): expect limited accuracy; augmentation or more data help most (F1)")


# ---------------------------------------------------------------------- targets vs the loss
def check_targets(ctx, row):
    if not _needs(ctx, row):
        return
    y = ctx.train.y
    kind = ctx.loss.kind
    units = ctx.units
    y2 = y.reshape(len(y), -1) if y.ndim > 1 else y
    cols = 1 if y2.ndim == 1 else y2.shape[1]
    fin = y[np.isfinite(y)] if np.issubdtype(y.dtype, np.floating) else y
    ignore = ctx.loss.ignore_class if kind == "sparse_cce" else None
    n_ignored = 0
    if ignore is not None:
        n_ignored = int(np.sum(fin == ignore))
        fin = fin[fin != ignore]   # the loss skips these samples
        row.evidence["ignored"] = {"ignore_class": ignore, "samples": n_ignored}
    if fin.size == 0:
        if n_ignored:
            row.add("label_mismatch", "error", f"every target equals ignore_class={ignore}: the loss has "
                    "nothing to train on", "check the labels and the loss's ignore_class")
            return
        return row.skip("every target is NaN/Inf (see the 'finite' check)")
    ymin, ymax = float(fin.min()), float(fin.max())
    row.evidence.update({"loss": ctx.loss.name, "target_shape": list(y.shape), "target_dtype": str(y.dtype),
                         "min": ymin, "max": ymax, "output_units": units})
    row.summary = f"targets {list(y.shape)} {y.dtype} in [{ymin:.4g}, {ymax:.4g}] for {ctx.loss.name}"
    if n_ignored:
        row.summary += f" ({n_ignored} of {y.size} labelled {ignore} = ignore_class, skipped by the loss)"
    if kind == "sparse_cce":
        if cols > 1:
            if is_onehot(y2):
                row.add("wrong_loss", "error", f"one-hot targets ({cols} columns) given to a sparse categorical "
                        "loss, which expects integer class ids", "use loss='categorical_crossentropy', or pass "
                        "y.argmax(1) as targets")
            else:
                row.add("label_mismatch", "error", f"targets have {cols} columns; a sparse categorical loss "
                        "expects one integer class id per sample", "pass class ids 0..C-1, shape (n,)")
            return
        if not is_integer_valued(fin):
            row.add("label_mismatch", "error", "targets are not integers: a sparse categorical loss expects "
                    "class ids 0..C-1", "encode labels with sklearn LabelEncoder / np.unique(y, "
                    "return_inverse=True)")
            return
        if units is not None and (ymin < 0 or ymax >= units):
            row.add("label_mismatch", "error", f"labels span {int(ymin)}..{int(ymax)} but the output has {units} "
                    f"units (valid ids 0..{units - 1})", "re-encode labels to 0..C-1, or give the output "
                    f"{int(ymax) + 1} units")
    elif kind in ("cce", "cce_focal"):
        if cols == 1:
            if is_integer_valued(fin) and units and units > 1:
                row.add("wrong_loss", "error", "integer class ids given to categorical_crossentropy, which "
                        "expects one-hot rows", "use loss='sparse_categorical_crossentropy', or "
                        "keras.utils.to_categorical(y)")
            else:
                row.add("label_mismatch", "error", f"one target column for a categorical loss over {units} "
                        "outputs", "pass one-hot (or probability) rows with one column per class")
            return
        if units is not None and cols != units:
            row.add("label_mismatch", "error", f"targets have {cols} columns but the output has {units} units",
                    "make the last layer's units equal the number of classes")
        if ymin < 0 or ymax > 1 or not np.allclose(y2.astype("float64").sum(1), 1.0, atol=1e-3):
            row.add("label_mismatch", "error", "categorical targets must be non-negative rows summing to 1 "
                    "(one-hot or probabilities)", "one-hot encode labels with keras.utils.to_categorical")
    elif kind in ("bce", "bce_focal"):
        if ymin < 0 or ymax > 1:
            if is_integer_valued(fin) and ymax > 1:
                row.add("wrong_loss", "error", f"binary cross-entropy with integer labels up to {int(ymax)}: "
                        "these are multi-class labels", "use sparse_categorical_crossentropy and a softmax "
                        f"output of {int(ymax) + 1} units")
            else:
                row.add("label_mismatch", "error", f"binary cross-entropy needs targets in [0, 1]; they span "
                        f"[{ymin:.4g}, {ymax:.4g}]", "map labels to 0/1 (e.g. (y == positive).astype(int))")
        if units is not None and cols != units:
            row.add("label_mismatch", "error", f"targets have {cols} column(s) but the output has {units} units",
                    "one sigmoid unit per binary label")
    elif kind in REGRESSION_LOSSES:
        if units is not None and cols != units:
            row.add("label_mismatch", "error", f"targets have {cols} column(s) but the output has {units} units",
                    "the last layer needs one unit per target column")
        f = fin.astype("float64")
        mean, std = float(np.mean(f)), float(np.std(f))
        row.evidence.update({"mean": mean, "std": std})
        if max(abs(mean), std) > TARGET_SCALE_WARN:
            row.add("unscaled_target", "warning", f"regression targets are not scaled (mean {mean:.4g}, std "
                    f"{std:.4g}): the initial loss is ~{mean ** 2 + std ** 2:.4g} and the output layer must "
                    "learn a large offset", "standardise y ((y - mean) / std, invert after predict), or at "
                    f"least set the output bias to the mean with {BIAS_FIX}")
        elif 0 < std < 1e-3 and abs(mean) < 1e-2:
            row.add("unscaled_target", "warning", f"regression targets are tiny (std {std:.3g}): the loss "
                    "is near zero from the start", "standardise y")
    else:
        return row.skip(f"no target rules for the loss {ctx.loss.name!r}")


# ---------------------------------------------------------------------- output layer vs loss
def check_output_loss(ctx, row):
    if not _needs(ctx, row, y=False):
        return
    if not ctx.single_output:
        return row.skip("multi-output model: this check handles single-output models")
    act, units, loss = ctx.activation, ctx.units, ctx.loss
    row.evidence.update({"activation": act, "activation_guessed": ctx.activation_guessed, "units": units,
                         "loss": loss.name, "from_logits": loss.from_logits})
    row.summary = f"output {units} x {act}, loss {loss.name}" + (" (from_logits)" if loss.from_logits else "")
    if act is None:
        return row.skip("cannot tell the output activation")
    k = loss.kind
    prob_act = act in ("softmax", "sigmoid")
    if act == "softmax" and units == 1:
        row.add("wrong_output_activation", "error", "softmax over a single unit always outputs 1.0: the loss "
                "cannot change", "use Dense(1, activation='sigmoid') with binary_crossentropy, or Dense(C, "
                "activation='softmax') with a categorical loss")
        return
    if k in PROBABILITY_LOSSES:
        if loss.from_logits and prob_act:
            row.add("wrong_loss", "error", f"the output already is a probability ({act}) but the loss has "
                    "from_logits=True: the squashing is applied twice and gradients shrink",
                    "set from_logits=False, or drop the output activation (better: linear output + from_logits=True)")
        elif not loss.from_logits and act == "linear":
            row.add("wrong_loss", "error", "the output is linear (logits) but the loss expects probabilities "
                    "(from_logits=False): log of negative values / values > 1",
                    f"use {loss.name}(from_logits=True), or a {'sigmoid' if k.startswith('bce') else 'softmax'} output")
        elif not prob_act and not loss.from_logits:
            row.add("wrong_output_activation", "error", f"a {act} output with a probability loss: outputs are not "
                    "probabilities (0 gives log(0), values above 1 are invalid)",
                    "use softmax (categorical) or sigmoid (binary) on the output, or a linear output with "
                    "from_logits=True")
        elif k in ("cce", "sparse_cce", "cce_focal") and act == "sigmoid" and (units or 0) > 1:
            row.add("wrong_output_activation", "error", f"sigmoid over {units} units with {loss.name}: the "
                    "outputs do not sum to 1, so the categorical loss is not a likelihood",
                    "use softmax for mutually exclusive classes (or binary_crossentropy for multi-label)")
        elif k in ("bce", "bce_focal") and act == "softmax":
            row.add("wrong_loss", "error", f"softmax over {units} units with binary cross-entropy",
                    "for one label per sample use categorical_crossentropy (sparse_ for integer ids); for "
                    "multi-label use a sigmoid output")
    elif k in REGRESSION_LOSSES:
        y = ctx.single_output_y
        fin = None if y is None else y[np.isfinite(y)] if np.issubdtype(y.dtype, np.floating) else y
        if act == "softmax" and (units or 0) > 1:
            row.add("wrong_loss", "warning", f"softmax output with a regression loss ({loss.name})",
                    "for classification use a categorical cross-entropy; for regression a linear output")
        elif act in SQUASHING and fin is not None and fin.size:
            lo, hi = SQUASHING[act]
            ymin, ymax = float(fin.min()), float(fin.max())
            row.evidence.update({"target_min": ymin, "target_max": ymax, "output_range": [lo, hi]})
            if ymin < lo - 1e-6 or ymax > hi + 1e-6:
                row.add("wrong_output_activation", "error", f"a {act} output can only produce [{lo:g}, {hi:g}] "
                        f"but the regression targets span [{ymin:.4g}, {ymax:.4g}]",
                        "use a linear output for unbounded targets (and standardise y)")
        elif act in NONNEGATIVE and fin is not None and fin.size and float(fin.min()) < 0:
            row.add("wrong_output_activation", "error", f"a {act} output cannot be negative but "
                    f"{float(np.mean(fin < 0)):.0%} of the targets are", "use a linear output")
    else:
        return row.skip(f"no output/loss rules for the loss {loss.name!r}")


# ---------------------------------------------------------------------- C1: the expected initial loss
def _entropy(p):
    p = np.asarray(p, dtype="float64")
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _binary_entropy(p):
    p = np.clip(np.asarray(p, dtype="float64"), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def expected_initial_loss(loss_kind: str, task, y: np.ndarray, units: Optional[int]) -> Optional[dict]:
    """The loss a freshly initialised model should show (C1).

    Returns {"uniform": value with uninformative outputs (zero bias), "prior": value when the
    output bias is set to the priors / target mean (C2), "formula": text} or None if unknown.
    """
    if loss_kind in ("sparse_cce", "cce") and task.kind == "multiclass":
        C = units if units and units > 1 else task.num_classes
        if not C or C < 2:
            return None
        if loss_kind == "cce" and y.ndim == 2 and not is_onehot(y):
            p = np.clip(y.astype("float64").mean(0), 0, None)  # soft labels: cross-entropy with the mean
            yf = y.astype("float64")
            return {"uniform": math.log(C), "prior": float(-(yf * np.log(np.clip(p, 1e-12, None))).sum(1).mean()),
                    "formula": f"-log(1/{C}) = {math.log(C):.4f}; cross-entropy to the mean soft label"}
        labels = task.kept_labels  # without the loss's ignore_class
        if labels is None or not labels.size:
            return None
        p = np.bincount(np.clip(labels, 0, C - 1), minlength=C) / len(labels)
        return {"uniform": math.log(C), "prior": _entropy(p),
                "formula": f"-log(1/{C}) = {math.log(C):.4f}; prior entropy H(p) = {_entropy(p):.4f}"}
    if loss_kind == "bce":
        yf = y.reshape(len(y), -1).astype("float64")
        if not (np.all(yf >= 0) and np.all(yf <= 1)):
            return None
        p = yf.mean(0)
        h = float(np.mean(_binary_entropy(p)))
        return {"uniform": math.log(2), "prior": h,
                "formula": f"log 2 = {math.log(2):.4f}; prior entropy H(p={float(np.mean(p)):.3f}) = {h:.4f}"}
    if loss_kind == "mse":
        yf = y.reshape(len(y), -1).astype("float64")
        return {"uniform": float(np.mean(yf ** 2)), "prior": float(np.mean(yf.var(0))),
                "formula": "mean(y^2) with zero outputs; var(y) with the output bias at the mean"}
    if loss_kind == "mae":
        yf = y.reshape(len(y), -1).astype("float64")
        return {"uniform": float(np.mean(np.abs(yf))), "prior": float(np.mean(np.abs(yf - np.median(yf, 0)))),
                "formula": "mean|y| with zero outputs; mean|y - median(y)| with the bias at the median"}
    return None
