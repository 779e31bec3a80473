"""The run log (tip A3): everything measured during a run, with the step and epoch it belongs to.

In memory as a list of plain dict records, and, when the log has a directory, appended as JSON
lines to `RUN_DIR/runlog.jsonl` as they come. Diagnosis rules read only this (no Keras), so the
same rules run live during fit and later on a saved run directory (`RunLog.load(run_dir)`).

Record kinds (every record has "kind", and "epoch"/"step" where they apply; epochs are 0-based,
steps count optimizer steps from the start of the run):

  meta     once per fit: {"model": {"name", "params", "trainable_params",
                                    "layers": [{"name", "class", "activation", "units"}]},
                          "loss": str, "task": "classification"|"regression"|"unknown",
                          "num_classes": int|None, "from_logits": bool|None,
                          "num_samples": int|None, "steps_per_epoch": int|None,
                          "epochs": int, "has_validation": bool, "backend": str}
  epoch    {"epoch", "step", "logs": {"loss", "val_loss", <metrics>...}, "lr"}
  batch    {"epoch", "step", "loss" (this batch's own loss, not the epoch's running mean), "lr"}
  grad     {"epoch", "step", "global_norm", "clipped": bool}   (clipping optimizer / probes)
  layer    {"epoch", "step", "layer", "index", "class", "activation",
            "act": {"count", "mean", "std", "min", "max", "zero_frac", "sat_frac", "nan", "inf"},
            "grad_norm", "weight_norm", "update_ratio"}       (health probe; any value may be None)
  event    {"epoch", "step", "event": "nan"|"stop"|"resume"|"note"|..., "message", + details
            e.g. {"where": "activation"|"gradient"|"loss"|"weights", "layer": name}}
  finding  a Finding.to_dict() plus "kind": "finding"
  preflight  the preflight report's dict
  lr_find    {"lrs", "losses", "smoothed", "suggestion"}
"""
from __future__ import annotations

import atexit
import math
import os
import time
import weakref
from typing import Iterable, List, Optional

from kerasrecipe.io import append_jsonl, atomic_write_jsonl, read_jsonl

RUNLOG_FILE = "runlog.jsonl"


class RunLog:
    """Append-only log of records; optionally mirrored to `run_dir/runlog.jsonl`."""

    def __init__(self, run_dir: Optional[str] = None, records: Optional[Iterable[dict]] = None):
        self.run_dir = run_dir
        self.records: List[dict] = list(records or [])
        self._pending: List[dict] = []
        if run_dir is not None:
            os.makedirs(run_dir, exist_ok=True)
        _LIVE.add(self)  # records still buffered are written when the interpreter exits (a crash included)

    # ---------------------------------------------------------------- writing
    def log(self, kind: str, *, epoch: Optional[int] = None, step: Optional[int] = None, flush=True, **values) -> dict:
        rec = {"kind": kind, "time": time.time()}
        if epoch is not None:
            rec["epoch"] = int(epoch)
        if step is not None:
            rec["step"] = int(step)
        rec.update(values)
        self.records.append(rec)
        if self.run_dir is not None:
            self._pending.append(rec)
            if flush:
                self.flush()
        return rec

    def flush(self) -> None:
        if self.run_dir is not None and self._pending:
            append_jsonl(os.path.join(self.run_dir, RUNLOG_FILE), self._pending)
            self._pending = []

    def discard_after(self, step: int, kinds=("batch", "layer", "grad")) -> int:
        """Forget the records of `kinds` (per-step records) with a step after `step`, in memory and
        in runlog.jsonl (rewritten atomically): a fit resumed from a backup taken after `step` redoes
        those steps, which would otherwise appear twice. Returns how many records were dropped."""
        def stale(r):
            return r.get("kind") in kinds and r.get("step") is not None and int(r["step"]) > int(step)

        self.flush()
        kept = [r for r in self.records if not stale(r)]
        dropped = len(self.records) - len(kept)
        self.records = kept
        path = None if self.run_dir is None else os.path.join(self.run_dir, RUNLOG_FILE)
        if path is not None and os.path.exists(path):
            on_disk = read_jsonl(path)
            kept_disk = [r for r in on_disk if not stale(r)]
            if len(kept_disk) != len(on_disk):
                atomic_write_jsonl(path, kept_disk)
                dropped = max(dropped, len(on_disk) - len(kept_disk))
        return dropped

    # ---------------------------------------------------------------- reading
    @classmethod
    def load(cls, run_dir: str) -> "RunLog":
        path = os.path.join(run_dir, RUNLOG_FILE)
        if not os.path.exists(path):
            from kerasrecipe.errors import ConfigError

            raise ConfigError(f"{run_dir!r} is not a run directory: {RUNLOG_FILE} is missing")
        log = cls(None, read_jsonl(path))
        log.run_dir = run_dir
        return log

    def of(self, kind: str) -> List[dict]:
        return [r for r in self.records if r.get("kind") == kind]

    def last(self, kind: str) -> Optional[dict]:
        for r in reversed(self.records):
            if r.get("kind") == kind:
                return r
        return None

    @property
    def meta(self) -> dict:
        m = self.last("meta")
        return dict(m) if m else {}

    def epoch_series(self, key: str) -> List[float]:
        """Per-epoch values of a logged metric (e.g. "loss", "val_loss"); NaN where absent."""
        out = []
        for r in self.of("epoch"):
            v = r.get("logs", {}).get(key)
            out.append(float("nan") if v is None else float(v))
        return out

    def has_metric(self, key: str) -> bool:
        return any(not math.isnan(v) for v in self.epoch_series(key))

    def layer_names(self) -> List[str]:
        seen = []
        for r in self.of("layer"):
            if r["layer"] not in seen:
                seen.append(r["layer"])
        return seen

    def __len__(self):
        return len(self.records)


_LIVE: "weakref.WeakSet[RunLog]" = weakref.WeakSet()


@atexit.register
def _flush_live_logs():  # a fit that raised leaves up to RunLogger.FLUSH_SECONDS of batch records buffered
    for log in list(_LIVE):
        try:
            log.flush()
        except Exception:  # pragma: no cover - a run directory removed meanwhile
            pass
