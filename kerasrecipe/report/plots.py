"""The run report's figures, drawn from a run's records (no Keras, no training).

Every function takes plain data (RunLog records, arrays) and returns a matplotlib `Figure`, or
None when there is nothing to draw. Figures are created with `matplotlib.figure.Figure` directly
(the Agg canvas), never through pyplot: nothing opens a window and no global state is touched.
`to_png(fig)` turns one into PNG bytes.
"""
from __future__ import annotations

import io
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from kerasrecipe.io import figure_png

# Colors: one per series, colour-blind safe (Okabe-Ito), then matplotlib's cycle.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
MAX_LAYER_PANELS = 12
LOG2_EMIN_LABEL_SKIP = -20  # the smallest magnitude bins sit next to 0: label 0 only


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    # no layout engine: constrained layout doubles the drawing cost; margins are set by _margins
    return Figure(figsize=(width, height), dpi=100)


def _margins(fig, left=0.75, right=0.2, bottom=0.5, top=0.35, hspace=0.3, wspace=0.3):
    """Subplot margins in inches (not fractions), so they hold whatever the figure's size."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=min(left / w, 0.45), right=max(1 - right / w, 0.55), bottom=min(bottom / h, 0.45),
                        top=max(1 - top / h, 0.55), hspace=hspace, wspace=wspace)


def _legend_width(names) -> float:
    """Inches a legend of these labels needs outside the axes (fontsize 7)."""
    return 0.75 + 0.065 * max([len(str(n)) for n in names] + [6])


def to_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (deterministic: no timestamp in the file)."""
    return figure_png(fig, dpi, tight=False)


def _finite(values) -> np.ndarray:
    a = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return a


def _has_finite(a) -> bool:
    return bool(np.any(np.isfinite(np.asarray(a, dtype=np.float64))))


def _pos(a) -> np.ndarray:
    """Values for a log axis: non-positive ones become NaN (a gap, not a plunge to -inf)."""
    a = np.array(a, dtype=np.float64)
    a[~(a > 0)] = np.nan
    return a


