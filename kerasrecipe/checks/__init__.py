"""Preflight: sanity checks on data and model before spending compute (tips B1-B3, B6, B9, C1-C7).

    import kerasrecipe as kr
    report = kr.preflight(model, x_train, y_train, validation_data=(x_val, y_val))
    report.ok, report.failed, report.findings(), report.to_json()

Modules: `sample` (bounded reading of arrays / tf.data / PyDataset), `introspect` (output layer,
loss, task), `data` (data checks), `targets` (targets, class balance, output/loss, expected
initial loss), `model` (parameters, initial loss, batch independence), `training` (checks that
train a clone), `report` (PreflightReport), `runner` (`preflight`).
"""
from kerasrecipe.checks.report import CheckResult, Issue, PreflightReport  # noqa: F401
from kerasrecipe.checks.runner import CHECK_NAMES, CHECKS, DEFAULT_TIME_BUDGET, preflight  # noqa: F401

__all__ = ["preflight", "PreflightReport", "CheckResult", "Issue", "CHECKS", "CHECK_NAMES", "DEFAULT_TIME_BUDGET"]
