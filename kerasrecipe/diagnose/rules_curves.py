"""The train/validation curve patterns of tip G1, read off the per-epoch losses.

    train down, val down   still learning                       (info)
    train down, val up     overfitting, with the epoch it began (warning; info while mild)
    train down, val flat   underfitting the validation data     (warning when val never improved)
    train flat, val flat   stuck (bottleneck, LR, capacity)     (warning; underfitting when it
                           learned something and then plateaued high)
    train up,   val up     optimisation/architecture problem    (warning, tag train_rising)
    train up,   val down   data problem                         (warning, tag data_problem)

Directions are judged on the recent half of the run (at least 3 epochs) with a robust trend
(kerasrecipe.diagnose._view.direction); "never improved" and "when overfitting began" on the
whole run. Without validation data, the patterns that need it are reported as not assessable
(one info finding), and the train-only ones (stuck, train rising, learning) still run.
"""
from __future__ import annotations

from typing import List

import numpy as np

from kerasrecipe.diagnose._view import direction, ep, finite, fmt, view
from kerasrecipe.diagnose.finding import Finding
from kerasrecipe.diagnose.rules_loss import prior_loss, stuck_at_prior

TREND_TOL = 0.05          # a 5% change over the window (and > 2x its scatter) is a trend
STUCK_TOTAL = 0.05        # the whole run improved the training loss by < 5%: stuck
OVERFIT_INFO = 0.10       # val loss >= 10% above its best, >= 2 epochs after it: overfitting began
OVERFIT_WARN = 0.25       # >= 25% above its best: the run is paying for it
VAL_NEVER = 0.02          # val improved by < 2% over the whole run while train improved >= 10%
UNDERFIT_PRIOR = 0.5      # plateau with loss >= half the prior's: most of the signal unexplained
UNDERFIT_GAP = 1.5        # ... and val <= 1.5x train (high bias, not variance)


def _f(rule, severity, tag, symptom, evidence, causes, fixes, tips, epoch):
    return Finding(rule=rule, severity=severity, symptom=symptom, evidence=evidence, causes=causes, fixes=fixes,
                   tips=tips, tag=tag, epoch=epoch)


