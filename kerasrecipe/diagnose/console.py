"""`print_findings`: the findings as a rich table, most severe first."""
from __future__ import annotations

from typing import Iterable, Optional

from kerasrecipe.diagnose._view import ep
from kerasrecipe.diagnose.finding import Finding

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def findings_table(findings: Iterable[Finding], title: str = "kerasrecipe diagnosis"):
    """A `rich.table.Table` of the findings (most severe first); the text is escaped, so brackets
    in a message (`x[i]`) print as written."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=True, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", no_wrap=True)
    table.add_column("where", no_wrap=True)
    table.add_column("symptom")
    table.add_column("fix")
    table.add_column("tips", no_wrap=True)
    # most severe first; the given order otherwise (diagnose_run's: causes before their symptoms)
    for f in sorted(findings, key=lambda f: -f.rank):
        where = []
        if f.layer:
            where.append(f"layer {f.layer}")
        if f.epoch is not None:
            where.append(f"epoch {ep(f.epoch)}")
        if f.step is not None:
            where.append(f"step {f.step}")
        fix = f.fixes[0] if f.fixes else ""
        if f.causes:
            fix = f"likely: {f.causes[0]}\n→ {fix}" if fix else f"likely: {f.causes[0]}"
        table.add_row(f"[{_STYLE[f.severity]}]{f.severity}[/]", escape(f.tag or f.rule),
                      escape("\n".join(where) or "-"), escape(f.symptom), escape(fix), escape(" ".join(f.tips)))
    return table


def print_findings(findings: Iterable[Finding], console=None, *, title: str = "kerasrecipe diagnosis",
                   min_severity: Optional[str] = None) -> int:
    """Print findings as a rich table, most severe first; returns how many were printed.

    Args:
        findings: `Finding` objects (or their dicts, e.g. read back from findings.json).
        console: a `rich.console.Console` (default: a new one on stdout).
        title: the table's title.
        min_severity: "info" | "warning" | "error" to leave out less severe findings.

    Example:
        >>> from kerasrecipe.diagnose import diagnose_run, print_findings
        >>> print_findings(diagnose_run("runs/my-run"))  # doctest: +SKIP
    """
    from rich.console import Console

    from kerasrecipe.diagnose.finding import SEVERITIES

    items = [f if isinstance(f, Finding) else Finding.from_dict(f) for f in findings]
    if min_severity is not None:
        if min_severity not in SEVERITIES:
            from kerasrecipe.errors import ConfigError

            raise ConfigError(f"min_severity must be one of {SEVERITIES}, got {min_severity!r}")
        items = [f for f in items if f.rank >= SEVERITIES.index(min_severity)]
    console = console or Console()
    if not items:
        console.print("[green]kerasrecipe diagnosis: no findings[/]")
        return 0
    console.print(findings_table(items, title=title))
    return len(items)
