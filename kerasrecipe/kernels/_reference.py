"""Reference implementations: NumPy (float64) for arrays when the native module is missing, and
keras.ops for traced tensors (TF graph, JAX jit) and other backend tensors. Same semantics as the
native kernels; see kerasrecipe.kernels for the contract."""
from __future__ import annotations

import math

import numpy as np

from kerasrecipe.kernels._hist import LOG2_EMAX, LOG2_EMIN, MODE_UNIFORM, N_MAG, HistSpec, hist_index_numpy

STAT_KEYS = ("count", "mean", "var", "std", "min", "max", "zeros", "saturated", "nan", "inf", "hist", "hist_edges")


def empty_like_stats(spec: HistSpec) -> dict:
    """Result for an empty tensor: counts 0, moments and min/max NaN, histogram all zeros."""
    nan = float("nan")
    return {"count": 0, "mean": nan, "var": nan, "std": nan, "min": nan, "max": nan, "zeros": 0,
            "saturated": 0, "nan": 0, "inf": 0, "hist": np.zeros(spec.n, np.int64), "hist_edges": spec.edges()}


def assemble(count, finite, mean, var, mn, mx, zeros, sat, n_nan, n_inf, hist, spec: HistSpec) -> dict:
    """Python numbers from the raw results (NaN moments when there is no finite value)."""
    finite = int(finite)
    nan = float("nan")
    if finite == 0:
        mean = var = mn = mx = nan
    var = max(float(var), 0.0) if finite else nan
    return {"count": int(count), "mean": float(mean), "var": var, "std": math.sqrt(var) if finite else nan,
            "min": float(mn), "max": float(mx), "zeros": int(zeros), "saturated": int(sat), "nan": int(n_nan),
            "inf": int(n_inf), "hist": np.asarray(hist, dtype=np.int64).copy(), "hist_edges": spec.edges()}


# ----------------------------------------------------------------------------- NumPy (float64)

def stats_numpy(arr: np.ndarray, saturation: float, spec: HistSpec) -> dict:
    x = np.asarray(arr).astype(np.float64, copy=False).ravel()
    if x.size == 0:
        return empty_like_stats(spec)
    isnan = np.isnan(x)
    isinf = np.isinf(x)
    f = x[~(isnan | isinf)]
    n = f.size
    mean = f.mean() if n else 0.0
    var = ((f - mean) ** 2).mean() if n else 0.0
    hist = np.bincount(hist_index_numpy(f, spec), minlength=spec.n) if n else np.zeros(spec.n, np.int64)
    return assemble(x.size, n, mean, var, f.min() if n else 0.0, f.max() if n else 0.0,
                    np.count_nonzero(x == 0), np.count_nonzero(np.abs(f) >= saturation),
                    np.count_nonzero(isnan), np.count_nonzero(isinf), hist, spec)


def sumsq_numpy(arrays) -> float:
    return float(sum(np.sum(np.square(np.asarray(a, dtype=np.float64))) for a in arrays))


def scale_numpy(arr: np.ndarray, coef: float) -> None:
    """In place: arr *= coef, in float32 for half types (float64 for float64), rounded back."""
    work = np.float64 if arr.dtype == np.float64 else np.float32
    with np.errstate(invalid="ignore", over="ignore"):
        arr[...] = (arr.astype(work) * work(coef)).astype(arr.dtype)


def clip_coef(norm: float, max_norm: float, eps: float) -> float:
    """torch.nn.utils.clip_grad_norm_: min(max_norm / (norm + eps), 1); NaN stays NaN."""
    coef = max_norm / (norm + eps) if (norm + eps) != 0 else math.inf
    return coef if (math.isnan(coef) or coef < 1.0) else 1.0


# ----------------------------------------------------------------------------- keras.ops

def _compute_dtype(dtype_name: str) -> str:
    return "float64" if dtype_name == "float64" else "float32"


