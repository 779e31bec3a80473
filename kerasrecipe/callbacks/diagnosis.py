"""DiagnosisCallback: the diagnosis rules during and after fit (tips G1, G5, C10).

At every epoch end it runs `kerasrecipe.diagnose.diagnose_run(runlog, live=True)` and prints each
finding once, the first time it is seen (keyed by rule and layer). At the end of fit it runs the
rules on the whole run, writes `findings.json` (most severe first), prints the findings as a
rich table, and finishes the run directory: `best.json` (monitored metric, its best value and
epoch, the best checkpoint), an `end` event, and — when the run directory was named
automatically — the directory is renamed to carry the best value, e.g.
`runs/adam-lr3e-04-bs32-plateau-s42-20261127-010203` becomes
`runs/adam-lr3e-04-bs32-plateau-s42-20261127-010203-best_val_loss0.0912` (tip A4; the value with 4 significant digits). The rename is
atomic (one os.rename in the same parent); the callbacks follow the new path, and a later fit
renames again from the original name. If the rename fails the directory keeps its name and
`best.json` still says everything. `best.json` is also rewritten at every epoch end, so a fit that
is interrupted (an exception, Ctrl-C) leaves it in agreement with the checkpoints and history.csv
(the directory's name keeps the value of the last finished fit).

Nothing is printed when fit runs with verbose=0; the files are written all the same.
"""
from __future__ import annotations

import math
import os
from typing import List, Optional

import keras

from kerasrecipe.callbacks._context import RunContext, monitor_mode, move_run_dir
from kerasrecipe.io import atomic_write_json


def best_of(runlog, monitor: str):
    """(value, run epoch) of the best finite `monitor` over the epoch records, or (None, None)."""
    best = (None, None)
    sign = -1.0 if monitor_mode(monitor) == "max" else 1.0
    for r in runlog.of("epoch"):
        logs = r.get("logs", {})
        v, loss = logs.get(monitor), logs.get("loss", 0.0)
        if v is None or not math.isfinite(v) or loss is None or not math.isfinite(loss):
            continue
        if best[0] is None or sign * v < sign * best[0]:
            best = (float(v), r.get("epoch"))
    return best


def write_best(ctx: RunContext, checkpoint=None):
    """best.json (the best epoch of the monitored metric so far and its checkpoint); returns
    (value, epoch). Written at every epoch end and at the end of fit, so it agrees with the
    checkpoints and history.csv even when a fit is interrupted."""
    value, epoch = best_of(ctx.runlog, ctx.monitor)
    if ctx.run_dir is not None:
        best_file = None
        if checkpoint is not None and checkpoint.best is not None:
            best_file = os.path.join("checkpoints", checkpoint.best["file"])
        atomic_write_json(ctx.path("best.json"), {"monitor": ctx.monitor, "value": value, "epoch": epoch,
                                                  "checkpoint": best_file,
                                                  "monitor_fallback": ctx.monitor_fallback})
    return value, epoch


def finish_run(ctx: RunContext, checkpoint=None, tensorboard=None) -> Optional[str]:
    """best.json, the `end` event and the best-metric rename; returns the run directory."""
    value, epoch = write_best(ctx, checkpoint)
    ctx.runlog.log("event", epoch=ctx.epoch, step=ctx.step, event="end",
                   message=f"fit {ctx.fit_index} ended" + (f" ({ctx.stopped_reason})" if ctx.stopped_reason else ""),
                   best_value=value, best_epoch=epoch, monitor=ctx.monitor)
    if ctx.run_dir is None:
        return None
    if ctx.rename_at_end and value is not None and ctx.base_dir:
        if tensorboard is not None:
            ctx.tensorboard = tensorboard
        move_run_dir(ctx, f"{ctx.base_dir}-best_{ctx.monitor}{value:.4g}")
    return ctx.run_dir


class DiagnosisCallback(keras.callbacks.Callback):
    """Runs the diagnosis rules live and at the end of fit; writes findings.json (see module doc).

    Args:
        live: run the rules at every epoch end and print new findings once (default: config's
            live_findings).
        enabled: run the rules at all (default: config's diagnose). When False the callback only
            finishes the run directory.
        console: a rich Console to print to (default: a new one on stdout).
        context: the RunContext shared with the other recipe callbacks (default() passes it).

    Attributes:
        findings: the findings of the last end-of-fit diagnosis.

    Example:
        >>> diag = DiagnosisCallback()
        >>> model.fit(x, y, callbacks=[RunLogger(run_dir="runs/a", context=ctx), diag])
        >>> [f.tag for f in diag.findings]
    """

    def __init__(self, live: Optional[bool] = None, enabled: Optional[bool] = None, console=None,
                 context: Optional[RunContext] = None, checkpoint=None, tensorboard=None):
        super().__init__()
        self.context = context if context is not None else RunContext()
        cfg = self.context.config
        self.live = cfg.live_findings if live is None else bool(live)
        self.enabled = cfg.diagnose if enabled is None else bool(enabled)
        self.console = console
        self.checkpoint = checkpoint
        self.tensorboard = tensorboard
        self.findings: List = []
        self._seen = set()
        self._to_print: List = []

    @property
    def runlog(self):
        return self.context.runlog

    def get_config(self):
        return {"live": self.live, "enabled": self.enabled}

    def _verbose(self) -> bool:
        return (self.params or {}).get("verbose", 1) not in (0, False)

    def _console(self):
        if self.console is None:
            from rich.console import Console

            self.console = Console()
        return self.console

    def _record(self, findings):
        new = []
        for f in findings:
            if f.key() in self._seen:
                continue
            self._seen.add(f.key())
            d = f.to_dict()
            epoch, step = d.pop("epoch", None), d.pop("step", None)
            self.runlog.log("finding", epoch=epoch, step=step, **d)
            new.append(f)
        return new

    def on_epoch_end(self, epoch, logs=None):
        write_best(self.context, self.checkpoint)
        if not (self.enabled and self.live):
            return
        from kerasrecipe.diagnose import diagnose_run

        new = self._record(diagnose_run(self.runlog, live=True))
        if new and self._verbose():
            # printed at the next epoch begin: Keras's progress bar finishes its line after us
            self._to_print.extend(new)

    def on_epoch_begin(self, epoch, logs=None):
        self._print_pending()

    def _print_pending(self):
        if not self._to_print:
            return
        from rich.markup import escape

        styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
        for f in self._to_print:
            self._console().print(f"[{styles.get(f.severity, '')}]finding[/] {escape(str(f))}")
        self._to_print = []

    def on_train_end(self, logs=None):
        ctx = self.context
        self._print_pending()
        if self.enabled:
            from kerasrecipe.diagnose import diagnose_run, print_findings

            self.findings = diagnose_run(self.runlog, live=False)  # ranked: causes before their symptoms
            self._record(self.findings)
            if ctx.run_dir is not None:
                atomic_write_json(ctx.path("findings.json"), [f.to_dict() for f in self.findings])
            if self._verbose():
                print_findings(self.findings, console=self._console())
        elif ctx.run_dir is not None:
            atomic_write_json(ctx.path("findings.json"), [])
        ctx.runlog.flush()
        finish_run(ctx, checkpoint=self.checkpoint, tensorboard=self.tensorboard)
        ctx.runlog.flush()
