"""Rules over the loss and learning-rate series (tips C10, G5, D4): loss stuck at the prior,
oscillating loss, slow convergence, learning rate decayed to ~0 too early.

Pure functions `rule(log) -> list[Finding]` over `meta`, `epoch` and `batch` records.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from kerasrecipe.diagnose._view import ep, finite, fmt, num, view, zero_gradient_probes
from kerasrecipe.diagnose.finding import Finding


# --------------------------------------------------------------------------- the prior's loss

def _entropy(p) -> float:
    p = np.asarray([x for x in p if x > 0], dtype=float)
    p = p / p.sum()
    return float(-(p * np.log(p)).sum())


def prior_loss(log) -> Tuple[Optional[float], str]:
    """The loss of a model that ignores its input and predicts the best constant (C1, C10).

    Cross-entropy: the entropy of the class prior -- log C for balanced classes (2.303 for 10),
    log 2 = 0.693 for balanced binary, less for imbalanced data when the run's meta record gives
    `class_prior` (class frequencies) or `class_counts`. Mean squared error: the target variance when meta gives
    `target_var` (predicting the mean). Otherwise (unknown loss or classes): None.

    With fit's class_weight / sample_weight (meta `loss_weight_mean`), `class_counts` are the weighted
    counts and the training loss is Keras's weighted sum divided by the number of samples: the prior's
    loss is then the mean weight times the entropy of the weighted class distribution.
    """
    v = view(log)
    m = v.meta
    name = v.loss_name()
    prior = m.get("class_prior")
    counts = m.get("class_counts")
    if prior is None and isinstance(counts, (list, tuple)) and len(counts) >= 2 and sum(
            c for c in counts if finite(num(c))) > 0:
        prior = [num(c) for c in counts]
    if "crossentropy" in name or name in ("bce", "cce"):
        if isinstance(prior, (list, tuple)) and len(prior) >= 2 and all(finite(num(p)) for p in prior):
            w = num(m.get("loss_weight_mean"))
            if m.get("class_prior") is None and finite(w) and w > 0 and abs(w - 1) > 1e-9:
                return w * _entropy([num(p) for p in prior]), \
                    f"mean sample weight {fmt(w, 3)} x the entropy of the weighted class prior"
            return _entropy([num(p) for p in prior]), "entropy of the class prior"
        if "binary" in name:
            return math.log(2), "log 2 (balanced binary prior)"
        c = v.num_classes()
        if c and c >= 2:
            return math.log(c), f"-log(1/{c})"
        return None, ""
    if name in ("mse", "meansquarederror") and finite(num(m.get("target_var"))) and num(m.get("target_var")) > 0:
        return num(m.get("target_var")), "target variance (predicting the mean)"
    return None, ""


PRIOR_TOL = 0.03      # |loss - prior| within 3% of the prior = "at the prior"
PRIOR_EPOCHS = 3      # for at least 3 consecutive epochs


def stuck_at_prior(log) -> List[Finding]:
    """Loss stuck at the prior's value (C10): the network learned nothing from its inputs.

    A model that predicts the class prior whatever the input scores exactly the prior's entropy
    (-log(1/C) for C balanced classes). Any real use of the inputs pulls the loss below it, so a
    training loss within 3% of that value for 3 or more consecutive epochs means nothing is being
    learned (C10: NaN/Inf upstream, labels not paired with inputs, dead network, LR far off).
    The validation loss says the same when it never goes below the prior over >= 3 epochs while
    the training loss does go below it: the model memorises labels that carry no information about
    its inputs. (When both stay above the prior the reported losses are not plain cross-entropies
    of the prior -- class weights, label smoothing -- and the comparison says nothing.)
    """
    v = view(log)
    h, how = prior_loss(v)
    if h is None or h <= 0:
        return []
    eps, tr = v.epoch_values("loss")
    if len(tr) < PRIOR_EPOCHS:
        return []
    near = [finite(x) and abs(x - h) <= PRIOR_TOL * h for x in tr]
    streak = 0
    for f in reversed(near):
        if not f:
            break
        streak += 1
    common = dict(
        causes=["labels not paired with inputs (shuffled separately, wrong order)",
                "NaN/Inf or constant inputs upstream", "dead or saturated network (no gradient reaches the weights)",
                "learning rate far too high or too low"],
        fixes=["check that x[i] and y[i] belong together and look at a few samples (C8)",
               "overfit one small batch first (C4); try lr 10x lower and 10x higher (D2)"],
        tips=["C10", "C1", "C4", "G5"], tag="stuck_at_prior",
    )
    if streak >= PRIOR_EPOCHS:
        first = len(tr) - streak
        return [Finding(
            rule="stuck_at_prior", severity="error",
            symptom=(f"training loss {fmt(tr[-1], 4)} has stayed at the prior's value {fmt(h, 4)} = {how} for {streak} "
                     f"epochs (since epoch {ep(eps[first])}): the model predicts the prior and learned nothing"),
            evidence={"prior_loss": h, "prior": how, "loss": float(tr[-1]), "epochs": streak, "since_epoch": eps[first]},
            epoch=eps[first], **common,
        )]
    if v.has("val_loss") and not v.meta.get("loss_weighted"):  # (weighted: the two losses differ in scale)
        _, va = v.epoch_values("val_loss")
        fin = va[np.isfinite(va)]
        if len(fin) >= PRIOR_EPOCHS and float(fin.min()) >= h * (1 - PRIOR_TOL) and \
                float(np.nanmin(tr)) < h * (1 - PRIOR_TOL):
            return [Finding(
                rule="stuck_at_prior", severity="error",
                symptom=(f"validation loss never went below the prior's value {fmt(h)} = {how} in {len(fin)} epochs "
                         f"(best {fmt(fin.min())}) while training loss fell to {fmt(np.nanmin(tr))}: "
                         "what the model learns does not carry to new data"),
                evidence={"prior_loss": h, "prior": how, "best_val_loss": float(fin.min()),
                          "min_train_loss": float(np.nanmin(tr))},
                epoch=eps[0], **common,
            )]
    return []


ABOVE_PRIOR = 2.0   # training loss >= 2x the prior's ...
ABOVE_EPOCHS = 2    # ... on the last 2 epochs and more


def above_prior(log) -> List[Finding]:
    """Training loss far above the prior's value (C1, G2): the model is confidently wrong.

    The prior's loss is what a model gets by ignoring its inputs (-log(1/C)); gradient descent
    reaches it within a few steps by moving the output bias alone. A training loss still twice as
    high after >= 2 epochs means saturated, confidently wrong outputs: the signature of a divergent
    step (learning rate too high; the loss then sits at the clipped -log(epsilon)) or of an output
    activation that cannot express probabilities.
    """
    v = view(log)
    h, how = prior_loss(v)
    if h is None or h <= 0 or zero_gradient_probes(v):  # (no step could move it: zero_gradients says why)
        return []
    eps, tr = v.epoch_values("loss")
    streak = 0
    for x in reversed(tr):
        if not (finite(x) and x >= ABOVE_PRIOR * h):
            break
        streak += 1
    if streak < ABOVE_EPOCHS:
        return []
    first = len(tr) - streak
    return [Finding(
        rule="above_prior", severity="warning",
        symptom=(f"training loss {fmt(tr[-1])} is {fmt(tr[-1] / h, 2)}x the prior's {fmt(h, 4)} ({how}) for {streak} "
                 f"epochs (since epoch {ep(eps[first])}): the outputs are confidently wrong"),
        evidence={"prior_loss": h, "loss": float(tr[-1]), "ratio": float(tr[-1] / h), "epochs": streak},
        causes=["a divergent step (learning rate too high) saturated the outputs",
                "an output activation that cannot express the targets' probabilities"],
        fixes=["lower the learning rate 10x (lr_find, D2) and clip gradients (D8)",
               "check the output activation against the loss (C1)"],
        tips=["C1", "G2", "D1", "D8"], tag="lr_too_high", epoch=eps[first],
    )]


LOSS_OVERFLOW = 1e3   # |negative CE| beyond this cannot come from labels: -log(eps=1e-7) is 16 per unit of label


def loss_domain(log) -> List[Finding]:
    """A cross-entropy below zero (C8, J3): the targets are outside the loss's domain.

    Cross-entropy is -sum(y log p) with 0 <= p <= 1, so it is >= 0 for any target in [0, 1]
    (one-hot rows, class ids, probabilities). A negative value can only come from targets outside
    that range (labels in {-1, 1} or {0, 255} fed to binary cross-entropy): the optimiser then
    drives the loss to minus infinity instead of fitting the labels. Keras clips probabilities at
    epsilon = 1e-7, so such a loss is bounded by about -16 per unit of label; a value below -1e3
    can only be numerical overflow of the logits: the run diverged (tag nan).
    """
    v = view(log)
    if "crossentropy" not in v.loss_name():
        return []
    eps, tr = v.epoch_values("loss")
    neg = [i for i, x in enumerate(tr) if finite(x) and x < -1e-6]
    if not neg:
        # per-batch losses are rebuilt from Keras's float32 running means: mean_k * n_k - mean_{k-1} *
        # n_{k-1} carries a rounding error of ~2^-23 x the loss x the batches so far, so a healthy
        # near-zero loss can read -3e-6 late in a long epoch; only values beyond that noise count
        scale = max([abs(x) for x in tr if finite(x)] or [1.0])
        spe = num(v.meta.get("steps_per_epoch"), 100.0)
        tol = max(1e-6, 2.0 ** -20 * max(spe, 1.0) * scale)
        pts = [b for b in v.batches if finite(num(b.get("loss"))) and num(b.get("loss")) < -tol]
        if len(pts) < 2:
            return []
        epoch, value = pts[0].get("epoch"), num(pts[0].get("loss"))
    else:
        epoch, value = eps[neg[0]], float(tr[neg[0]])
    if value < -LOSS_OVERFLOW:
        return [Finding(
            rule="loss_domain", severity="error",
            symptom=(f"cross-entropy loss is {fmt(value)} at epoch {ep(epoch)}: far beyond what clipped probabilities "
                     "allow, the logits overflowed (the run diverged)"),
            evidence={"loss": value, "epoch": epoch},
            causes=["learning rate too high: the weights and logits blew up", "exploding gradients"],
            fixes=["lower the learning rate 10x and clip gradients by global norm (D1, D8)"],
            tips=["G2", "D1", "D8"], tag="nan", epoch=epoch,
        )]
    return [Finding(
        rule="loss_domain", severity="error",
        symptom=f"cross-entropy loss is negative ({fmt(value)} at epoch {ep(epoch)}): impossible for targets in [0, 1]",
        evidence={"loss": value, "epoch": epoch},
        causes=["labels scaled or encoded wrongly for the loss (e.g. {-1, 1} or {0, 255} with binary cross-entropy)"],
        fixes=["map labels to 0/1 (binary) or 0..C-1 (sparse categorical); check y right before fit (C8)"],
        tips=["C8", "J3", "C10"], tag="label_mismatch", epoch=epoch,
    )]


def output_vs_loss(log) -> List[Finding]:
    """The output layer's activation against the cross-entropy's `from_logits` (C1, C8), read from
    the run's meta record (what preflight's output check says, for runs without a preflight).

    A softmax/sigmoid output with `from_logits=True` squashes twice: the loss sees probabilities as
    logits, its gradients shrink and it cannot fall below a floor (training stalls, which the curves
    then call underfitting). A linear output with `from_logits=False` feeds raw scores to log():
    values outside (0, 1) are clipped, and the gradients vanish wherever they are.
    """
    v = view(log)
    if "crossentropy" not in v.loss_name():
        return []
    layers = (v.meta.get("model") or {}).get("layers") or []
    if not layers:
        return []
    out = layers[-1]
    act = str(out.get("activation") or "").lower()
    from_logits = v.meta.get("from_logits")
    loss = v.meta.get("loss")
    if from_logits is True and act in ("softmax", "sigmoid"):
        symptom = (f"the output layer {out.get('name')!r} applies {act} and the loss {loss} has from_logits=True: "
                   f"the {act} is applied twice (probabilities read as logits)")
        causes = ["from_logits=True with an output that is already a probability: gradients shrink and the loss "
                  "stalls above what the model could reach"]
        fixes = [f"drop the output's {act} (a linear output) and keep from_logits=True, or set from_logits=False"]
    elif from_logits is False and act == "linear":
        symptom = (f"the output layer {out.get('name')!r} is linear (logits) but the loss {loss} expects "
                   "probabilities (from_logits=False): scores outside (0, 1) are clipped before the log")
        causes = ["a linear output with a probability loss: the clipped scores give no gradient"]
        fixes = [f"use {loss}(from_logits=True), or put a {'sigmoid' if 'binary' in v.loss_name() else 'softmax'} "
                 "on the output"]
    else:
        return []
    return [Finding(rule="output_vs_loss", severity="error", symptom=symptom,
                    evidence={"activation": act, "from_logits": from_logits, "loss": loss},
                    causes=causes, fixes=fixes, tips=["C1", "C8"], tag="wrong_loss", layer=out.get("name"))]


# --------------------------------------------------------------------------- oscillation

OSC_Z = 3.0          # an upward jump of a window mean by > 3 standard errors is not batch noise
OSC_MIN_JUMPS = 3
OSC_MIN_FRAC = 0.15


def _batch_losses(v):
    pts = [(b.get("step"), b.get("epoch"), num(b.get("loss"))) for b in v.batches]
    return [p for p in pts if finite(p[2])]


def oscillating_loss(log) -> List[Finding]:
    """Oscillating loss (G5): the loss jumps up and down far beyond minibatch noise.

    The per-batch losses are cut into consecutive windows of w batches (a quarter epoch, 4..50).
    Under healthy SGD a window's mean differs from the next by the trend (down) plus sampling
    noise whose standard error is sqrt((s1^2 + s2^2) / w), from the batches' own spread. When the
    learning rate is too high the iterate bounces across the valley for several steps at a time,
    so window means jump *up* by many standard errors. A jump above 3 standard errors happens by
    chance about once in 700 transitions; at least 3 such jumps making up >= 15% of transitions
    cannot be noise. Without batch records, epoch losses are used: >= 1/3 of epochs increasing by
    more than 10% is the same signature at a coarser scale.
    """
    v = view(log)
    pts = _batch_losses(v)
    spe = v.meta.get("steps_per_epoch")
    if len(pts) >= 24:
        w = int(min(50, max(4, (spe or 32) // 4)))
        k = len(pts) // w
        if k >= 4:
            arr = np.asarray([p[2] for p in pts[: k * w]]).reshape(k, w)
            m, s = arr.mean(1), arr.std(1, ddof=1)
            se = np.sqrt((s[:-1] ** 2 + s[1:] ** 2) / w) + 1e-12 * (np.abs(m[:-1]) + 1e-12)
            z = (m[1:] - m[:-1]) / se
            jumps = np.nonzero(z > OSC_Z)[0]
            if len(jumps) >= OSC_MIN_JUMPS and len(jumps) / (k - 1) >= OSC_MIN_FRAC:
                j0 = int(jumps[0]) + 1
                step, epoch, _ = pts[j0 * w]
                amp = float(np.median((m[jumps + 1] - m[jumps]) / np.maximum(np.abs(m[jumps]), 1e-12)))
                return [_osc_finding(
                    f"per-batch loss jumps up {len(jumps)} times in {k - 1} windows of {w} batches "
                    f"(median jump +{fmt(100 * amp)}%, > {OSC_Z:g} standard errors of batch noise), first at epoch {ep(epoch)}",
                    {"jumps": int(len(jumps)), "windows": int(k), "window": w, "median_jump_rel": amp,
                     "max_z": float(z.max())}, epoch, step)]
        return []
    eps, tr = v.epoch_values("loss")
    tr = [x for x in tr if finite(x)]
    if len(tr) >= 5:
        ups = [i for i in range(1, len(tr)) if tr[i] > tr[i - 1] * 1.10]
        if len(ups) >= 2 and len(ups) / (len(tr) - 1) >= 1 / 3:
            return [_osc_finding(
                f"epoch training loss rose by > 10% in {len(ups)} of {len(tr) - 1} epochs",
                {"increases": len(ups), "epochs": len(tr)}, eps[ups[0]], None)]
    return []


def _osc_finding(symptom, evidence, epoch, step):
    return Finding(
        rule="oscillating_loss", severity="warning", symptom="oscillating loss: " + symptom, evidence=evidence,
        causes=["learning rate too high", "batch too small (noisy gradients)", "no gradient clipping"],
        fixes=["lower the learning rate 3-10x or halve it on plateau (D3)", "increase the batch size (D6)",
               "clip gradients by global norm (D8)"],
        tips=["G5", "D1", "D3", "D6"], tag="oscillating_loss", epoch=epoch, step=step,
    )


# --------------------------------------------------------------------------- slow convergence

SLOW_MIN_EPOCHS = 4
SLOW_HALVING_EPOCHS = 10   # at the recent rate, the loss would need > 10 more epochs to halve
SLOW_STEADY = 0.75         # >= 75% of epochs decreasing
SLOW_NOT_DECEL = 0.5       # second-half rate >= half the first-half rate
SLOW_MIN_TOTAL = 0.02      # and the run lowered the loss by >= 2% in all (else: stuck, not slow)
SLOW_RATIO = 1e-4          # update/weight ratio at or below which the steps are too small (G4: ~1e-3)


def slow_convergence(log) -> List[Finding]:
    """Slow convergence (G5): the loss falls steadily but so slowly it is not near done.

    A healthy run falls fast first and then decelerates (the curve bends: a converging run). With
    too low a learning rate (or a poor initialisation) the loss instead falls along a straight
    line: steadily (>= 75% of epochs decrease), without slowing down (the second half of the run
    drops at >= half the first half's rate), and so slowly that halving the current loss would
    take more than 10 further epochs at the recent rate. The loss must have fallen by >= 2% over
    the run: below that, epoch-mean noise dominates and the run is stuck (G1's `stuck` or C10's
    `stuck_at_prior`), not slow. When the probes recorded update/weight ratios, their median must
    be <= 1e-4 (an order below G4's ~1e-3): if the weights move at a healthy pace, a slow steady
    decrease comes from a hard problem (a high loss floor), not from the step size or the
    initialisation. Needs >= 4 epochs.
    """
    v = view(log)
    eps, tr = v.epoch_values("loss")
    keep = [i for i, x in enumerate(tr) if finite(x)]
    if len(keep) < SLOW_MIN_EPOCHS or len(keep) != len(tr):
        return []
    L = np.asarray(tr, dtype=float)
    n = len(L)
    d = np.diff(L)
    steady = float(np.mean(d < 0))
    h = n // 2
    rate1 = (L[0] - L[h]) / h
    rate2 = (L[h] - L[-1]) / (n - 1 - h)
    if rate1 <= 0 or rate2 <= 0 or steady < SLOW_STEADY:
        return []
    if rate2 < SLOW_NOT_DECEL * rate1:
        return []
    if (L[0] - L[-1]) / max(abs(L[0]), 1e-12) < SLOW_MIN_TOTAL:
        return []   # a loss that moved < 2% over the run is not converging slowly: it is stuck
    halving = (abs(L[-1]) / 2) / rate2
    if halving <= SLOW_HALVING_EPOCHS:
        return []
    ratios = [num(r.get("update_ratio")) for r in v.layers]
    ratios = [x for x in ratios if finite(x) and x > 0]
    ratio = float(np.median(ratios)) if ratios else None
    if ratio is not None and ratio > SLOW_RATIO:
        return []   # the weights move at a healthy pace: the problem is hard, the step size is not at fault
    return [Finding(
        rule="slow_convergence", severity="warning",
        symptom=(f"training loss falls steadily but slowly: {fmt(L[0])} -> {fmt(L[-1])} in {n} epochs "
                 f"({fmt(rate2)}/epoch, not slowing down); halving it would take ~{fmt(halving, 2)} more epochs"),
        evidence={"update_ratio": ratio, "loss_first": float(L[0]), "loss_last": float(L[-1]), "rate_first_half": float(rate1),
                  "rate_second_half": float(rate2), "halving_epochs": float(halving), "steady_frac": steady},
        causes=["learning rate too low", "poor initialisation (too small weights, wrong output bias, C2)",
                "inputs or targets badly scaled"],
        fixes=["raise the learning rate 3-10x; run an LR range test (kerasrecipe.lr_find, D2)",
               "use He/Glorot init and set the output bias to the prior (C2, E2)"],
        tips=["G5", "D1", "D2", "C2"], tag="slow_convergence", epoch=eps[h], step=None,
    )]


# --------------------------------------------------------------------------- LR decayed too early

LR_DECAY_FACTOR = 1e-2   # LR at <= 1% of its peak counts as decayed to ~0
LR_STILL_LEARNING = 0.01 # loss was still falling by >= 1% per epoch before the decay
LR_STALLED = 0.25        # afterwards it falls at < 25% of that rate


def lr_decayed_too_early(log) -> List[Finding]:
    """Learning rate decayed to ~0 too early (D4).

    A schedule that drives the LR to <= 1% of its peak shrinks every step 100x: learning all but
    stops. That is right when the loss has converged, and wrong when the loss was still falling
    (by >= 1% per epoch over the epochs before the collapse) and then stalls (falls at < 25% of
    that rate afterwards): the schedule, not convergence, ended learning. Needs the per-epoch
    `lr` and >= 2 epochs after the collapse.
    """
    v = view(log)
    eps, lrs = v.lrs()
    _, tr = v.epoch_values("loss")
    n = len(lrs)
    if n < 4 or not np.isfinite(lrs).any():
        return []
    peak = -math.inf
    k = None
    for i, lr in enumerate(lrs):
        if not finite(lr):
            continue
        if peak > 0 and lr <= LR_DECAY_FACTOR * peak:
            k = i
            break
        peak = max(peak, lr)
    if k is None or k < 2 or n - k < 3:
        return []
    before = tr[max(0, k - 3): k + 1]
    after = tr[k:]
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        return []
    level = max(abs(float(before[-1])), 1e-12)
    rate_before = (before[0] - before[-1]) / (len(before) - 1) / level
    rate_after = (after[0] - after[-1]) / (len(after) - 1) / level
    if rate_before < LR_STILL_LEARNING or rate_after >= LR_STALLED * rate_before:
        return []
    planned = v.meta.get("epochs")
    return [Finding(
        rule="lr_decayed_too_early", severity="warning",
        symptom=(f"learning rate fell to {fmt(lrs[k])} (<= 1% of its peak {fmt(peak)}) at epoch {ep(eps[k])}"
                 + (f" of {planned}" if planned else "")
                 + f" while the loss was still falling {fmt(100 * rate_before)}%/epoch; since then "
                   f"{fmt(100 * rate_after)}%/epoch"),
        evidence={"lr": float(lrs[k]), "peak_lr": float(peak), "epoch": eps[k], "rate_before": float(rate_before),
                  "rate_after": float(rate_after)},
        causes=["a decay schedule too fast for the run length (decay steps/rate, D4)",
                "a plateau scheduler with too short patience"],
        fixes=["slow the decay (longer decay_steps, cosine over the full run) or set a floor (min_lr, D4)",
               "halve on plateau of validation loss instead of a fixed fast decay (D3)"],
        tips=["D4", "D3"], tag="lr_decayed_too_early", epoch=eps[k], step=None,
    )]
