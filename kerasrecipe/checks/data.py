"""Data checks (B1, B2, B3, B6): what goes into the network, before any training.

Each check fills a CheckResult row: `row.summary`, `row.evidence`, and `row.add(tag, severity,
message, fix)` for every problem. They read the bounded sample only, so they take milliseconds.
"""
from __future__ import annotations

import numpy as np

from kerasrecipe.checks.sample import leaves

NORMALIZE_FIX = ("add keras.layers.Normalization() as the model's first layer and call .adapt(x_train) on the "
                 "training set only, then reuse it for validation/test (B3); for images use "
                 "keras.layers.Rescaling(1/255)")
SCALE_WARN = 5.0          # |feature mean| or feature std above this: not normalised (B3)
SCALE_FAIL = 1000.0       # ... above this: far from normalised, training will struggle
SPREAD_WARN = 1000.0      # ratio of largest to smallest feature std: features on unrelated scales
# B1: a constant column is harmless for training (its weight gets zero gradient) and common
# (image borders, one-hot columns absent from a sample); a warning is kept for when MOST of the
# input is constant, which points at broken loading/extraction rather than at the data itself.
CONSTANT_WARN_FRACTION = 0.5
MAX_FEATURES = 4096       # per-feature statistics on at most this many features


def _is_int_seq(a) -> bool:
    """The shape of padded token sequences: 2-D integers, more than one column. Whether they ARE
    token ids is the model's call: `ctx.id_inputs` (they feed an Embedding)."""
    a = np.asarray(a)
    return a.ndim == 2 and (np.issubdtype(a.dtype, np.integer)) and a.shape[1] > 1


def _features(a, rng=None):
    a = np.asarray(a)
    f = a.reshape(a.shape[0], -1).astype("float64", copy=False)
    if f.shape[1] > MAX_FEATURES:
        rng = rng or np.random.default_rng(0)
        f = f[:, np.sort(rng.choice(f.shape[1], MAX_FEATURES, replace=False))]
    return f


def _nanstats(f):
    fin = np.where(np.isfinite(f), f, np.nan)
    with np.errstate(all="ignore"), _quiet():
        return np.nanmean(fin, 0), np.nanstd(fin, 0)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        self._w.__exit__(*a)