def stats_dtype(x) -> str:
    """The dtype the keras.ops statistics accumulate in: float64 wherever the backend can trace
    it; float32 on JAX without x64 (``jax_enable_x64`` off, JAX's default, where float64 silently
    becomes float32) and on torch's MPS device, which has no float64."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "float64" if jax.dtypes.canonicalize_dtype(np.float64) == np.float64 else "float32"
    if backend == "torch" and getattr(getattr(x, "device", None), "type", None) == "mps":
        return "float32"
    return "float64"


def stats_keras(x, saturation: float, spec: HistSpec, dtype_name: str) -> dict:
    """keras.ops version for traced/backend tensors: values are 0-d backend tensors (hist an int32
    tensor) so it works inside tf.function / jax.jit; hist_edges is a NumPy array.

    Precision: count/min/max/counters/histogram are exact. mean/var/std accumulate in
    :func:`stats_dtype` -- float64 (TF, torch, JAX with x64), so they match the native float64
    path to float64 rounding of a two-pass sum; float32 on JAX without x64, so to about 1e-6
    relative. Either way the finite values are first divided by max|x| (so nothing squared can
    overflow), the mean is taken out before squaring (a corrected two-pass variance,
    ``(sum d**2 - (sum d)**2 / n) / n`` with ``d = x/s - mean(x/s)``), and the result is scaled
    back: mean and std are finite for every finite input, and var is ``inf`` only where the true
    variance exceeds the largest number of the accumulation dtype (float32: ~3.4e38, i.e. for
    std beyond ~1.8e19 on JAX without x64). Moments are 0-d tensors of that dtype. `dtype_name`
    (the input's) is not needed any more and kept for callers.
    """
    from keras import ops

    cd = stats_dtype(x)
    x = ops.reshape(ops.cast(x, cd), (-1,))
    count = ops.size(x) if hasattr(ops, "size") else ops.shape(x)[0]
    if x.shape[0] == 0:  # (static) the documented empty result; JAX cannot reduce min/max over nothing
        nan, none = ops.cast(float("nan"), cd), ops.cast(0, "int32")
        return {"count": count, "mean": nan, "var": nan, "std": nan, "min": nan, "max": nan, "zeros": none,
                "saturated": none, "nan": none, "inf": none, "hist": ops.zeros((spec.n,), "int32"),
                "hist_edges": spec.edges()}
    isnan = ops.isnan(x)
    isinf = ops.isinf(x)
    fin = ops.isfinite(x)
    n_fin = ops.sum(ops.cast(fin, "int32"))
    # where, not maximum: Keras 3.15's torch backend returns float32 from ops.maximum/minimum of
    # float64 tensors (its result_type does not recognise torch dtypes)
    n_fin_f = ops.cast(n_fin, cd)
    n_fin_f = ops.where(n_fin_f > 0, n_fin_f, ops.ones_like(n_fin_f))
    zero = ops.zeros_like(x)
    xf = ops.where(fin, x, zero)
    s = ops.max(ops.abs(xf))
    s = ops.where(s > 0, s, ops.ones_like(s))  # all zero or nothing finite: no scaling
    y = xf / s  # |y| <= 1: no overflow below, whatever the magnitude of x
    mean_y = ops.sum(y) / n_fin_f
    d = ops.where(fin, y - mean_y, zero)
    sd = ops.sum(d)
    var_y = (ops.sum(d * d) - sd * sd / n_fin_f) / n_fin_f
    var_y = ops.where(var_y > 0, var_y, ops.zeros_like(var_y))
    mean = (mean_y + sd / n_fin_f) * s
    var = (var_y * s) * s  # in this order: s * s alone may overflow where var does not
    std = ops.sqrt(var_y) * s
    nan = ops.cast(float("nan"), cd)
    has = n_fin > 0
    mn = ops.where(has, ops.min(ops.where(fin, x, ops.full_like(x, float("inf")))), nan)
    mx = ops.where(has, ops.max(ops.where(fin, x, ops.full_like(x, float("-inf")))), nan)
    mean = ops.where(has, mean, nan)
    var = ops.where(has, var, nan)
    std = ops.where(has, std, nan)
    ax = ops.abs(x)
    if spec.mode == MODE_UNIFORM:
        idx = ops.floor((x - spec.lo) * spec.scale)
        idx = ops.cast(ops.clip(ops.where(fin, idx, ops.zeros_like(idx)), 0, spec.n - 1), "int32")
    else:
        mag_edges = [math.ldexp(1.0, e) for e in range(LOG2_EMIN, LOG2_EMAX + 1)]
        m = ops.cast(ops.digitize(ops.where(fin, ax, ops.zeros_like(ax)), mag_edges), "int32")  # 0..33
        mag = ops.minimum(m - 1, N_MAG - 1)
        idx = ops.where(m == 0, N_MAG, ops.where(x > 0, N_MAG + 1 + mag, N_MAG - 1 - mag))
    idx = ops.where(fin, idx, ops.full_like(idx, spec.n))  # non-finite -> dropped bin n
    hist = ops.segment_sum(ops.ones_like(idx), idx, num_segments=spec.n + 1)[: spec.n]
    return {
        "count": count,
        "mean": mean,
        "var": var,
        "std": std,
        "min": mn,
        "max": mx,
        "zeros": ops.sum(ops.cast(ops.equal(x, 0), "int32")),
        "saturated": ops.sum(ops.cast(ops.logical_and(fin, ax >= saturation), "int32")),
        "nan": ops.sum(ops.cast(isnan, "int32")),
        "inf": ops.sum(ops.cast(isinf, "int32")),
        "hist": hist,
        "hist_edges": spec.edges(),
    }


def clip_keras(tensors, dtype_names, max_norm: float, eps: float, norm=None):
    """keras.ops clip: returns (new tensors, norm tensor float32, nonfinite flag tensor).
    `norm` may be given (computed natively) to skip the reduction."""
    from keras import ops

    if norm is None:
        sq = [ops.sum(ops.square(ops.cast(t, _compute_dtype(d)))) for t, d in zip(tensors, dtype_names)]
        sq = [ops.cast(s, "float32") if _compute_dtype(d) == "float32" else s for s, d in zip(sq, dtype_names)]
        if any(d == "float64" for d in dtype_names):
            sq = [ops.cast(s, "float64") for s in sq]
        norm = ops.sqrt(ops.sum(ops.stack(sq)))
    else:
        norm = ops.convert_to_tensor(norm, "float32")
    coef = ops.minimum(max_norm / (norm + eps), 1.0)  # NaN propagates through minimum
    out = [ops.cast(ops.cast(t, _compute_dtype(d)) * ops.cast(coef, _compute_dtype(d)), d)
           for t, d in zip(tensors, dtype_names)]
    return out, ops.cast(norm, "float32"), ops.logical_not(ops.isfinite(norm))
