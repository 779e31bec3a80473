"""Rules over the network's internals (tips G2, G3, G4): non-finite numbers, dead ReLUs,
saturated units, vanishing and exploding gradients, update/weight ratios.

Every rule is a pure function `rule(log) -> list[Finding]` over the run log's `layer`, `grad`,
`batch`, `epoch` and `event` records (schema: kerasrecipe/runlog.py). The thresholds are
module constants; each docstring gives the mechanism that sets it.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from kerasrecipe.diagnose._view import ep, finite, fmt, is_relu, is_saturating, num, view, zero_gradient_probes
from kerasrecipe.diagnose.finding import Finding

# --------------------------------------------------------------------------- NaN / Inf

_NAN_CAUSES = {
    "input": ["NaN/Inf values in the input data"],
    "targets": ["NaN/Inf values in the training targets"],
    "activation": [
        "weights blew up (learning rate too high) and a layer's output overflowed",
        "an operation that overflows or divides by zero inside the model",
    ],
    "gradient": ["exploding gradients (no clipping, too high learning rate, recurrent net)"],
    "weights": ["an update with a huge gradient or learning rate pushed weights to Inf/NaN"],
    "validation": [
        "NaN/Inf in the validation inputs or targets (the training loss is finite)",
        "validation targets outside the loss's domain (a class index >= the number of outputs, "
        "negative values for a log loss)",
    ],
    "loss": [
        "log(0) or a division by zero in the loss (probabilities exactly 0 or 1; custom loss without epsilon)",
        "NaN/Inf in the targets, or targets outside the loss's domain",
        "learning rate too high: the loss overflowed before the activations did",
    ],
}


def nan_inf(log) -> List[Finding]:
    """NaN/Inf anywhere (G2), with its origin: the first layer and step that went non-finite.

    The origin is read, in order of reliability, from the NaN guard's `event` records (which name
    where the non-finite value was first seen), from the health probes (first probe, lowest layer
    index whose activations, gradient or weights are non-finite), then from the losses. A single
    non-finite number propagates to everything downstream within a step, so the *first* place it
    appears is the evidence that distinguishes bad data (input layer), overflow (a deep layer),
    exploding gradients (gradients first) and log(0) in the loss (only the loss).
    """
    v = view(log)
    origin = None  # dict(where, layer, epoch, step, detail)
    for e in v.events:
        if str(e.get("event", "")).lower() in ("nan", "inf", "nonfinite", "non_finite"):
            origin = {
                "where": e.get("where") or "loss",
                "layer": e.get("layer"),
                "epoch": e.get("epoch"),
                "step": e.get("step"),
                "detail": e.get("message"),
            }
            break
    probe_origin = None
    for step, epoch, recs in v.probes():
        for r in recs:
            act = r.get("act") or {}
            where = None
            if (act.get("nan") or 0) > 0 or (act.get("inf") or 0) > 0:
                where = "activation"
            elif r.get("grad_norm") is not None and not finite(num(r.get("grad_norm"))):
                where = "gradient"
            elif r.get("weight_norm") is not None and not finite(num(r.get("weight_norm"))):
                where = "weights"
            if where:
                probe_origin = {"where": where, "layer": r.get("layer"), "epoch": epoch, "step": step,
                                "index": r.get("index"),
                                "detail": f"nan={act.get('nan', 0)}, inf={act.get('inf', 0)}"}
                break
        if probe_origin:
            break
    loss_origin = None
    for b in v.batches:
        if b.get("loss") is not None and not finite(num(b.get("loss"))):
            loss_origin = {"where": "loss", "layer": None, "epoch": b.get("epoch"), "step": b.get("step"),
                           "detail": f"batch loss = {b.get('loss')}"}
            break
    if loss_origin is None:
        for r in v.epochs:
            lv = (r.get("logs") or {}).get("loss")
            if lv is not None and not finite(num(lv)):
                loss_origin = {"where": "loss", "layer": None, "epoch": r.get("epoch"), "step": r.get("step"),
                               "detail": f"epoch loss = {lv}"}
                break
    grad_origin = None
    for g in v.grads:
        if g.get("global_norm") is not None and not finite(num(g.get("global_norm"))):
            grad_origin = {"where": "gradient", "layer": None, "epoch": g.get("epoch"), "step": g.get("step"),
                           "detail": f"global gradient norm = {g.get('global_norm')}"}
            break
    candidates = [o for o in (probe_origin, grad_origin, loss_origin) if o]
    if origin is None and not candidates:
        return []
    if origin is None:
        origin = min(candidates, key=lambda o: (o["step"] if o["step"] is not None else 1 << 60,
                                                 0 if o["where"] != "loss" else 1))
    elif not origin.get("layer") and origin["where"] not in ("input", "targets", "validation") and probe_origin and (
        probe_origin["step"] is not None and origin.get("step") is not None and probe_origin["step"] <= origin["step"]
    ):
        origin = probe_origin
    where = origin["where"]
    if where == "activation" and origin.get("index") == 0:
        where_key = "input"
    else:
        where_key = where if where in _NAN_CAUSES else "loss"
    # did the gradient norm grow by orders of magnitude before the blow-up?
    norms = [num(g.get("global_norm")) for g in v.grads if finite(num(g.get("global_norm")))]
    growth = None
    if len(norms) >= 4:
        growth = max(norms) / max(float(np.median(norms[: max(2, len(norms) // 4)])), 1e-30)
    causes = list(_NAN_CAUSES[where_key])
    if growth is not None and growth >= 1e2 and where_key not in ("gradient", "validation", "input", "targets"):
        causes.insert(0, f"exploding gradients: the global gradient norm grew {fmt(growth)}x before the blow-up")
    layer = origin.get("layer")
    at = f" in layer '{layer}'" if layer else ""
    place = "validation loss" if where == "validation" else where
    symptom = (f"non-finite values (NaN/Inf) first seen in the {place}{at} at step {origin.get('step')}"
               f" (epoch {ep(origin.get('epoch'))})")
    if origin.get("detail"):
        symptom += f": {origin['detail']}"
    fixes = {
        "input": "clean the data: replace/remove NaN/Inf inputs (np.isfinite), then normalise (B3)",
        "targets": "clean the targets: drop or fix the samples whose targets are NaN/Inf (np.isfinite) (B1)",
        "loss": "clip probabilities (epsilon) before log, use from_logits=True losses, check targets; lower the LR",
        "gradient": "clip gradients by global norm (clipnorm=1..10, D8) and lower the learning rate",
        "validation": "check the validation data: np.isfinite on inputs and targets, targets in the loss's "
                      "range (B1); it went through a different pipeline than the training data?",
    }.get(where_key, "lower the learning rate 10x and clip gradients by global norm (D8)")
    return [Finding(
        rule="nan_inf", severity="error", symptom=symptom,
        evidence={"where": where, "layer": layer, "epoch": origin.get("epoch"), "step": origin.get("step"),
                  "grad_norm_growth": growth, "detail": origin.get("detail")},
        causes=causes, fixes=[fixes] + ([] if where_key == "validation" else
                                         ["keep the NaN guard on: it stops the run and restores the last finite weights"]),
        tips=["G2", "C10", "D8"], tag="nan", epoch=origin.get("epoch"), step=origin.get("step"), layer=layer,
    )]


# --------------------------------------------------------------------------- helpers

def _below_fraction(act: dict, exp: int) -> Optional[float]:
    """Share of finite outputs with |a| < 2**exp, from a probe's log2 histogram (the kernels'
    layout, kerasrecipe/kernels/_hist.py: the middle bin |a| < 2**LOG2_EMIN, then one bin per
    power of two on each side); None without a histogram of that layout."""
    from kerasrecipe.kernels._hist import LOG2_EMIN, N_LOG_BINS, N_MAG

    hist = act.get("hist")
    if not isinstance(hist, (list, tuple)) or len(hist) != N_LOG_BINS:
        return None
    total = float(sum(hist))
    if total <= 0:
        return None
    k = exp - LOG2_EMIN  # magnitude bins [2**(EMIN + m), 2**(EMIN + m + 1)) with m < k lie below 2**exp
    return float(sum(hist[N_MAG - k:N_MAG + k + 1])) / total


def _current_streak(flags: List[bool]) -> int:
    """Length of the run of True at the end of `flags`."""
    n = 0
    for f in reversed(flags):
        if not f:
            break
        n += 1
    return n


def _layer_series(v, pick, keep=lambda r: True):
    """{layer: [(step, epoch, index, value, rec)]} over the probes, for layers passing `keep`."""
    out = {}
    for step, epoch, recs in v.probes():
        for r in recs:
            if not keep(r):
                continue
            val = pick(r)
            if val is None:
                continue
            out.setdefault(r.get("layer"), []).append((step, epoch, r.get("index"), val, r))
    return out


# --------------------------------------------------------------------------- dead ReLU

DEAD_ZERO_FRAC = 0.95   # zero fraction of ReLU outputs on the probe batch that means "mostly dead"
DEAD_UNIT_FRAC = 0.5    # fraction of units zero on *every* probe sample (if the probe measures it)
PERSIST_PROBES = 2      # a state must hold on the last 2 probes (not one unlucky probe batch)


def dead_relu(log) -> List[Finding]:
    """Dead ReLU units (G3): ReLU outputs that are zero for (almost) every probe sample.

    A ReLU unit whose pre-activation is negative for every input outputs 0 and passes a zero
    gradient, so nothing can revive it: the unit is lost for good. With live units firing for
    about half the inputs (symmetric pre-activations), a layer's zero fraction z implies a dead
    fraction of about 2z - 1; z >= 0.95 means ~90% of the layer is dead (warning). A layer whose
    maximum output over the probe batch is 0 is entirely dead and cuts the gradient to every
    layer below it (error). If the probe also records `dead_frac` (units zero on all probe
    samples), that direct measure is used: >= 0.5 warning, >= 0.99 error. The state must hold on
    the last two probes, so one odd probe batch cannot raise it.
    """
    v = view(log)

    def state(r):
        act = r.get("act") or {}
        if not act or (act.get("count") or 0) == 0:
            return None
        mx = num(act.get("max"))
        zf = num(act.get("zero_frac"))
        dead = act.get("dead_frac")
        if dead is not None and finite(num(dead)):
            d = num(dead)
            sev = "error" if d >= 0.99 or (finite(mx) and mx <= 0) else ("warning" if d >= DEAD_UNIT_FRAC else None)
            return sev, d, zf, mx
        if not finite(zf):
            return None
        all_dead = (finite(mx) and mx <= 0) or zf >= 0.999
        sev = "error" if all_dead else ("warning" if zf >= DEAD_ZERO_FRAC else None)
        return sev, (1.0 if all_dead else max(0.0, 2 * zf - 1)), zf, mx

    series = _layer_series(v, state, keep=is_relu)
    hits = []
    for layer, pts in series.items():
        flags = [p[3][0] is not None for p in pts]
        streak = _current_streak(flags)
        if streak < min(PERSIST_PROBES, len(pts)):
            continue
        first = pts[len(pts) - streak]
        last = pts[-1]
        sev = "error" if all(p[3][0] == "error" for p in pts[-min(streak, PERSIST_PROBES):]) else "warning"
        hits.append((first[2] if first[2] is not None else 1 << 30, layer, sev, first, last))
    if not hits:
        return []
    hits.sort(key=lambda h: h[0])
    idx, layer, sev, first, last = hits[0]
    sev = "error" if any(h[2] == "error" for h in hits) else "warning"
    _, d, zf, mx = last[3]
    per_layer = {h[1]: {"dead_frac_est": round(h[4][3][1], 4), "zero_frac": h[4][3][2], "max": h[4][3][3],
                        "since_epoch": h[3][1], "since_step": h[3][0]} for h in hits}
    symptom = (f"ReLU layer '{layer}': {fmt(100 * zf)}% of its outputs are exactly 0 on the probe batch"
               f" (max {fmt(mx)}; ~{fmt(100 * d)}% of units dead) since epoch {ep(first[1])}, step {first[0]}")
    if len(hits) > 1:
        symptom += f"; {len(hits) - 1} more ReLU layer(s) likewise: " + ", ".join(h[1] for h in hits[1:4])
    return [Finding(
        rule="dead_relu", severity=sev, symptom=symptom, evidence={"layers": per_layer},
        causes=["a large negative bias or a big update pushed pre-activations below 0 for every input",
                "learning rate too high (one big step kills units for good)",
                "poor initialisation (not He) or unnormalised inputs"],
        fixes=["lower the learning rate; use He initialisation and zero biases (E2)",
               "use LeakyReLU/PReLU or add BatchNorm before the ReLU (E1)"],
        tips=["G3", "E1", "E2"], tag="dead_relu", epoch=first[1], step=first[0], layer=layer,
    )]


# --------------------------------------------------------------------------- saturation

SAT_WARN = 0.5   # fraction of a tanh/sigmoid layer's outputs within 1% of the asymptote


def saturation(log) -> List[Finding]:
    """Saturated sigmoid/tanh units (G3): outputs pinned near their asymptotes.

    At |tanh(x)| >= 0.99 the local derivative 1 - tanh(x)^2 is below 0.02 (sigmoid: below 0.01 at
    s(x) outside [0.01, 0.99]), so such a unit learns at least 50x slower than an unsaturated one
    and blocks the gradient to the layers below. When half or more of a hidden layer's outputs are
    saturated on the probe batch for the last two probes, most of that layer has stopped learning;
    this is what unnormalised inputs or too large initial weights produce (B3, E2). The output
    layer is excluded: a confident sigmoid output is supposed to be near 0 or 1.
    """
    v = view(log)
    out_name = v.output_layer()

    def pick(r):
        act = r.get("act") or {}
        s = act.get("sat_frac")
        s = num(s) if s is not None and finite(num(s)) else None
        if str(r.get("activation") or "").lower() in ("sigmoid", "hard_sigmoid") and finite(num(act.get("mean"))):
            # |a| >= 0.99 only sees a sigmoid's upper limit. Its lower one (a ~ 0): the outputs below
            # 2^-7 = 0.0078 counted by the probe's log2 histogram, added to the upper count (units
            # split between both limits); without a histogram, Markov's inequality on the mean
            # (P(a >= 0.01) <= mean / 0.01: at least 1 - 100 * mean are below 0.01).
            low = _below_fraction(act, -7)
            s = (s or 0.0) + low if low is not None else max(s or 0.0, 1.0 - num(act.get("mean")) / 0.01)
        return s

    series = _layer_series(v, pick, keep=lambda r: is_saturating(r) and r.get("layer") != out_name)
    hits = []
    for layer, pts in series.items():
        flags = [p[3] >= SAT_WARN for p in pts]
        streak = _current_streak(flags)
        if streak < min(PERSIST_PROBES, len(pts)):
            continue
        first, last = pts[len(pts) - streak], pts[-1]
        hits.append((first[2] if first[2] is not None else 1 << 30, layer, first, last))
    if not hits:
        return []
    hits.sort(key=lambda h: h[0])
    _, layer, first, last = hits[0]
    act_name = last[4].get("activation") or last[4].get("class")
    sev = "error" if all(h[3][3] >= 0.9 for h in hits[:1]) else "warning"
    limits = "near 0 or 1" if "sigmoid" in str(act_name).lower() else "|a| near 1"
    symptom = (f"{act_name} layer '{layer}': {fmt(100 * last[3])}% of outputs saturated ({limits}) on the probe"
               f" batch, since epoch {ep(first[1])}, step {first[0]}")
    if len(hits) > 1:
        symptom += f"; {len(hits) - 1} more layer(s) likewise: " + ", ".join(h[1] for h in hits[1:4])
    return [Finding(
        rule="saturation", severity=sev, symptom=symptom,
        evidence={"layers": {h[1]: {"sat_frac": h[3][3], "since_epoch": h[2][1], "since_step": h[2][0]} for h in hits},
                  "threshold": SAT_WARN},
        causes=["unnormalised inputs (large values drive pre-activations far from 0)",
                "initial weights too large (not Glorot/Xavier)", "learning rate too high"],
        fixes=["normalise the inputs (z-score, fit on train only, B3)",
               "use Glorot/Xavier init (E2); prefer ReLU + BatchNorm for hidden layers (E1)"],
        tips=["G3", "B3", "E1", "E2"], tag="saturation", epoch=first[1], step=first[0], layer=layer,
    )]


# --------------------------------------------------------------------------- gradients by depth

VANISH_WARN = 1e-3      # early/late relative-gradient ratio: three orders of magnitude
VANISH_ERROR = 1e-6
EXPLODE_DEPTH = 1e3     # the reverse: early layers' relative gradients 1000x the last layers'
EXPLODE_REL = 1e2       # |grad| / |weights| of a layer
EXPLODE_GROWTH = 1e2    # late median global norm / early median


def _rel_grads(recs):
    """[(index, layer, |g|/|w| or |g|)] for the layers of one probe with a usable gradient norm."""
    out = []
    for r in recs:
        g, w = num(r.get("grad_norm")), num(r.get("weight_norm"))
        if not finite(g):
            continue
        rel = g / w if finite(w) and w > 0 else g
        out.append((r.get("index") if r.get("index") is not None else len(out), r.get("layer"), rel, g))
    out.sort(key=lambda t: t[0])
    return out


def _depth_ratios(v):
    """Per probe: (step, epoch, ratio early/late, early layer, late layer, early rel, late rel).

    Layers with an exactly zero gradient are left out: an exact zero is a cut (dead ReLUs, an
    unused branch, frozen path), not a vanishing product, and the dead-ReLU rule reports it.
    Early/late are the medians of the first and last third of the layers with weights.
    """
    out = []
    for step, epoch, recs in v.probes():
        rg = [t for t in _rel_grads(recs) if t[2] > 0]
        if len(rg) < 2:
            continue
        k = max(1, len(rg) // 3)
        early, late = rg[:k], rg[-k:]
        e = float(np.median([t[2] for t in early]))
        l_ = float(np.median([t[2] for t in late]))
        if l_ <= 0:
            continue
        out.append((step, epoch, e / l_, early[0][1], late[-1][1], e, l_, len(rg)))
    return out


def zero_gradients(log) -> List[Finding]:
    """Gradients exactly zero at every probe (G3, B3): no weight can change, whatever the learning
    rate. A sigmoid/softmax output saturated to exactly 0 or 1 in float32 passes no gradient
    (unnormalised inputs push it there at the first step); so do a network of dead units or a loss
    that does not depend on the trainable weights. The gradient rules that compare layers (vanishing,
    exploding, update ratios) cannot see this: there is nothing to compare.
    """
    v = view(log)
    n = zero_gradient_probes(v)
    if not n:
        return []
    first = v.grads[0]
    return [Finding(
        rule="zero_gradients", severity="error",
        symptom=(f"the global gradient norm is exactly 0 at all {n} probes (from step {first.get('step')}): "
                 "no weight can change, whatever the learning rate"),
        evidence={"probes": n, "first_step": first.get("step")},
        causes=["saturated outputs: a sigmoid/softmax at exactly 0 or 1 (float32) passes no gradient, "
                "typically pushed there by unnormalised inputs",
                "every unit dead, or a loss that does not depend on the trainable weights (frozen layers, "
                "stop_gradient, a non-differentiable operation)"],
        fixes=["normalise the inputs (B3) and compare the initial loss with the prior (preflight, C1); "
               "check model.trainable_weights"],
        tips=["G3", "B3", "C1"], tag="vanishing_gradients", epoch=first.get("epoch"), step=first.get("step"),
    )]


def vanishing_gradients(log) -> List[Finding]:
    """Vanishing gradients (G3): early layers' gradients orders of magnitude below the last layers'.

    Backpropagation multiplies the gradient by each layer's Jacobian; a sigmoid's derivative is at
    most 0.25, so n sigmoid layers shrink it by up to 4^-n and five of them already reach 1e-3.
    Gradients are compared relative to each layer's weight norm (|g|/|w|, scale-free: a layer's
    size does not move the ratio). When the median over the early third of the layers is below
    1e-3 of the last third's (three orders of magnitude; error below 1e-6) on the last two probes,
    the early layers effectively do not train. Needs at least 3 layers with weights.
    """
    v = view(log)
    rows = [r for r in _depth_ratios(v) if r[7] >= 3]
    if not rows:
        return []
    flags = [r[2] < VANISH_WARN for r in rows]
    streak = _current_streak(flags)
    if streak < min(PERSIST_PROBES, len(rows)):
        return []
    first, last = rows[len(rows) - streak], rows[-1]
    ratio = float(np.median([r[2] for r in rows[-min(streak, 4):]]))
    sev = "error" if ratio < VANISH_ERROR else "warning"
    return [Finding(
        rule="vanishing_gradients", severity=sev,
        symptom=(f"early layers' relative gradients are {fmt(ratio)} of the last layers' "
                 f"('{last[3]}' |g|/|w| = {fmt(last[5])} vs '{last[4]}' {fmt(last[6])}), "
                 f"{fmt(-math.log10(max(ratio, 1e-300)), 2)} orders of magnitude, since epoch {ep(first[1])}"),
        evidence={"ratio": ratio, "early_layer": last[3], "late_layer": last[4], "early_rel_grad": last[5],
                  "late_rel_grad": last[6], "since_step": first[0], "probes": streak},
        causes=["saturating activations (sigmoid/tanh) stacked deep: each multiplies the gradient by <= 0.25",
                "poor initialisation (weights too small)", "a very deep plain stack without shortcuts"],
        fixes=["use ReLU (+ BatchNorm) in hidden layers (E1) with He init (E2)",
               "add residual shortcuts (E4) or make the stack shallower"],
        tips=["G3", "E1", "E2", "E4"], tag="vanishing_gradients", epoch=first[1], step=first[0], layer=last[3],
    )]


def exploding_gradients(log) -> List[Finding]:
    """Exploding gradients (G3, D8): gradients that grow by orders of magnitude.

    Three independent signs, each a mechanism rather than a level tuned to a case:
      * depth: early layers' relative gradients >= 1e3 x the last layers' (Jacobians with gain
        > 1 multiplied through depth or time, e.g. a recurrent net without clipping);
      * size: a layer's gradient norm >= 100 x its weight norm -- one SGD step of lr 0.01 would
        already move that layer by its whole size;
      * growth: the global gradient norm's late median >= 100 x its early median (the run is
        feeding on itself: bigger weights, bigger gradients).
    Each must hold on two probes/records, so a single hard batch cannot raise it.
    """
    v = view(log)
    signs = []
    rows = _depth_ratios(v)
    big = [r for r in rows if r[2] >= EXPLODE_DEPTH]
    if len(big) >= min(PERSIST_PROBES, len(rows)) and big:
        b = big[0]
        signs.append((b[1], b[0], f"early layer '{b[3]}' has {fmt(b[2])}x the relative gradient of '{b[4]}'",
                      {"depth_ratio": b[2]}, b[3]))
    rel_hits = []
    for step, epoch, recs in v.probes():
        for idx, layer, rel, g in _rel_grads(recs):
            if rel >= EXPLODE_REL:
                rel_hits.append((epoch, step, layer, rel, g))
                break
    if len(rel_hits) >= PERSIST_PROBES:
        e, s, layer, rel, g = rel_hits[0]
        signs.append((e, s, f"layer '{layer}' gradient norm {fmt(g)} is {fmt(rel)}x its weight norm",
                      {"rel_grad": rel, "grad_norm": g}, layer))
    norms = [(g.get("epoch"), g.get("step"), num(g.get("global_norm"))) for g in v.grads]
    norms = [t for t in norms if finite(t[2]) and t[2] > 0]
    if len(norms) >= 8:
        q = max(2, len(norms) // 4)
        early = float(np.median([t[2] for t in norms[:q]]))
        late = float(np.median([t[2] for t in norms[-q:]]))
        if early > 0 and late / early >= EXPLODE_GROWTH:
            e, s, _ = norms[-q]
            signs.append((e, s, f"global gradient norm grew {fmt(late / early)}x (median {fmt(early)} -> {fmt(late)})",
                          {"growth": late / early}, None))
    if not signs:
        return []
    signs.sort(key=lambda t: (t[0] if t[0] is not None else 1 << 30, t[1] if t[1] is not None else 1 << 60))
    epoch, step, text, ev, layer = signs[0]
    evidence = {}
    for s in signs:
        evidence.update(s[3])
    clipped = [bool(g.get("clipped")) for g in v.grads if g.get("source") == "optimizer" or g.get("clipped")]
    severity = "warning"
    if clipped:
        evidence["clipped_frac"] = sum(clipped) / len(clipped)
    if clipped and any(clipped) or finite(num(v.meta.get("clipnorm"))):
        # clipping by global norm bounds every update: the large raw gradients no longer move the
        # weights by more than lr * clipnorm, which is the harm exploding gradients do (D8)
        severity = "info"
    return [Finding(
        rule="exploding_gradients", severity=severity,
        symptom="exploding gradients: " + "; ".join(s[2] for s in signs) + f" (first at epoch {ep(epoch)}, step {step})"
                + ("; gradient clipping keeps the updates bounded" if severity == "info" else ""),
        evidence=evidence,
        causes=["no gradient clipping in a recurrent or very deep net", "learning rate too high",
                "unscaled regression targets or inputs (large errors -> large gradients)"],
        fixes=["clip gradients by global norm (clipnorm=1..10, D8)", "lower the learning rate (D1)",
               "normalise inputs and targets (B3)"],
        tips=["G3", "D8", "D1"], tag="exploding_gradients", epoch=epoch, step=step, layer=layer,
    )]


# --------------------------------------------------------------------------- update / weight ratio

RATIO_HIGH = 1e-1   # two orders above the ~1e-3 rule of thumb (G4)
RATIO_LOW = 1e-5    # two orders below it
RATIO_WINDOW = 3    # probes per window
RATIO_HUGE = 1.0    # one step as large as the weights themselves


def update_ratio(log) -> List[Finding]:
    """Update/weight ratio far from ~1e-3 (G4): the learning rate is too high or too low.

    The ratio |delta w| / |w| per step is the fraction by which one update changes a layer. At
    ~1e-3, a thousand steps can move a layer by about its own size -- steady learning. At >= 1e-1
    (two orders above) ten steps rewrite the layer: the optimiser bounces (lr too high). At
    <= 1e-5 (two orders below), even after a thousand steps a layer has moved by 1%: lr too low.
    Per probe the median over layers is taken (one bias-only or embedding layer cannot decide),
    then the median over windows of 3 probes. "Too high" fires if any window's median is >= 1e-1;
    "too low" only if even the best window stays <= 1e-5, so LR warm-up and the small ratios of
    a properly decayed LR late in training do not count. A single probe whose step changed the
    weights by >= 100% of their norm is "too high" on its own (a deterministic measurement of one
    catastrophic step, which often leaves a dead network whose later ratios read 0).
    """
    v = view(log)
    per_probe = []
    for step, epoch, recs in v.probes():
        vals = [num(r.get("update_ratio")) for r in recs]
        vals = [x for x in vals if finite(x) and x > 0]
        if vals:
            per_probe.append((step, epoch, float(np.median(vals))))
    if len(per_probe) < RATIO_WINDOW and not any(p[2] >= RATIO_HUGE for p in per_probe):
        return []
    wins = [(per_probe[0][0], per_probe[0][1], per_probe[0][2])] if len(per_probe) < RATIO_WINDOW else []
    for i in range(len(per_probe) - RATIO_WINDOW + 1):
        w = per_probe[i:i + RATIO_WINDOW]
        wins.append((w[0][0], w[0][1], float(np.median([t[2] for t in w]))))
    top = max(wins, key=lambda t: t[2])
    overall = float(np.median([t[2] for t in per_probe]))
    high = [w for w in wins if w[2] >= RATIO_HIGH]
    huge = [p for p in per_probe if p[2] >= RATIO_HUGE]
    if huge and not high:
        # one step that changed the layers by more than their own size is no noise: the step
        # itself is the evidence (such a step often kills the network, so later probes read 0)
        high = [huge[0]]
    if high:
        step, epoch, r = high[0]
        return [Finding(
            rule="update_ratio", severity="warning",
            symptom=(f"update/weight ratio {fmt(r)} per step (median over layers, from epoch {ep(epoch)}), "
                     f">= {fmt(RATIO_HIGH)} against the ~1e-3 rule: each step rewrites {fmt(100 * r)}% of the weights"),
            evidence={"ratio": r, "peak": top[2], "median": overall, "step": step},
            causes=["learning rate too high for this model/optimizer"],
            fixes=["lower the learning rate 10x (use kerasrecipe.lr_find, D2)", "add warm-up (D9)"],
            tips=["G4", "D1", "D2"], tag="lr_too_high", epoch=epoch, step=step,
        )]
    if top[2] <= RATIO_LOW:
        step, epoch, r = per_probe[0]
        return [Finding(
            rule="update_ratio", severity="warning",
            symptom=(f"update/weight ratio at most {fmt(top[2])} per step (median {fmt(overall)}), <= {fmt(RATIO_LOW)}: "
                     f"a thousand steps move the weights by {fmt(100 * top[2] * 1000)}%"),
            evidence={"ratio": top[2], "median": overall},
            causes=["learning rate too low", "weights initialised too large for the learning rate"],
            fixes=["raise the learning rate 10x (use kerasrecipe.lr_find, D2)", "Adam at 3e-4..1e-3 is the safe start (D5)"],
            tips=["G4", "D1", "D2", "D5"], tag="lr_too_low", epoch=epoch, step=step,
        )]
    return []
