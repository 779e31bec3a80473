"""The rule registry and `diagnose_run`: every rule over one run log, findings most severe first."""
from __future__ import annotations

import os
from typing import Callable, Dict, List

from kerasrecipe.diagnose._view import LogView, view
from kerasrecipe.diagnose.finding import Finding, sort_findings
from kerasrecipe.diagnose.rules_curves import curves
from kerasrecipe.diagnose.rules_internals import (
    dead_relu, exploding_gradients, nan_inf, saturation, update_ratio, vanishing_gradients, zero_gradients,
)
from kerasrecipe.diagnose.rules_loss import (
    above_prior, loss_domain, lr_decayed_too_early, oscillating_loss, output_vs_loss, slow_convergence,
    stuck_at_prior,
)
from kerasrecipe.errors import InputTypeError

# name -> rule(log) -> list[Finding]. Order matters among findings of equal severity and epoch:
# root causes (non-finite numbers, dead/saturated units, gradient flow) come before the loss
# symptoms they produce, so the first finding names the cause.
RULES: Dict[str, Callable[..., List[Finding]]] = {
    "nan_inf": nan_inf,
    "loss_domain": loss_domain,
    "output_vs_loss": output_vs_loss,
    "dead_relu": dead_relu,
    "saturation": saturation,
    "zero_gradients": zero_gradients,
    "vanishing_gradients": vanishing_gradients,
    "exploding_gradients": exploding_gradients,
    "stuck_at_prior": stuck_at_prior,
    "above_prior": above_prior,
    "lr_decayed_too_early": lr_decayed_too_early,
    "oscillating_loss": oscillating_loss,
    "update_ratio": update_ratio,
    "slow_convergence": slow_convergence,
    "curves": curves,
}

# Rules that mean something mid-run: they read the state so far (probes, recent losses), not the
# shape of the finished curves; each is linear in the log. `diagnose_run(live=True)` runs these.
LIVE_RULES = ("nan_inf", "loss_domain", "output_vs_loss", "dead_relu", "saturation", "zero_gradients",
              "vanishing_gradients", "exploding_gradients",
              "stuck_at_prior", "above_prior", "lr_decayed_too_early", "oscillating_loss", "update_ratio")


# Fault tags that name a cause, and tags that name a symptom such causes produce. A network that
# learns nothing (stuck at the prior) *because* its units are dead is best told "dead units".
CAUSE_TAGS = frozenset({
    "nan", "dead_relu", "saturation", "vanishing_gradients", "exploding_gradients", "lr_too_high", "lr_too_low",
    "lr_decayed_too_early", "label_mismatch",
    # preflight's (engineer P) data and model faults
    "data_nan", "unnormalized_input", "unscaled_target", "wrong_output_activation", "wrong_loss",
    "class_imbalance", "distribution_shift", "leakage", "batch_mixing",
})
SYMPTOM_TAGS = frozenset({
    "stuck_at_prior", "stuck", "slow_convergence", "oscillating_loss", "underfitting", "train_rising",
    "data_problem", "overfitting", "initial_loss", "cannot_overfit", "no_better_than_baseline",
})


def rank_findings(findings: List[Finding]) -> List[Finding]:
    """Sort findings most severe first, with causes ahead of the symptoms they explain.

    Within one severity, symptom findings (`SYMPTOM_TAGS`) come after all others whatever their
    epoch (a preflight symptom such as "no better than the zero-input baseline" is explained by a
    cause found during the run), then earlier epochs first.

    When both cause findings (dead units, saturation, gradient flow, LR, data faults: `CAUSE_TAGS`)
    and symptom findings (loss stuck, slow, oscillating, curve patterns: `SYMPTOM_TAGS`) are
    present, the most severe cause is raised to the severity of the worst symptom -- the cause is
    as bad as the damage it does -- and each symptom lists the causes found as its first likely
    causes. Works on run findings and preflight findings together. Returns new Finding objects.
    """
    import dataclasses

    items = [dataclasses.replace(f, evidence=dict(f.evidence), causes=list(f.causes)) for f in findings]
    causes = [f for f in items if f.tag in CAUSE_TAGS and f.severity != "info"]
    symptoms = [f for f in items if f.tag in SYMPTOM_TAGS and f.severity != "info"]
    if causes and symptoms:
        worst = max(f.rank for f in symptoms)
        top = sort_findings(causes)[0]
        if top.rank < worst:
            top.evidence["raised_from"] = top.severity
            top.severity = ("info", "warning", "error")[worst]
        names = []
        for c in sort_findings(causes):
            if c.tag not in names:
                names.append(c.tag)
        for f in symptoms:
            f.evidence["explained_by"] = names
            f.causes = [f"found: {n.replace('_', ' ')} (see that finding)" for n in names] + f.causes
    # severity first; within a severity, causes and other findings before symptoms, then by epoch
    return sorted(sort_findings(sorted(items, key=lambda f: 0 if f.tag in CAUSE_TAGS else 1)),
                  key=lambda f: (-f.rank, 1 if f.tag in SYMPTOM_TAGS else 0))


def _as_view(log) -> LogView:
    if isinstance(log, (str, os.PathLike)):
        from kerasrecipe.runlog import RunLog

        return view(RunLog.load(os.fspath(log)))
    if isinstance(log, LogView) or hasattr(log, "records"):
        return view(log)
    if isinstance(log, (list, tuple)) and all(isinstance(r, dict) for r in log):
        return view(list(log))
    raise InputTypeError(
        f"diagnose_run expects a RunLog, a run directory path or a list of record dicts, got {type(log).__name__}"
    )


def diagnose_run(log, *, live: bool = False, rules=None) -> List[Finding]:
    """Run the diagnosis rules over a run log; findings sorted most severe first.

    Args:
        log: a `kerasrecipe.RunLog`, a run directory (its `runlog.jsonl` is loaded), or a list
            of record dicts in the run-log schema (kerasrecipe/runlog.py).
        live: run only the rules meaningful mid-run (`LIVE_RULES`); cheap enough for every epoch.
        rules: optional iterable of rule names (keys of `RULES`) to run instead.

    Returns:
        list of `Finding`, errors first, then warnings, then info; among equals, earliest first
        and causes before symptoms (see `rank_findings`).

    Example:
        >>> from kerasrecipe.runlog import RunLog
        >>> log = RunLog()
        >>> log.log("meta", loss="sparse_categorical_crossentropy", num_classes=10)  # doctest: +ELLIPSIS
        {...}
        >>> for e in range(5):
        ...     _ = log.log("epoch", epoch=e, logs={"loss": 2.302})
        >>> [(f.severity, f.tag) for f in diagnose_run(log)]
        [('error', 'stuck_at_prior'), ('info', 'no_validation')]
    """
    v = _as_view(log)
    if rules is None:
        names = LIVE_RULES if live else tuple(RULES)
    else:
        names = tuple(rules)
        unknown = [n for n in names if n not in RULES]
        if unknown:
            from kerasrecipe.errors import ConfigError

            raise ConfigError(f"unknown diagnosis rule(s) {unknown}; known: {sorted(RULES)}")
    found: List[Finding] = []
    for name in names:
        found.extend(RULES[name](v))
    if any(f.tag == "stuck_at_prior" and f.severity != "info" for f in found):
        # one observation, one finding: a loss at the prior's value (nothing learned from the inputs,
        # C10) is what "stuck" and "underfitting" would say with a worse fix (more capacity only
        # memorises labels that carry no information)
        found = [f for f in found if f.tag not in ("stuck", "underfitting")]
    return rank_findings(found)
