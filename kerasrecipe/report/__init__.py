"""The run report: one self-contained HTML page from a run directory (tips A3, A6, C9, G1-G4).

    from kerasrecipe.report import build_report
    path = build_report("runs/my-run")          # -> "runs/my-run/report.html"

or from a shell: `kerasrecipe report runs/my-run`. The page embeds every figure (base64 PNG), so
it can be mailed or archived alone. It shows the config and environment, the preflight table,
the LR range test, train/val curves with the learning rate, per-layer activation statistics over
time (histogram heatmaps, dead/saturated fractions), gradient norms and update ratios, the
findings with their fixes, and, for classifiers, the confusion matrix and the top-loss examples
(from `predictions.npz`, written by `save_predictions`). The files it reads are listed in
kerasrecipe/report/rundata.py.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

from kerasrecipe.errors import ConfigError
from kerasrecipe.report.predictions import PREDICTIONS_FILE, load_predictions, save_predictions  # noqa: F401

REPORT_FILE = "report.html"

__all__ = ["build_report", "save_predictions", "load_predictions", "REPORT_FILE", "PREDICTIONS_FILE"]


def build_report(run_dir: str, *, out: Optional[str] = None, title: Optional[str] = None) -> str:
    """Write the HTML report of a run directory; returns the report's path.

    Args:
        run_dir: a run directory (it holds runlog.jsonl; see kerasrecipe/report/rundata.py).
        out: where to write the page (a file path, or an existing directory to write report.html
            in); default `run_dir/report.html`.
        title: the page title; default "kerasrecipe run report — <run name>".

    The page is written atomically, and depends only on the run directory's files: building it
    twice gives the same bytes. A section that cannot be drawn shows its error in the page and
    is reported with a warning.

    Raises:
        ConfigError: `run_dir` is not a run directory, or `out` is in a folder that does not exist.

    Example:
        >>> cbs = kerasrecipe.default(run_dir="runs/demo")
        >>> model.fit(x, y, validation_split=0.2, callbacks=cbs)
        >>> build_report("runs/demo")
        'runs/demo/report.html'
    """
    from kerasrecipe.io import atomic_write_text
    from kerasrecipe.report.html import render
    from kerasrecipe.report.rundata import load_run

    data = load_run(run_dir)
    page, errors = render(data, title=title)
    path = os.fspath(out) if out is not None else os.path.join(os.fspath(run_dir), REPORT_FILE)
    if os.path.isdir(path):
        path = os.path.join(path, REPORT_FILE)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot write the report to {path!r}: the folder {parent!r} "
                          + ("is a file" if os.path.exists(parent) else "does not exist"))
    atomic_write_text(path, page)
    for e in errors:
        warnings.warn(f"report section could not be drawn: {e}", RuntimeWarning, stacklevel=2)
    return path