def _positive_log(ax, values, *, all_positive: bool = False) -> None:
    """Log y scale when the values are positive: any of them (norms, ratios: zeros become gaps),
    or, with `all_positive`, all of them (losses: a negative loss keeps the linear scale)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size and (np.all(a > 0) if all_positive else np.any(a > 0)):
        ax.set_yscale("log")


# --------------------------------------------------------------------------- LR finder
def lr_find_plot(rec: dict):
    """Loss against learning rate (log x), the smoothed curve and the suggestion (tip D2)."""
    lrs = _finite(rec.get("lrs") or [])
    losses = _finite(rec.get("losses") or [])
    if lrs.size == 0 or losses.size == 0 or not _has_finite(losses):
        return None
    n = min(lrs.size, losses.size)
    lrs, losses = lrs[:n], losses[:n]
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    ax.plot(lrs, losses, color=COLORS[5], alpha=0.6, lw=1, label="loss per step")
    smoothed = rec.get("smoothed")
    if smoothed:
        sm = _finite(smoothed)[:n]
        ax.plot(lrs[: sm.size], sm, color=COLORS[0], lw=2, label="smoothed")
        ref = sm
    else:
        ref = losses
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    # keep the divergence at the end from squashing the interesting part
    fin = ref[np.isfinite(ref)]
    if fin.size:
        lo, start = float(np.min(fin)), float(fin[0])
        top = start + 1.5 * max(start - lo, 1e-8)
        if np.nanmax(losses) > top:
            ax.set_ylim(lo - 0.1 * (top - lo), top)
    sug = rec.get("suggestion")
    if sug is not None and np.isfinite(float(sug)) and float(sug) > 0:
        ax.axvline(float(sug), color=COLORS[1], ls="--", lw=1.5, label=f"suggestion {float(sug):.2e}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("LR range test: pick where the loss falls fastest (D2)", fontsize=10)
    _margins(fig)
    return fig


# --------------------------------------------------------------------------- training curves
_NOT_METRICS = {"lr", "learning_rate"}


def metric_names(epoch_records: Sequence[dict]) -> List[str]:
    """Non-loss metrics logged per epoch, without their val_ twins (e.g. ['accuracy'])."""
    names = []
    for r in epoch_records:
        for k in (r.get("logs") or {}):
            base = k[4:] if k.startswith("val_") else k
            if base == "loss" or base in _NOT_METRICS or base in names:
                continue
            names.append(base)
    return names


def curves_plot(epoch_records: Sequence[dict], batch_records: Sequence[dict] = (),
                steps_per_epoch: Optional[int] = None, events: Sequence[dict] = ()):
    """Train/val loss, the other metrics, and the learning rate, per epoch (tips A6, F3, G1)."""
    if not epoch_records:
        return None
    epochs = np.asarray([int(r.get("epoch", i)) + 1 for i, r in enumerate(epoch_records)])

    def series(key):
        return _finite([(r.get("logs") or {}).get(key) for r in epoch_records])

    metrics = metric_names(epoch_records)
    lr = _finite([r.get("lr") for r in epoch_records])
    has_lr = _has_finite(lr) or any(b.get("lr") is not None for b in batch_records)
    nrows = 1 + (1 if metrics else 0) + (1 if has_lr else 0)
    fig = _figure(8.5, 2.6 * nrows + 0.4)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False)[:, 0]

    ax = axes[0]
    if batch_records and steps_per_epoch:
        bx = np.asarray([(int(b.get("step", 0)) + 1) / float(steps_per_epoch) for b in batch_records])
        by = _finite([b.get("loss") for b in batch_records])
        ax.plot(bx, by, color=COLORS[5], alpha=0.35, lw=0.8, label="train loss (batch)")
    ax.plot(epochs, series("loss"), "-o", ms=3, color=COLORS[0], label="train loss")
    if _has_finite(series("val_loss")):
        vl = series("val_loss")
        ax.plot(epochs, vl, "-o", ms=3, color=COLORS[1], label="val loss")
        if np.any(np.isfinite(vl)):
            best = int(np.nanargmin(vl))
            ax.axvline(epochs[best], color=COLORS[1], ls=":", lw=1)
            ax.annotate(f"best val {vl[best]:.4g}", (epochs[best], vl[best]), textcoords="offset points", ha="right",
                        xytext=(-4, 8), fontsize=8, color=COLORS[1])
    _positive_log(ax, np.concatenate([series("loss"), series("val_loss")]), all_positive=True)
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.25)
    ax.legend(loc="upper right", fontsize=8)
    for ev in events:
        if ev.get("event") in ("nan", "stop", "resume") and ev.get("epoch") is not None:
            ax.axvline(int(ev["epoch"]) + 1, color="#b00", lw=1, alpha=0.6)
            ax.annotate(ev["event"], (int(ev["epoch"]) + 1, ax.get_ylim()[1]), fontsize=7, color="#b00",
                        rotation=90, va="top", ha="right")
    row = 1
    if metrics:
        ax = axes[row]
        row += 1
        for i, m in enumerate(metrics[:4]):
            c = COLORS[(2 * i) % len(COLORS)]
            ax.plot(epochs, series(m), "-o", ms=3, color=c, label=m)
            if _has_finite(series("val_" + m)):
                ax.plot(epochs, series("val_" + m), "--s", ms=3, color=c, alpha=0.8, label="val_" + m)
        ax.set_ylabel("metric")
        ax.grid(True, alpha=0.25)
        ax.legend(loc="best", fontsize=8)
    if has_lr:
        ax = axes[row]
        if batch_records and steps_per_epoch and any(b.get("lr") is not None for b in batch_records):
            bx = np.asarray([(int(b.get("step", 0)) + 1) / float(steps_per_epoch) for b in batch_records])
            ax.plot(bx, _pos(_finite([b.get("lr") for b in batch_records])), color=COLORS[4], lw=1.2, label="lr (batch)")
        if _has_finite(lr):
            ax.plot(epochs, _pos(lr), "o", ms=3, color=COLORS[3], label="lr (epoch end)")
        _positive_log(ax, lr)
        ax.set_ylabel("learning rate")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("epoch")
    _margins(fig, left=0.85, top=0.15, hspace=0.12)
    return fig


# --------------------------------------------------------------------------- activations
def _layer_table(layer_records: Sequence[dict]):
    """(layer names in index order, sorted probe steps, {(layer, step): record})."""
    order: Dict[str, int] = {}
    table = {}
    steps = set()
    for r in layer_records:
        name = r.get("layer")
        if name is None:
            continue
        order.setdefault(name, int(r.get("index", len(order))))
        step = int(r.get("step", 0))
        steps.add(step)
        table[(name, step)] = r
    names = sorted(order, key=lambda n: order[n])
    return names, sorted(steps), table


def _matrix(names, steps, table, getter):
    m = np.full((len(names), len(steps)), np.nan)
    for i, n in enumerate(names):
        for j, s in enumerate(steps):
            r = table.get((n, s))
            if r is not None:
                v = getter(r)
                if v is not None:
                    m[i, j] = float(v)
    return m


def _act(key):
    def get(r):
        a = r.get("act") or {}
        return a.get(key)

    return get


def _step_ticks(ax, steps, max_ticks=8):
    n = len(steps)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_ticks)).round().astype(int)) if n else []
    ax.set_xticks(idx)
    ax.set_xticklabels([str(steps[i]) for i in idx], fontsize=7)


def activation_lines_plot(layer_records: Sequence[dict]):
    """Mean and std of each layer's activations over the probe steps (fastai's ActivationStats)."""
    names, steps, table = _layer_table(layer_records)
    mean = _matrix(names, steps, table, _act("mean"))
    std = _matrix(names, steps, table, _act("std"))
    if not (_has_finite(mean) or _has_finite(std)):
        return None
    fig = _figure(8 + _legend_width(names), 3.4)
    a1, a2 = fig.subplots(1, 2)
    for i, n in enumerate(names):
        c = COLORS[i % len(COLORS)] if i < len(COLORS) else None
        a1.plot(steps, mean[i], "-", marker=".", color=c, lw=1.2, label=n)
        a2.plot(steps, _pos(std[i]), "-", marker=".", color=c, lw=1.2, label=n)
    a1.set_title("activation mean", fontsize=10)
    a2.set_title("activation std", fontsize=10)
    _positive_log(a2, std)
    for a in (a1, a2):
        a.set_xlabel("step")
        a.grid(True, alpha=0.25)
    a2.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    _margins(fig, right=_legend_width(names), top=0.35, wspace=0.25)
    return fig


def dead_saturated_plot(layer_records: Sequence[dict]):
    """Heatmaps layers x probe steps of the dead (exactly zero) and saturated fractions (G3)."""
    names, steps, table = _layer_table(layer_records)
    dead = _matrix(names, steps, table, _act("zero_frac"))
    sat = _matrix(names, steps, table, _act("sat_frac"))
    if not (_has_finite(dead) or _has_finite(sat)):
        return None
    fig = _figure(9.5, 1.3 + 0.32 * max(len(names), 3))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, m, title, cmap in ((axes[0], dead, "dead fraction (activation == 0)", "Reds"),
                               (axes[1], sat, "saturated fraction (|a| >= threshold)", "Purples")):
        im = ax.imshow(np.nan_to_num(m, nan=0.0), aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                       interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        _step_ticks(ax, steps)
        ax.set_xlabel("probe step")
        if len(steps) <= 12 and len(names) <= 16:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    if np.isfinite(m[i, j]) and m[i, j] >= 0.005:
                        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if m[i, j] > 0.6 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    _margins(fig, left=0.25 + 0.06 * max(len(n) for n in names), right=0.1, bottom=0.55, top=0.3, wspace=0.15)
    return fig


def _hist_edges(length: int, rec_edges=None) -> Optional[np.ndarray]:
    if rec_edges is not None and len(rec_edges) == length + 1:
        return np.asarray(rec_edges, dtype=np.float64)
    from kerasrecipe.kernels._hist import N_LOG_BINS, parse_bins

    if length == N_LOG_BINS:
        return parse_bins(None).edges()
    return None


def colorful_dimension_plot(layer_records: Sequence[dict]):
    """Per-layer histograms over time, log-count colour (fastai's "colorful dimension", G3).

    x: probe step; y: activation value bins (the kernels' sign/exponent bins: ..., -1, -2**-20,
    0, 2**-20, ..., 1, ... — a signed log scale); colour: log(1 + count). A healthy layer is a
    wide band that stays put; a dead ReLU layer collapses into the 0 bin; saturation piles up at
    the ends.
    """
    names, steps, table = _layer_table(layer_records)
    with_hist = [n for n in names if any(((table.get((n, s)) or {}).get("act") or {}).get("hist") for s in steps)]
    if not with_hist:
        return None
    shown = with_hist[:MAX_LAYER_PANELS]
    ncols = min(3, len(shown))
    nrows = int(math.ceil(len(shown) / ncols))
    fig = _figure(3.3 * ncols + 0.4, 2.3 * nrows + 0.7)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, name in zip(axes, shown):
        cols, length, edges = [], None, None
        for s in steps:
            act = (table.get((name, s)) or {}).get("act") or {}
            h = act.get("hist")
            if h is None:
                cols.append(None)
                continue
            h = np.asarray(h, dtype=np.float64)
            length = length or h.size
            if edges is None:
                edges = _hist_edges(h.size, act.get("hist_edges"))
            cols.append(h if h.size == length else None)
        mat = np.stack([c if c is not None else np.zeros(length) for c in cols], axis=1)
        # crop to the rows that were ever used (keeps the band readable), one bin of margin
        used = np.nonzero(mat.sum(axis=1) > 0)[0]
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, length)
        lo, hi = max(lo - 1, 0), min(hi + 1, length)
        ax.imshow(np.log1p(mat[lo:hi]), aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        _step_ticks(ax, steps, max_ticks=5)
        if edges is not None:
            ticks, labels = [], []
            for b in range(lo, hi):
                left, right = edges[b], edges[b + 1]
                centre_zero = left < 0 < right
                if centre_zero:
                    ticks.append(b - lo)
                    labels.append("0")
                else:
                    mag = min(abs(left), abs(right))
                    e = round(math.log2(mag)) if mag > 0 else None
                    if e is not None and e % 5 == 0 and e != LOG2_EMIN_LABEL_SKIP:
                        ticks.append(b - lo)
                        labels.append(("-" if right <= 0 else "") + f"2^{e}")
            ax.set_yticks(ticks)
            ax.set_yticklabels(labels, fontsize=6)
        else:
            ax.set_ylabel("bin", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("activation histograms over time (x: step, y: value bins, colour: log count)", fontsize=10)
    _margins(fig, left=0.55, right=0.1, bottom=0.35, top=0.6, hspace=0.45, wspace=0.3)
    return fig


# --------------------------------------------------------------------------- gradients
def gradient_plot(grad_records: Sequence[dict], layer_records: Sequence[dict], clipnorm: Optional[float] = None):
    """Global gradient norm over steps, per-layer gradient norms, update/weight ratios (G3, G4)."""
    names, steps, table = _layer_table(layer_records)
    gnorm = _matrix(names, steps, table, lambda r: r.get("grad_norm"))
    ratio = _matrix(names, steps, table, lambda r: r.get("update_ratio"))
    panels = []
    if grad_records:
        panels.append("global")
    if _has_finite(gnorm):
        panels.append("layer")
    if _has_finite(ratio):
        panels.append("ratio")
    if not panels:
        return None
    fig = _figure(7.5 + _legend_width(names + ["global norm (optimizer)"]), 2.4 * len(panels) + 0.6)
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for ax, panel in zip(axes, panels):
        if panel == "global":
            by_source: Dict[str, list] = {}
            for r in grad_records:
                by_source.setdefault(r.get("source") or "probe", []).append(r)
            for i, (src, recs) in enumerate(sorted(by_source.items())):
                xs = np.asarray([int(r.get("step", 0)) for r in recs])
                ys = _pos(_finite([r.get("global_norm") for r in recs]))
                style = "-" if src == "optimizer" else "-o"
                ax.plot(xs, ys, style, ms=3, lw=1, color=COLORS[i], label=f"global norm ({src})")
                clipped = np.asarray([bool(r.get("clipped")) for r in recs])
                if clipped.any():
                    ax.plot(xs[clipped], ys[clipped], "x", color="#b00", ms=5, label="clipped")
            if clipnorm:
                ax.axhline(float(clipnorm), color="#b00", ls="--", lw=1, label=f"clipnorm {clipnorm:g}")
            _positive_log(ax, [r.get("global_norm") or np.nan for r in grad_records])
            ax.set_ylabel("global grad norm")
        elif panel == "layer":
            for i, n in enumerate(names):
                if _has_finite(gnorm[i]):
                    ax.plot(steps, _pos(gnorm[i]), "-", marker=".", lw=1, color=COLORS[i % len(COLORS)], label=n)
            _positive_log(ax, gnorm)
            ax.set_ylabel("layer grad norm")
        else:
            for i, n in enumerate(names):
                if _has_finite(ratio[i]):
                    ax.plot(steps, _pos(ratio[i]), "-", marker=".", lw=1, color=COLORS[i % len(COLORS)], label=n)
            ax.axhspan(1e-4, 1e-2, color=COLORS[2], alpha=0.08)
            ax.axhline(1e-3, color=COLORS[2], ls="--", lw=1, label="1e-3 (G4)")
            _positive_log(ax, ratio)
            ax.set_ylabel("update / weight")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    axes[-1].set_xlabel("step")
    _margins(fig, left=0.85, right=_legend_width(names + ["global norm (optimizer)"]), top=0.15, hspace=0.2)
    return fig


# --------------------------------------------------------------------------- predictions
def confusion_matrix(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    k = int(num_classes or (max(int(y_true.max(initial=0)), int(y_pred.max(initial=0))) + 1))
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def confusion_plot(y_true, y_pred, class_names: Optional[Sequence[str]] = None):
    """Counts of (true, predicted) classes; the diagonal is right (C9)."""
    if y_true is None or y_pred is None or len(y_true) == 0:
        return None
    k = len(class_names) if class_names is not None and len(class_names) else None
    cm = confusion_matrix(y_true, y_pred, k)
    k = cm.shape[0]
    labels = list(class_names) if class_names is not None and len(class_names) == k else [str(i) for i in range(k)]
    size = min(2.2 + 0.33 * k, 9)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, fontsize=8, rotation=45 if max(len(l) for l in labels) > 3 else 0)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        vmax = cm.max() if cm.size else 1
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > 0.6 * vmax else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"confusion matrix — accuracy {acc:.3f} on {int(cm.sum())} samples", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.03)
    _margins(fig, left=0.35 + 0.07 * max(len(l) for l in labels), right=0.2, bottom=0.6, top=0.35)
    return fig


def as_images(x) -> Optional[np.ndarray]:
    """x as (n, H, W) or (n, H, W, 3|4) images, or None when the inputs are not images.

    Accepts (n, H, W), (n, H, W, 1|3|4), (n, 1|3, H, W) (channels first) and flat (n, D) with D a
    square >= 16 (e.g. 64 = 8x8 digits)."""
    if x is None:
        return None
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.number):
        return None
    if x.ndim == 2:
        side = int(round(math.sqrt(x.shape[1])))
        if side * side == x.shape[1] and side >= 4:
            return x.reshape(-1, side, side)
        return None
    if x.ndim == 3 and min(x.shape[1:]) >= 4:
        return x
    if x.ndim == 4:
        if x.shape[-1] == 1:
            return x[..., 0]
        if x.shape[-1] in (3, 4):
            return x
        if x.shape[1] == 1:
            return x[:, 0]
        if x.shape[1] in (3, 4):
            return np.moveaxis(x, 1, -1)
    return None


def image_png(img, *, size: int = 72) -> bytes:
    """One input image as a small PNG (nearest-neighbour upscaled to about `size` pixels, grey
    images dark-on-light), without a figure: cheap enough for a grid of examples."""
    from PIL import Image  # a matplotlib dependency

    a = np.asarray(img, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    lo, hi = float(np.min(a)), float(np.max(a))
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if a.ndim == 2:
        rgb = np.stack([1.0 - a] * 3, axis=-1)  # dark strokes on white, like the gray_r colormap
    else:
        rgb = a[..., :3]
    scale = max(1, int(round(size / max(rgb.shape[0], rgb.shape[1]))))
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).round().astype(np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def cv_plot(fold_scores: Dict[str, Sequence[float]]):
    """One point per fold and the mean ± std per metric (B5)."""
    items = [(k, _finite(v)) for k, v in fold_scores.items() if len(v) and _has_finite(v)]
    if not items:
        return None
    fig = _figure(1.0 + 1.6 * len(items), 3.0)
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for ax, (k, v) in zip(axes, items):
        ax.plot(np.zeros(v.size) + np.linspace(-0.08, 0.08, v.size), v, "o", color=COLORS[0])
        m, s = float(np.nanmean(v)), float(np.nanstd(v))
        ax.errorbar([0.25], [m], yerr=[s], fmt="s", color=COLORS[1], capsize=4)
        ax.set_xticks([])
        ax.set_xlim(-0.3, 0.5)
        ax.set_title(f"{k}\n{m:.4g} ± {s:.2g}", fontsize=8)
        ax.grid(True, axis="y", alpha=0.25)
    _margins(fig, left=0.5, right=0.1, bottom=0.15, top=0.55, wspace=0.6)
    return fig
