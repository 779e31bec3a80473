"""Read-only helpers the rules share: an index of a run log by record kind, and robust trends.

Pure Python + NumPy; no Keras. One pass over the records builds the index, so the live
diagnosis (every epoch) stays linear in the size of the log.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

_SATURATING = ("tanh", "sigmoid", "hard_sigmoid", "hard_tanh", "softsign")
_RELU = ("relu", "relu6")


def finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def num(v, default=float("nan")) -> float:
    try:
        return float(v) if v is not None else default
    except (TypeError, ValueError):
        return default


class LogView:
    """Records of a run log grouped by kind, plus the derived series the rules use."""

    def __init__(self, records: Iterable[dict]):
        by: Dict[str, List[dict]] = defaultdict(list)
        for r in records:
            by[r.get("kind")].append(r)
        self.by = by
        metas = by.get("meta", [])
        self.meta: dict = dict(metas[-1]) if metas else {}
        self.epochs: List[dict] = by.get("epoch", [])
        self.batches: List[dict] = by.get("batch", [])
        self.grads: List[dict] = by.get("grad", [])
        self.layers: List[dict] = by.get("layer", [])
        self.events: List[dict] = by.get("event", [])

    # ------------------------------------------------------------ epochs
    def epoch_values(self, key: str) -> Tuple[List[int], np.ndarray]:
        """(epoch numbers, values) of a per-epoch metric, in the order recorded."""
        eps, vals = [], []
        for i, r in enumerate(self.epochs):
            eps.append(int(r.get("epoch", i)))
            vals.append(num((r.get("logs") or {}).get(key)))
        return eps, np.asarray(vals, dtype=float)

    def has(self, key: str) -> bool:
        _, v = self.epoch_values(key)
        return bool(np.isfinite(v).any())

    def lrs(self) -> Tuple[List[int], np.ndarray]:
        eps, vals = [], []
        for i, r in enumerate(self.epochs):
            lr = r.get("lr", (r.get("logs") or {}).get("learning_rate", (r.get("logs") or {}).get("lr")))
            eps.append(int(r.get("epoch", i)))
            vals.append(num(lr))
        return eps, np.asarray(vals, dtype=float)

    # ------------------------------------------------------------ probes
    def probes(self) -> List[Tuple[int, Optional[int], List[dict]]]:
        """Health probes as (step, epoch, layer records sorted by index), in step order."""
        groups: Dict[int, List[dict]] = defaultdict(list)
        for r in self.layers:
            groups[int(r.get("step", -1))].append(r)
        out = []
        for step in sorted(groups):
            recs = sorted(groups[step], key=lambda r: (r.get("index") is None, r.get("index") or 0))
            out.append((step, recs[0].get("epoch"), recs))
        return out

    def output_layer(self) -> Optional[str]:
        """Name of the model's last layer (from meta, else the highest probed index)."""
        layers = ((self.meta.get("model") or {}).get("layers")) or []
        if layers:
            return layers[-1].get("name")
        best = None
        for r in self.layers:
            if r.get("index") is not None and (best is None or r["index"] > best.get("index", -1)):
                best = r
        return best.get("layer") if best else None

    # ------------------------------------------------------------ task
    def loss_name(self) -> str:
        return str(self.meta.get("loss") or "").lower().replace("_", "").replace(" ", "")

    def num_classes(self) -> Optional[int]:
        c = self.meta.get("num_classes")
        if isinstance(c, int) and c >= 1:
            return c
        layers = ((self.meta.get("model") or {}).get("layers")) or []
        if layers and isinstance(layers[-1].get("units"), int):
            return layers[-1]["units"]
        return None


def view(log) -> LogView:
    """A LogView of a RunLog, a list of records, or a LogView; cached on the RunLog by length."""
    if isinstance(log, LogView):
        return log
    records = getattr(log, "records", log)
    n = len(records)
    cached = getattr(log, "_diagnose_view", None)
    if cached is not None and cached[0] == n:
        return cached[1]
    v = LogView(records)
    if hasattr(log, "records"):
        try:
            log._diagnose_view = (n, v)
        except AttributeError:  # pragma: no cover - slotted log classes
            pass
    return v


def is_relu(rec: dict) -> bool:
    act = str(rec.get("activation") or "").lower()
    cls = str(rec.get("class") or "")
    return act in _RELU or cls in ("ReLU",)


def is_saturating(rec: dict) -> bool:
    act = str(rec.get("activation") or "").lower()
    return act in _SATURATING or str(rec.get("class") or "") in ("LSTM", "GRU", "SimpleRNN") and act in ("", "tanh")


# ---------------------------------------------------------------- robust trends
def theil_sen(y: Sequence[float]) -> float:
    """Median of pairwise slopes: a trend estimate that one outlier epoch cannot swing."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, 1)
    return float(np.median((y[j] - y[i]) / (j - i)))


def direction(y: Sequence[float], rel_tol: float = 0.05) -> Tuple[str, float]:
    """'up', 'down' or 'flat' for a short series, and its relative change over the series.

    The change is the Theil-Sen slope times the span, relative to the series' median level. It
    counts as a trend only when it exceeds both `rel_tol` of the level and twice the scatter of
    the points about the trend line (1.4826 x MAD: a noise estimate robust to one bad epoch), so
    epoch-to-epoch noise of a flat curve reads as flat.
    """
    y = np.asarray([v for v in y if math.isfinite(v)], dtype=float)
    if len(y) < 3:
        return "flat", 0.0
    x = np.arange(len(y))
    slope = theil_sen(y)
    intercept = float(np.median(y - slope * x))
    resid = y - (intercept + slope * x)
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    level = max(float(np.median(np.abs(y))), 1e-12)
    change = slope * (len(y) - 1)
    rel = change / level
    if abs(change) <= max(rel_tol * level, 2.0 * noise):
        return "flat", rel
    return ("up" if change > 0 else "down"), rel


def zero_gradient_probes(v) -> int:
    """How many gradient records there are when every one reads a global norm of exactly 0 (and
    the training loss is not 0: a perfect fit has zero gradients too); 0 otherwise. No weight can
    change: a saturated output, dead units, or a loss that does not depend on the weights."""
    norms = [num(g.get("global_norm")) for g in v.grads if g.get("global_norm") is not None]
    if len(norms) < 2 or any(n != 0.0 for n in norms):
        return 0
    _, tr = v.epoch_values("loss")
    fin = [x for x in tr if finite(x)]
    return len(norms) if fin and abs(fin[-1]) > 1e-6 else 0


def ep(epoch) -> str:
    """An epoch for symptoms, numbered as Keras's progress bar does ("Epoch 3/10" is index 2)."""
    try:
        return str(int(epoch) + 1)
    except (TypeError, ValueError):
        return "?"


def fmt(v, digits=3) -> str:
    """Numbers for symptoms: 3 significant digits, scientific when tiny or huge."""
    if v is None:
        return "n/a"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(digits - 1, 0)}e}"
    return f"{v:.{digits}g}"
