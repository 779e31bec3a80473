"""Diagnosis: rules as pure functions over the run log (no Keras), producing Findings."""
from kerasrecipe.diagnose.finding import Finding, sort_findings  # noqa: F401
