"""The preflight report: one row per check, with its status, evidence and the fix.

A row's status is the worst of its issues: an "error" issue fails the row, a "warning" issue
makes it a warning, "info" issues (advice, e.g. B9's "fewer than 5,000 examples per class")
leave it passed with a note. `findings()` turns the issues into `Finding`s with the preflight
fault tags, so the diagnosis benchmark and the run report read them like any other finding.
"""
from __future__ import annotations

import json

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from kerasrecipe.diagnose.finding import SEVERITIES, Finding, sort_findings
from kerasrecipe.io import to_jsonable

STATUSES = ("passed", "warning", "failed", "skipped")
_STATUS_OF = {"error": "failed", "warning": "warning", "info": "passed"}
_STYLE = {"passed": "green", "warning": "yellow", "failed": "bold red", "skipped": "dim"}


@dataclass
class Issue:
    """One problem a check found. `severity` is a Finding severity (info / warning / error)."""

    tag: str
    severity: str
    message: str
    fix: Optional[str] = None
    evidence: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Issue.severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return {"tag": self.tag, "severity": self.severity, "message": self.message, "fix": self.fix,
                "evidence": to_jsonable(self.evidence)}


@dataclass
class CheckResult:
    """One row of the report.

    Args:
        name: the check's id (e.g. "initial_loss").
        title: a short human title (e.g. "Initial loss").
        tips: recipe tip ids (e.g. ["C1"]).
        status: "passed" | "warning" | "failed" | "skipped" (derived from `issues` unless skipped).
        summary: one line with the numbers.
        evidence: the measured numbers.
        issues: the problems found (empty when clean).
        reason: why the check was skipped.
        seconds: time the check took.
    """

    name: str
    title: str
    tips: List[str] = field(default_factory=list)
    status: str = "passed"
    summary: str = ""
    evidence: dict = field(default_factory=dict)
    issues: List[Issue] = field(default_factory=list)
    reason: Optional[str] = None
    seconds: float = 0.0
    started_at: Optional[float] = None   # seconds into the preflight when the check started (None: not run)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"CheckResult.status must be one of {STATUSES}, got {self.status!r}")

    # ------------------------------------------------------------------ building
    def add(self, tag, severity, message, fix=None, **evidence) -> "CheckResult":
        self.issues.append(Issue(tag, severity, message, fix, evidence))
        self._restatus()
        return self

    def skip(self, reason: str) -> "CheckResult":
        self.status = "skipped"
        self.reason = reason
        self.summary = reason
        return self

    def _restatus(self):
        if self.status == "skipped":
            return
        worst = max((SEVERITIES.index(i.severity) for i in self.issues), default=0)
        self.status = _STATUS_OF[SEVERITIES[worst]] if self.issues else "passed"

    @property
    def fix(self) -> Optional[str]:
        worst = sorted(self.issues, key=lambda i: -SEVERITIES.index(i.severity))
        for i in worst:
            if i.fix:
                return i.fix
        return None

    @property
    def tags(self) -> List[str]:
        return sorted({i.tag for i in self.issues})

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "tips": list(self.tips),
            "status": self.status,
            "summary": self.summary,
            "evidence": to_jsonable(self.evidence),
            "issues": [i.to_dict() for i in self.issues],
            "fix": self.fix,
            "reason": self.reason,
            "seconds": round(float(self.seconds), 4),
            "started_at": None if self.started_at is None else round(float(self.started_at), 4),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        row = cls(d["name"], d.get("title", d["name"]), list(d.get("tips", [])), summary=d.get("summary", ""),
                  evidence=dict(d.get("evidence", {})), reason=d.get("reason"), seconds=d.get("seconds", 0.0),
                  started_at=d.get("started_at"))
        for i in d.get("issues", []):
            row.issues.append(Issue(i["tag"], i["severity"], i["message"], i.get("fix"), dict(i.get("evidence", {}))))
        row.status = d.get("status", "passed")
        return row


