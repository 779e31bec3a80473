"""Everything the report reads from a run directory, loaded once, tolerant of missing parts.

A run directory (see kerasrecipe/callbacks/run_logger.py and kerasrecipe/recipe.py) holds:

    runlog.jsonl      required: every record (meta, epoch, batch, layer, grad, event, finding,
                      preflight, lr_find) -- kerasrecipe/runlog.py documents the schema
    config.json       the RecipeConfig
    env.json          versions, backend, devices, native-kernel info
    findings.json     the diagnosis (a list of Finding dicts)
    predictions.npz   a classifier's predictions (kerasrecipe/report/predictions.py)
    cv.json or cv/cv.json   a cross-validation summary (kerasrecipe.cv.cross_validate)
    preflight.json, lr_find.json   used when the run log has no such record

Any of these but runlog.jsonl may be missing: the report then says so in that section.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

from kerasrecipe.errors import ConfigError
from kerasrecipe.runlog import RUNLOG_FILE, RunLog


@dataclass
class RunData:
    run_dir: str
    log: RunLog
    config: Optional[dict] = None
    env: Optional[dict] = None
    findings: Optional[List[dict]] = None
    findings_source: str = "findings.json"
    preflight: Optional[dict] = None
    lr_find: Optional[dict] = None
    predictions: Optional[dict] = None
    cv: Optional[dict] = None
    problems: List[str] = field(default_factory=list)  # files that could not be read, and why

    @property
    def name(self) -> str:
        return os.path.basename(os.path.abspath(self.run_dir))

    @property
    def meta(self) -> dict:
        return self.log.meta


def _read_json(path: str, problems: List[str]):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{os.path.basename(path)} could not be read ({type(e).__name__}: {e})")
        return None


def load_run(run_dir: str) -> RunData:
    """Read a run directory; raises ConfigError when it is not one (no runlog.jsonl)."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise ConfigError(f"run_dir must be a path, got {type(run_dir).__name__}")
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir!r} is not a directory. Pass the run directory a recipe run wrote "
                          f"(it holds {RUNLOG_FILE}).")
    log = RunLog.load(run_dir)
    problems: List[str] = []
    data = RunData(run_dir=run_dir, log=log, problems=problems)
    data.config = _read_json(os.path.join(run_dir, "config.json"), problems)
    data.env = _read_json(os.path.join(run_dir, "env.json"), problems)

    findings = _read_json(os.path.join(run_dir, "findings.json"), problems)
    if isinstance(findings, dict):  # tolerate {"findings": [...]}
        findings = findings.get("findings")
    if findings is None:
        recs = log.of("finding")
        if recs:
            findings, data.findings_source = _dedupe(recs), "the run log's finding records"
    data.findings = findings

    data.preflight = log.last("preflight") or _read_json(os.path.join(run_dir, "preflight.json"), problems)
    data.lr_find = log.last("lr_find") or _read_json(os.path.join(run_dir, "lr_find.json"), problems)
    for cv_path in (os.path.join(run_dir, "cv.json"), os.path.join(run_dir, "cv", "cv.json")):
        data.cv = _read_json(cv_path, problems)
        if data.cv is not None:
            break
    try:
        from kerasrecipe.report.predictions import load_predictions

        data.predictions = load_predictions(run_dir)
    except (ConfigError, OSError, ValueError) as e:
        problems.append(f"predictions.npz could not be read ({type(e).__name__}: {e})")
    return data


def _dedupe(records: List[dict]) -> List[dict]:
    """Live findings are logged when first seen, possibly again later: keep the last of each."""
    by_key = {}
    for r in records:
        by_key[(r.get("rule"), r.get("layer"))] = r
    return list(by_key.values())