# ---------------------------------------------------------------------- NaN / Inf (B1, G2)
def nonfinite_rows(a):
    """(NaN count, Inf count, indices of the samples (axis 0) holding one) of a float array, or None
    for other dtypes, scalars and empty arrays. The one count of bad samples (preflight, NaNGuard)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating) or a.ndim == 0 or a.size == 0:
        return None
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    rows = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1)) if nan or inf else np.zeros(0, np.int64)
    return nan, inf, rows


def check_finite(ctx, row):
    parts = [("train", ctx.train)] + ([("validation", ctx.val)] if ctx.val is not None else [])
    counts = {}
    for where, s in parts:
        arrays = leaves(s.x) + ([] if s.y is None else leaves(s.y, "y"))
        for name, a in arrays:
            found = nonfinite_rows(a)
            if found is None:
                continue
            nan, inf, bad_rows = found
            if nan or inf:
                counts[f"{where}:{name}"] = {"nan": nan, "inf": inf, "rows": int(bad_rows.size),
                                             "first_rows": bad_rows[:5].tolist()}
    row.evidence["nonfinite"] = counts
    if not counts:
        row.summary = "no NaN or Inf in inputs or targets"
        return
    desc = "; ".join(f"{k}: {v['nan']} NaN, {v['inf']} Inf in {v['rows']} rows (first {v['first_rows']})"
                     for k, v in counts.items())
    row.summary = desc
    row.add("data_nan", "error", f"non-finite values in the data: {desc}",
            "drop or impute those rows (np.isfinite) and check the loading and normalisation code for "
            "division by zero or log(0) (G2)")


# ---------------------------------------------------------------------- constant features (B1)
def check_constant_features(ctx, row):
    out = {}
    for name, a in leaves(ctx.train.x):
        a = np.asarray(a)
        if a.dtype.kind not in "fiub" or name in ctx.id_inputs or len(a) < 2:
            continue
        f = _features(a)
        with _quiet():
            const = np.flatnonzero(np.nanmax(f, 0) == np.nanmin(f, 0))
        out[name] = {"features": int(f.shape[1]), "constant": int(const.size), "first": const[:10].tolist(),
                     "image_like": a.ndim >= 3}
    row.evidence["constant"] = out
    if not out:
        return row.skip("no numeric feature inputs (integer ids read by an Embedding/lookup layer are not "
                        "per-feature data)")
    msgs = []
    for name, d in out.items():
        if d["constant"] == 0:
            continue
        msg = f"{name}: {d['constant']} of {d['features']} features are constant (e.g. {d['first'][:5]})"
        msgs.append(msg)
        if d["constant"] == d["features"]:
            row.add("data_problem", "error", f"{name}: every feature is constant over {ctx.train.n} samples: the "
                    "model cannot learn anything from it", "check the data loading (all rows identical?)")
        elif d["constant"] > CONSTANT_WARN_FRACTION * d["features"]:
            row.add("data_problem", "warning", msg + f": most of the input ({d['constant'] / d['features']:.0%}) "
                    "carries no information", "check the data loading and the feature extraction (a broken "
                    "join or column shift zeroes many features at once)")
        else:
            row.add("data_problem", "info", msg + (" (common for image borders)" if d["image_like"] else "") +
                    ": harmless for training (their weights get no signal), they only cost parameters",
                    "drop them if you like")
    row.summary = "; ".join(msgs) if msgs else "no constant features"


# ---------------------------------------------------------------------- scale (B3)
def network_view(ctx):
    """The training inputs as the network's first trainable layer sees them: through the model's
    leading Normalization / Rescaling layers, when it has them (single-input models)."""
    import keras

    x = ctx.single_input
    if x is None:
        return ctx.train.x, []
    applied = []
    layers = [layer for layer in getattr(ctx.model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if type(layer).__name__ not in ("Normalization", "Rescaling"):
            break
        x = np.asarray(keras.ops.convert_to_numpy(layer(x.astype("float32"))))
        applied.append(type(layer).__name__)
    return x, applied


def input_scale(ctx) -> float:
    """The largest |feature mean| or feature std of the numeric inputs as the network sees them
    (0 when there are none): above SCALE_WARN they are not normalised (B3)."""
    view, _ = network_view(ctx)
    worst = 0.0
    for name, a in leaves(view):
        if np.asarray(a).dtype.kind not in "fiu" or name in ctx.id_inputs:
            continue
        mean, std = _nanstats(_features(a))
        vals = np.concatenate([np.abs(mean), std])
        vals = vals[np.isfinite(vals)]
        if vals.size:
            worst = max(worst, float(vals.max()))
    return worst


def check_input_scale(ctx, row):
    view, applied = network_view(ctx)
    ids = ctx.id_inputs
    arrays = [(n, a) for n, a in leaves(view) if np.asarray(a).dtype.kind in "fiu" and n not in ids]
    if not arrays:
        return row.skip("no numeric inputs: the integer inputs are ids read by "
                        + "/".join(sorted(set(ids.values())) or ["an Embedding"]) + " layers")
    ev = {}
    if applied:
        ev["seen_through"] = applied
    worst = 0.0
    for name, a in arrays:
        f = _features(a)
        mean, std = _nanstats(f)
        ok = np.isfinite(mean) & np.isfinite(std)
        if not ok.any():
            continue
        mean, std = mean[ok], std[ok]
        nz = std[std > 0]
        d = {
            "max_abs_mean": float(np.max(np.abs(mean))),
            "max_std": float(np.max(std)),
            "median_std": float(np.median(std)),
            "min": float(np.nanmin(np.where(np.isfinite(f), f, np.nan))),
            "max": float(np.nanmax(np.where(np.isfinite(f), f, np.nan))),
            "std_spread": float(nz.max() / nz.min()) if nz.size else 1.0,
        }
        ev[name] = d
        scale = max(d["max_abs_mean"], d["max_std"])
        worst = max(worst, scale)
        where = " after the model's " + "/".join(applied) + " layer(s)" if applied else ""
        desc = (f"{name}{where}: feature means up to {d['max_abs_mean']:.3g}, stds up to {d['max_std']:.3g}, "
                f"range [{d['min']:.3g}, {d['max']:.3g}]")
        if scale > SCALE_FAIL:
            row.add("unnormalized_input", "error", desc + ": far from normalised (mean 0, std 1)", NORMALIZE_FIX)
        elif scale > SCALE_WARN:
            row.add("unnormalized_input", "warning", desc + ": not normalised (mean 0, std 1)", NORMALIZE_FIX)
        elif d["std_spread"] > SPREAD_WARN:
            row.add("unnormalized_input", "warning", desc + f": feature stds differ by {d['std_spread']:.3g}x "
                    "(features on unrelated scales)", NORMALIZE_FIX)
        elif 0 < d["max_std"] < 1e-3:
            row.add("unnormalized_input", "warning", desc + ": every feature is tiny (std < 1e-3)", NORMALIZE_FIX)
    row.evidence.update(ev)
    if not row.issues:
        row.summary = "; ".join(f"{n}: |mean| <= {d['max_abs_mean']:.3g}, std <= {d['max_std']:.3g}"
                                for n, d in ev.items() if isinstance(d, dict) and "max_std" in d) or "inputs look normalised"
    else:
        row.summary = "; ".join(i.message for i in row.issues)


# ---------------------------------------------------------------------- duplicates and leakage (B1, B2)
def row_keys(x) -> np.ndarray:
    """One hashable key per sample (all inputs of the sample, byte for byte)."""
    parts = []
    for _, a in leaves(x):
        a = np.ascontiguousarray(np.asarray(a))
        parts.append(a.reshape(a.shape[0], -1).view(np.uint8).reshape(a.shape[0], -1))
    b = np.ascontiguousarray(np.concatenate(parts, axis=1))
    return b.view(np.dtype((np.void, b.shape[1]))).reshape(-1)


def check_duplicates(ctx, row):
    keys = row_keys(ctx.train.x)
    n = len(keys)
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    dup = n - len(uniq)
    frac = dup / n
    row.evidence.update({"samples": n, "unique": int(len(uniq)), "duplicates": int(dup), "duplicate_frac": frac,
                         "bounded_sample": ctx.train.bounded})
    conflicts = 0
    y = ctx.single_output_y
    if dup and y is not None:
        yk = row_keys(y)
        pairs = np.unique(np.stack([inverse.astype("int64"), np.unique(yk, return_inverse=True)[1].astype("int64")], 1), axis=0)
        conflicts = int(len(pairs) - len(uniq))
        row.evidence["conflicting_label_groups"] = conflicts
    row.summary = f"{dup} duplicate samples of {n} ({frac:.1%})" + (
        f", {conflicts} identical inputs with different targets" if conflicts else "")
    if dup:
        sev = "warning" if frac > 0.05 else "info"
        row.add("data_problem", sev, f"{dup} of {n} training samples ({frac:.1%}) are exact duplicates: they "
                "weigh more in the loss and leak across any split made later",
                "deduplicate before splitting (e.g. np.unique(x, axis=0, return_index=True)) (B1)")
    if conflicts:
        row.add("data_problem", "warning", f"{conflicts} groups of identical inputs carry different targets "
                "(label noise or label errors)", "look at those samples and their labels (B1, C8)")


def check_leakage(ctx, row):
    if ctx.val is None:
        return row.skip("no validation_data given")
    tk = row_keys(ctx.train.x)
    vk = row_keys(ctx.val.x)
    if tk.dtype != vk.dtype:
        return row.skip("training and validation inputs have different shapes/dtypes")
    shared = np.isin(vk, tk)
    k = int(shared.sum())
    frac = k / len(vk)
    n_unique_train = len(np.unique(tk))
    internal = 1 - n_unique_train / len(tk)
    row.evidence.update({"validation_samples": int(len(vk)), "in_train": k, "frac": frac,
                         "train_internal_duplicate_frac": internal, "first": np.flatnonzero(shared)[:10].tolist(),
                         "bounded_sample": bool(ctx.train.bounded or ctx.val.bounded)})
    row.summary = f"{k} of {len(vk)} validation samples ({frac:.1%}) also appear in the training data"
    if k == 0:
        return
    fix = ("split after deduplicating, and split by group (patient, user, source file) when samples of a group "
           "are near-identical (B2); the validation score is optimistic otherwise")
    if frac > 0.05 and frac > 2 * internal + 0.01:
        row.add("leakage", "error", row.summary + ": the validation score measures memorisation", fix)
    elif frac > 0.01:
        row.add("leakage", "warning", row.summary, fix)
    else:
        row.add("leakage", "info", row.summary, fix)


# ---------------------------------------------------------------------- train/validation shift (B2)
def check_shift(ctx, row):
    if ctx.val is None:
        return row.skip("no validation_data given")
    tr = dict(leaves(ctx.train.x))
    va = dict(leaves(ctx.val.x))
    nt, nv = ctx.train.n, ctx.val.n
    thr = max(0.5, 5.0 * np.sqrt(1.0 / nt + 1.0 / nv))
    ev = {"threshold_smd": thr}
    for name, a in tr.items():
        b = va.get(name)
        a = np.asarray(a)
        if b is None or a.dtype.kind not in "fiu" or name in ctx.id_inputs or np.shape(b)[1:] != a.shape[1:]:
            continue
        rng = np.random.default_rng(0)
        fa, fb = _features(a, rng), _features(np.asarray(b), np.random.default_rng(0))
        ma, sa = _nanstats(fa)
        mb, sb = _nanstats(fb)
        pooled = np.sqrt((sa ** 2 + sb ** 2) / 2)
        diff = np.abs(ma - mb)
        with np.errstate(all="ignore"):
            smd = np.where(pooled > 0, diff / np.where(pooled > 0, pooled, 1), np.where(diff > 0, np.inf, 0.0))
        smd = np.where(np.isfinite(ma) & np.isfinite(mb), smd, 0.0)
        shifted = np.flatnonzero(smd > thr)
        order = shifted[np.argsort(-smd[shifted])][:5]
        d = {"features": int(len(smd)), "max_smd": float(np.max(smd)) if smd.size else 0.0,
             "median_smd": float(np.median(smd)) if smd.size else 0.0, "shifted": int(shifted.size),
             "top": {int(i): float(smd[i]) for i in order}}
        ev[name] = d
        if shifted.size:
            msg = (f"{name}: {shifted.size} of {d['features']} features differ between training and validation "
                   f"by more than {thr:.2f} pooled stds (max {d['max_smd']:.3g}, features {list(d['top'])})")
            fix = ("make validation come from the training distribution (shuffle before splitting, stratify), "
                   "and apply the same preprocessing, fitted on training data only, to both (B2, B3)")
            if shifted.size >= 0.5 * d["features"] or d["max_smd"] > 3:
                row.add("distribution_shift", "error", msg, fix)
            else:
                row.add("distribution_shift", "warning", msg, fix)
    # class proportions / target shift
    task = ctx.task
    yv = ctx.val.y if isinstance(ctx.val.y, np.ndarray) else None
    if yv is not None and task.classification and task.labels is not None and task.kind != "multilabel":
        from kerasrecipe.checks.introspect import infer_task

        vt = infer_task(ctx.loss, yv, ctx.units, ctx.activation)
        lt, lv = task.kept_labels, vt.kept_labels   # without the loss's ignore_class
        if lv is not None and lt.size and lv.size:
            C = int(max(task.num_classes or 0, lt.max() + 1, lv.max() + 1))
            pt = np.bincount(np.clip(lt, 0, None), minlength=C) / len(lt)
            pv = np.bincount(np.clip(lv, 0, None), minlength=C) / len(lv)
            tv = 0.5 * float(np.abs(pt - pv).sum())
            tv_thr = max(0.1, float(np.sqrt(C / nv)))
            unseen = np.flatnonzero((pt == 0) & (pv > 0)).tolist()
            ev["class_proportions"] = {"total_variation": tv, "threshold": tv_thr, "unseen_in_train": unseen}
            if unseen:
                row.add("distribution_shift", "error", f"validation has classes {unseen} that never occur in "
                        "the training data", "split with stratification (sklearn train_test_split(stratify=y)) (B2)")
            elif tv > tv_thr:
                row.add("distribution_shift", "warning", f"class proportions differ between training and "
                        f"validation (total variation {tv:.2f} > {tv_thr:.2f})",
                        "split with stratification (sklearn train_test_split(stratify=y)) (B2)")
    elif yv is not None and task.kind == "regression" and isinstance(ctx.train.y, np.ndarray):
        a, b = _features(ctx.train.y.reshape(len(ctx.train.y), -1)), _features(yv.reshape(len(yv), -1))
        ma, sa = _nanstats(a)
        mb, sb = _nanstats(b)
        pooled = np.sqrt((sa ** 2 + sb ** 2) / 2)
        smd = float(np.max(np.abs(ma - mb) / np.where(pooled > 0, pooled, 1)))
        ev["target_smd"] = smd
        if smd > thr:
            row.add("distribution_shift", "warning", f"the regression target's mean differs between training "
                    f"and validation by {smd:.2f} pooled stds", "shuffle before splitting (B2, B4)")
    row.evidence.update(ev)
    row.summary = "; ".join(i.message for i in row.issues) or (
        "training and validation look alike (largest standardised mean difference "
        + ", ".join(f"{v['max_smd']:.2f}" for k, v in ev.items() if isinstance(v, dict) and "max_smd" in v) + ")")


# ---------------------------------------------------------------------- padding (B6)
def sequence_lengths(a: np.ndarray, pad: int = 0):
    """Lengths of padded integer sequences and the padding side ("post" or "pre")."""
    a = np.asarray(a)
    nonpad = a != pad
    L = a.shape[1]
    side = "post" if (nonpad[:, 0].mean() >= nonpad[:, -1].mean()) else "pre"
    any_ = nonpad.any(1)
    if side == "post":
        last = L - np.argmax(nonpad[:, ::-1], axis=1)
        lengths = np.where(any_, last, 0)
    else:
        first = np.argmax(nonpad, axis=1)
        lengths = np.where(any_, L - first, 0)
    return lengths, side


def check_padding(ctx, row):
    ids = ctx.id_inputs
    seqs = [(n, np.asarray(a)) for n, a in leaves(ctx.train.x)
            if _is_int_seq(a) and ids.get(n, "").endswith("Embedding")]
    if not seqs:
        return row.skip("no integer sequence inputs feeding an Embedding")
    for name, a in seqs:
        lengths, side = sequence_lengths(a)
        L = a.shape[1]
        pct = {f"p{q}": int(np.ceil(np.percentile(lengths, q))) for q in (50, 90, 95, 99)}
        full = float(np.mean(lengths >= L))
        suggest = int(min(L, max(1, int(np.ceil(pct["p90"] / 8.0) * 8)))) if pct["p90"] > 0 else L
        d = {"padded_length": L, "side": side, **pct, "max": int(lengths.max()), "frac_full_length": full,
             "suggested_maxlen": suggest}
        row.evidence[name] = d
        desc = (f"{name}: padded to {L} ({side}); lengths p50 {pct['p50']}, p90 {pct['p90']}, p95 {pct['p95']}, "
                f"max {d['max']}")
        if full > 0.1 and L <= pct["p50"] * 1.05:
            row.add("data_problem", "warning", desc + f"; {full:.0%} of sequences fill the whole length: they "
                    "were probably truncated", "pad to the length covering ~90-95% of the sequences "
                    f"(p95 = {pct['p95']} of the untruncated data) (B6)")
        elif L > 1.5 * max(pct["p95"], 1):
            row.add("data_problem", "info", desc + f"; {L} is {L / max(pct['p95'], 1):.1f}x the 95th percentile: "
                    "most of each batch is padding", f"pad to ~{suggest} (the length covering 90%) (B6)")
        row.summary = (row.summary + "; " if row.summary else "") + desc + f"; covering 90%: {pct['p90']}"
