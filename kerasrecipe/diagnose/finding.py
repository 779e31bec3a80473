"""A finding: what a diagnosis rule or a preflight check concluded, with evidence and the fix."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional

SEVERITIES = ("info", "warning", "error")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    rule: str                       # the rule's id, e.g. "dead_relu"
    severity: str                   # "info" | "warning" | "error"
    symptom: str                    # one sentence, with numbers
    evidence: dict = field(default_factory=dict)   # numbers, layer, epoch, step
    causes: List[str] = field(default_factory=list)
    fixes: List[str] = field(default_factory=list)
    tips: List[str] = field(default_factory=list)  # recipe tip ids, e.g. ["G3"]
    tag: Optional[str] = None       # fault category, e.g. "dead_relu" (benchmark uses it)
    epoch: Optional[int] = None
    step: Optional[int] = None
    layer: Optional[str] = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding.severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.tag is None:
            self.tag = self.rule

    @property
    def rank(self) -> int:
        return _RANK[self.severity]

    def key(self) -> tuple:
        """Identity for 'print once when first seen'."""
        return (self.rule, self.layer)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)

    def __str__(self):
        where = f" [{self.layer}]" if self.layer else ""
        fix = f" Fix: {self.fixes[0]}" if self.fixes else ""
        return f"{self.severity.upper()} {self.rule}{where}: {self.symptom}{fix}"


def sort_findings(findings: List[Finding]) -> List[Finding]:
    """Most severe first; among equals, earliest epoch first.

    A finding without an epoch (a preflight check, run before training) counts as earliest; the
    sort is stable, so within one severity and epoch the given order (e.g. the rule registry's,
    causes before symptoms) is kept.
    """
    return sorted(findings, key=lambda f: (-f.rank, f.epoch if f.epoch is not None else -1))