class PreflightReport:
    """What `kerasrecipe.preflight` found: rows, budget accounting, findings.

    Attributes:
        rows: list of CheckResult, in the order the checks ran.
        time_budget: the budget in seconds the checks that train were given.
        elapsed: seconds the whole preflight took (data sampling included).
        budget_used: seconds the checks that train took (what counts against `time_budget`; the
            data and model checks always run and are not counted).
        budget_start: seconds into the preflight when the budget's clock started (None: no
            training check ran).
        sample: how the data were read (source, samples read, bounded or not).

    Example:
        >>> report = kr.preflight(model, x, y, verbose=0)
        >>> report.ok, [r.name for r in report.failed]
        >>> report.findings()          # list[Finding] with preflight tags
        >>> report.to_json()
    """

    def __init__(self, rows=None, *, time_budget=None, elapsed=0.0, sample=None, backend=None,
                 budget_used=None, budget_start=None):
        self.rows: List[CheckResult] = list(rows or [])
        self.time_budget = time_budget
        self.elapsed = float(elapsed)
        self.budget_used = float(elapsed if budget_used is None else budget_used)
        self.budget_start = budget_start
        self.sample = dict(sample or {})
        self.backend = backend

    # ------------------------------------------------------------------ queries
    def __getitem__(self, name: str) -> CheckResult:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no preflight check named {name!r}; checks in this report: {[r.name for r in self.rows]}")

    def __contains__(self, name) -> bool:
        return any(r.name == name for r in self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def _with(self, status):
        return [r for r in self.rows if r.status == status]

    @property
    def passed(self) -> List[CheckResult]:
        return self._with("passed")

    @property
    def warnings(self) -> List[CheckResult]:
        return self._with("warning")

    @property
    def failed(self) -> List[CheckResult]:
        return self._with("failed")

    @property
    def skipped(self) -> List[CheckResult]:
        return self._with("skipped")

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return not self.failed

    @property
    def budget_skipped(self) -> List[CheckResult]:
        """Rows skipped (or cut short) because the time budget was spent."""
        return [r for r in self.rows if r.evidence.get("budget_limited") or (r.reason or "").startswith("time budget")]

    @property
    def within_budget(self) -> bool:
        """True when the time the checks took stays within the budget (accounting, see `budget`)."""
        return self.time_budget is None or self.budget_used <= self.time_budget

    def budget(self) -> Dict[str, float]:
        """Budget accounting: the budget, the time used (all checks; the budgeted training checks),
        per-check seconds and what was left of the budget."""
        used = {r.name: round(r.seconds, 4) for r in self.rows}
        started = {r.name: r.started_at for r in self.rows if r.started_at is not None}
        b0 = self.budget_start
        return {
            "time_budget": self.time_budget,
            "elapsed": round(self.elapsed, 4),
            "budget_used": round(self.budget_used, 4),
            "budget_start": None if b0 is None else round(b0, 4),
            "checks_seconds": round(sum(used.values()), 4),
            "left": None if self.time_budget is None else round(self.time_budget - self.budget_used, 4),
            "per_check": used,
            "started_at": started,
            "started_late": [k for k, v in started.items() if self.time_budget is not None and b0 is not None
                             and v >= b0 and v - b0 > self.time_budget],
            "budget_limited": [r.name for r in self.budget_skipped],
        }

    def counts(self) -> Dict[str, int]:
        return {s: len(self._with(s)) for s in STATUSES}

    # ------------------------------------------------------------------ findings
    def findings(self, min_severity: str = "warning") -> List[Finding]:
        """The issues as `Finding`s (most severe first). Advice-level ("info") issues are left
        out unless `min_severity="info"`."""
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {SEVERITIES}, got {min_severity!r}")
        floor = SEVERITIES.index(min_severity)
        out = []
        for r in self.rows:
            for i in r.issues:
                if SEVERITIES.index(i.severity) < floor:
                    continue
                out.append(Finding(
                    rule=f"preflight.{r.name}", severity=i.severity, symptom=i.message,
                    evidence=to_jsonable({**r.evidence, **i.evidence}),
                    causes=[], fixes=[i.fix] if i.fix else [], tips=list(r.tips), tag=i.tag,
                ))
        return sort_findings(out)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "backend": self.backend,
            "time_budget": self.time_budget,
            "elapsed": round(self.elapsed, 4),
            "budget_used": round(self.budget_used, 4),
            "budget_start": None if self.budget_start is None else round(float(self.budget_start), 4),
            "sample": to_jsonable(self.sample),
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    @classmethod
    def from_dict(cls, d: dict) -> "PreflightReport":
        return cls([CheckResult.from_dict(r) for r in d.get("rows", [])], time_budget=d.get("time_budget"),
                   elapsed=d.get("elapsed", 0.0), sample=d.get("sample"), backend=d.get("backend"),
                   budget_used=d.get("budget_used"), budget_start=d.get("budget_start"))

    def save(self, path: str) -> str:
        """Write the report as JSON (atomically)."""
        from kerasrecipe.io import atomic_write_json

        atomic_write_json(path, self.to_dict())
        return path

    # ------------------------------------------------------------------ display
    def table(self):
        """A rich Table of the rows."""
        from rich.table import Table

        c = self.counts()
        budget = "" if self.time_budget is None else (f"; training checks {self.budget_used:.1f} s of a "
                                                      f"{self.time_budget:g} s budget")
        t = Table(title=f"kerasrecipe preflight: {c['passed']} passed, {c['warning']} warnings, "
                        f"{c['failed']} failed, {c['skipped']} skipped ({self.elapsed:.1f} s{budget})",
                  show_lines=False, expand=False)
        t.add_column("check")
        t.add_column("tip", style="dim")
        t.add_column("status")
        t.add_column("evidence", overflow="fold", max_width=70)
        t.add_column("fix", overflow="fold", max_width=50)
        for r in self.rows:
            text = r.summary
            if r.status == "skipped" and r.reason and r.reason != r.summary:
                text = f"{r.summary} ({r.reason})"
            t.add_row(r.title, ",".join(r.tips), f"[{_STYLE[r.status]}]{r.status}[/]", text, r.fix or "")
        return t

    def print(self, console=None) -> None:
        from rich.console import Console

        (console or Console()).print(self.table())

    def __repr__(self):
        c = self.counts()
        return (f"PreflightReport({c['passed']} passed, {c['warning']} warnings, {c['failed']} failed, "
                f"{c['skipped']} skipped, {self.elapsed:.2f}s)")

    def __str__(self):
        lines = [repr(self)]
        for r in self.rows:
            lines.append(f"  {r.status.upper():8s} {r.name}: {r.summary}" + (f"  Fix: {r.fix}" if r.fix else ""))
        return "\n".join(lines)