def curves(log) -> List[Finding]:
    """Classify the train/val curves into G1's six patterns (see the module docstring).

    Thresholds: a trend needs a 5% change over the recent window beyond twice its scatter, which
    epoch-to-epoch noise of a flat curve does not reach; overfitting needs the validation loss to
    sit >= 10% above its minimum for >= 2 epochs while the training loss kept falling (a mere
    noisy epoch does not), and becomes a warning at >= 25% (the model has clearly got worse on new
    data); "val never improved" means < 2% improvement while train improved >= 10%.
    """
    v = view(log)
    eps, tr = v.epoch_values("loss")
    ok = np.isfinite(tr)
    if ok.sum() < 3 or not ok[-1]:
        return []
    has_val = v.has("val_loss")
    _, va = v.epoch_values("val_loss")
    n = len(tr)
    w = max(3, (n + 1) // 2)
    tdir, trel = direction(tr[-w:], TREND_TOL)
    tfin = tr[ok]
    imp_train = (tfin[0] - tfin.min()) / max(abs(tfin[0]), 1e-12)
    out: List[Finding] = []
    if not has_val:
        out.append(_f("curves", "info", "no_validation",
                      "no validation loss recorded: overfitting, underfitting and the data-problem pattern (G1) "
                      "cannot be assessed; only the training curve is read",
                      {"epochs": n}, ["fit without validation_data / validation_split"],
                      ["pass validation_split=0.2 or validation_data (B2, A8)"], ["G1", "B2"], None))
        vdir = None
    else:
        vok = np.isfinite(va)
        vdir, vrel = direction(va[-w:], TREND_TOL) if vok.sum() >= 3 else (None, 0.0)
    ev = {"train_trend": tdir, "train_rel_change": trel, "val_trend": vdir, "epochs": n,
          "train_improvement": float(imp_train)}

    # ---------------------------------------------------------------- train rising
    if tdir == "up":
        if vdir == "down":
            out.append(_f("curves", "warning", "data_problem",
                          f"training loss rising ({fmt(100 * trel)}% over the last {w} epochs) while validation loss "
                          "falls: the two sets do not behave like one distribution (G1: a data problem)",
                          ev, ["train and validation data differ (preprocessing, augmentation, label noise in train)",
                               "regularisation or augmentation that grows during training"],
                          ["check that train and validation come from the same distribution and pipeline (B2, C8)"],
                          ["G1", "B2"], eps[-w]))
        else:
            out.append(_f("curves", "warning", "train_rising",
                          f"training loss rising ({fmt(100 * trel)}% over the last {w} epochs)"
                          + (" and validation loss with it" if vdir == "up" else "")
                          + ": optimisation is diverging (G1)", ev,
                          ["learning rate too high", "an architecture/optimisation problem (no normalisation, bad init)"],
                          ["lower the learning rate (D1) and halve it on plateau (D3)", "clip gradients (D8)"],
                          ["G1", "D1", "D3"], eps[-w]))
        return out

    prior, how = prior_loss(v)
    # ---------------------------------------------------------------- train flat
    if tdir == "flat":
        if imp_train < STUCK_TOTAL:
            if stuck_at_prior(v):
                return out     # the more specific C10 finding covers it
            out.append(_f("curves", "warning", "stuck",
                          f"training loss flat for the whole run ({fmt(tfin[0])} -> {fmt(tfin[-1])}, "
                          f"{fmt(100 * imp_train)}% better at best)"
                          + (f"; validation loss {vdir}" if vdir else "") + ": nothing is being learned (G1)", ev,
                          ["learning rate far too low or too high", "a bottleneck (tiny layer, dead units)",
                           "too little capacity"],
                          ["run an LR range test (D2)", "overfit one batch (C4); widen the narrowest layer (C5)"],
                          ["G1", "D2", "C4"], eps[0]))
            return out
        last_val = float(va[np.isfinite(va)][-1]) if has_val and np.isfinite(va).any() else None
        gap_ok = last_val is None or last_val <= UNDERFIT_GAP * max(tfin[-1], 1e-12)
        if prior and tfin[-1] >= UNDERFIT_PRIOR * prior and gap_ok and vdir != "up":
            out.append(_f("curves", "warning", "underfitting",
                          f"training loss plateaued at {fmt(tfin[-1])}, still {fmt(100 * tfin[-1] / prior)}% of the prior's "
                          f"{fmt(prior)} ({how})" + (f", validation {fmt(last_val)}" if last_val is not None else "")
                          + ": the model explains less than half of what there is to learn (underfitting)", ev,
                          ["too little capacity (too few units/layers)", "too strong regularisation (L2, dropout)",
                           "learning rate too low to leave the plateau"],
                          ["increase capacity (C5) and reduce regularisation (F4)", "train longer with a tuned LR (D1)"],
                          ["G1", "C5", "F4"], eps[-w]))
            return out
    # ---------------------------------------------------------------- train falling (or converged)
    if not has_val or vdir is None:
        if tdir == "down":
            out.append(_f("curves", "info", "learning", f"training loss still falling ({fmt(100 * trel)}% over the last "
                          f"{w} epochs)", ev, [], ["train longer while it improves (I5)"], ["G1", "I5"], eps[-1]))
        return out
    vfin_idx = np.nonzero(np.isfinite(va))[0]
    vv = va[vfin_idx]
    best = int(np.argmin(vv))
    e_best = int(vfin_idx[best])
    imp_val = (vv[0] - vv[best]) / max(abs(vv[0]), 1e-12)
    rise = (vv[-1] - vv[best]) / max(abs(vv[best]), 1e-12)
    after = len(vv) - 1 - best
    ev.update({"best_val_epoch": eps[e_best], "best_val_loss": float(vv[best]), "val_rise": float(rise),
               "val_improvement": float(imp_val)})
    # With class_weight / sample_weight, train is a weighted loss and validation is not: the two
    # curves measure different things (re-weighting trades the majority's loss for the
    # minority's), so "train improved, validation did not" is no evidence of underfitting there.
    weighted = bool(v.meta.get("loss_weighted"))
    # Train's improvement is counted from epoch 1 here: epoch 0's training loss is a running mean
    # over the epoch (mostly the untrained model) while validation is measured at its end, so
    # "train improved a lot since epoch 0" holds for every run whose first epoch already learned.
    imp_train_late = (tfin[1] - tfin[1:].min()) / max(abs(tfin[1]), 1e-12) if len(tfin) >= 3 else 0.0
    if imp_val < VAL_NEVER and imp_train_late >= 0.10 and vdir != "down" and not weighted:
        out.append(_f("curves", "warning", "underfitting",
                      f"training loss improved {fmt(100 * imp_train_late)}% after its first epoch but validation loss "
                      "never improved "
                      f"({fmt(vv[0])} at the first epoch, best {fmt(vv[best])}, last {fmt(vv[-1])}): what is learned on "
                      "train does not fit the validation data (G1)", ev,
                      ["train and validation come from different distributions (shift, different preprocessing)",
                       "validation labels or inputs prepared differently", "a model that memorises from the start"],
                      ["split train/validation from the same distribution and pipeline (B2, B3)", "look at both sets (B1)"],
                      ["G1", "B2", "B3"], eps[0]))
        return out
    overfit = after >= 2 and rise >= OVERFIT_INFO and tr[-1] < tr[e_best] and vdir != "down"
    if overfit:
        sev = "warning" if rise >= OVERFIT_WARN else "info"
        out.append(_f("curves", sev, "overfitting",
                      f"overfitting since epoch {ep(eps[e_best])}: validation loss {fmt(vv[best])} -> {fmt(vv[-1])} "
                      f"(+{fmt(100 * rise)}%) while training loss fell {fmt(tr[e_best])} -> {fmt(tr[-1])}", ev,
                      ["model capacity too large for the data", "too little regularisation", "too few samples"],
                      ["early stopping with best weights restored (F2, on by default)",
                       "more data/augmentation (F1), dropout or weight decay (E5, D10), a smaller model (F4)"],
                      ["G1", "F2", "F1", "F4", "A5"], eps[e_best]))
        return out
    if vdir == "down" or tdir == "down":
        out.append(_f("curves", "info", "learning",
                      f"train and validation losses {'still falling' if vdir == 'down' else 'converging'} "
                      f"(val best {fmt(vv[best])} at epoch {ep(eps[e_best])})", ev, [],
                      ["train longer while validation improves (I5)"], ["G1", "I5"], eps[-1]))
    return out
