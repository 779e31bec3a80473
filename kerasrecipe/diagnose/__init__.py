"""Diagnosis: rules as pure functions over the run log (no Keras), producing Findings.

    from kerasrecipe.diagnose import diagnose_run, print_findings
    print_findings(diagnose_run("runs/adam-lr3e-04-bs32-plateau-s42"))

`RULES` maps each rule's name to `rule(log) -> list[Finding]`; `LIVE_RULES` names those that
`diagnose_run(log, live=True)` runs mid-fit.
"""
from kerasrecipe.diagnose.console import findings_table, print_findings  # noqa: F401
from kerasrecipe.diagnose.engine import CAUSE_TAGS, LIVE_RULES, RULES, SYMPTOM_TAGS, diagnose_run, rank_findings  # noqa: F401
from kerasrecipe.diagnose.finding import Finding, sort_findings  # noqa: F401
from kerasrecipe.diagnose.rules_loss import prior_loss  # noqa: F401

__all__ = ["diagnose_run", "rank_findings", "CAUSE_TAGS", "SYMPTOM_TAGS", "print_findings", "findings_table", "RULES", "LIVE_RULES", "Finding", "sort_findings",
           "prior_loss"]
