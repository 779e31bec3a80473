"""kerasrecipe.kernels: contract, validation, edge cases, reference agreement, dispatch."""
import math

import numpy as np
import pytest

from kerasrecipe import kernels as K
from kerasrecipe.errors import ConfigError, InputTypeError


def oracle_stats(x, saturation=0.99, bins=None):
    """Independent float64 oracle: plain NumPy, one number at a time."""
    x = np.asarray(x, dtype=np.float64).ravel()
    fin = x[np.isfinite(x)]
    if bins is None:
        pos = 2.0 ** np.arange(-20, 13)
        edges = np.concatenate([-pos[::-1], pos])
        hist = np.zeros(65, np.int64)
        for v in fin:
            a = abs(v)
            if a < 2.0 ** -20:
                hist[32] += 1
                continue
            e = min(max(math.floor(math.log2(a)), -20), 11)
            if 2.0 ** e > a:  # log2 rounding guard
                e -= 1
            elif 2.0 ** (e + 1) <= a and e < 11:
                e += 1
            m = e + 20
            hist[33 + m if v > 0 else 31 - m] += 1
    else:
        lo, hi, n = bins
        edges = np.linspace(lo, hi, n + 1)
        idx = np.clip(np.floor((fin - lo) * (n / (hi - lo))), 0, n - 1).astype(int)
        hist = np.bincount(idx, minlength=n)
    nan = float("nan")
    return {
        "count": x.size, "nan": int(np.isnan(x).sum()), "inf": int(np.isinf(x).sum()),
        "mean": fin.mean() if fin.size else nan, "var": fin.var() if fin.size else nan,
        "std": fin.std() if fin.size else nan, "min": fin.min() if fin.size else nan,
        "max": fin.max() if fin.size else nan, "zeros": int((x == 0).sum()),
        "saturated": int((np.abs(fin) >= saturation).sum()), "hist": hist, "hist_edges": edges,
    }


def assert_stats_close(got, want, rtol=1e-9, hist_slack=0):
    for k in ("count", "nan", "inf", "zeros", "saturated"):
        assert int(np.asarray(got[k])) == want[k], (k, got[k], want[k])
    scale = max(abs(want["min"]), abs(want["max"]), 1e-300) if np.isfinite(want["min"]) else 1.0
    for k in ("mean", "min", "max"):
        g, w = float(np.asarray(got[k])), want[k]
        if math.isnan(w):
            assert math.isnan(g), (k, g)
        else:
            assert abs(g - w) <= rtol * scale + 1e-300, (k, g, w)
    for k in ("var", "std"):
        g, w = float(np.asarray(got[k])), want[k]
        if math.isnan(w):
            assert math.isnan(g), (k, g)
        else:
            assert abs(g - w) <= rtol * max(abs(w), (scale if k == "std" else scale * scale) * 1e-6) + 1e-300, (k, g, w)
    gh = np.asarray(got["hist"]).astype(np.int64)
    assert gh.shape == want["hist"].shape
    assert np.abs(gh - want["hist"]).sum() <= hist_slack, (gh, want["hist"])
    np.testing.assert_array_equal(np.asarray(got["hist_edges"]), want["hist_edges"])


def test_stats_basic_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 53)).astype("float32")
    x[0, 0], x[1, 1], x[2, 2], x[3, 3] = np.nan, np.inf, -np.inf, 0.0
    s = K.activation_stats(x)
    assert set(s) == {"count", "mean", "var", "std", "min", "max", "zeros", "saturated", "nan", "inf", "hist", "hist_edges"}
    assert s["hist"].dtype == np.int64 and len(s["hist_edges"]) == len(s["hist"]) + 1
    assert (s["count"], s["nan"], s["inf"]) == (37 * 53, 1, 2)
    assert s["hist"].sum() == 37 * 53 - 3
    assert_stats_close(s, oracle_stats(x), rtol=1e-6)


def test_uniform_bins_and_clamping():
    x = np.array([-5.0, -1.0, -0.5, 0.0, 0.25, 0.999, 1.0, 7.0], np.float64)
    s = K.activation_stats(x, bins=(-1.0, 1.0, 4))
    # bins [-1,-.5) [-.5,0) [0,.5) [.5,1]; -5 clamps to bin 0, 1.0 and 7.0 clamp to the last
    np.testing.assert_array_equal(s["hist"], [2, 1, 2, 3])
    np.testing.assert_allclose(s["hist_edges"], [-1, -0.5, 0, 0.5, 1])


def test_log2_bins_layout():
    x = np.array([0.0, 1e-9, 1.0, 1.5, 2.0, -1.0, -0.75, 5000.0, -1e6], np.float32)
    s = K.activation_stats(x)
    h = s["hist"]
    assert h[32] == 2  # zero and the tiny value
    assert h[33 + 20] == 2  # 1.0, 1.5 in [1, 2)
    assert h[33 + 21] == 1  # 2.0
    assert h[31 - 20] == 1  # -1.0
    assert h[31 - 19] == 1  # -0.75 in [0.5, 1)
    assert h[64] == 1 and h[0] == 1  # clamped outermost bins
    e = s["hist_edges"]
    assert e[0] == -4096 and e[-1] == 4096 and e[32] == -(2.0 ** -20) and e[33] == 2.0 ** -20


def test_empty_and_all_nonfinite():
    s = K.activation_stats(np.zeros((0, 3), np.float32))
    assert s["count"] == 0 and s["nan"] == 0 and s["hist"].sum() == 0
    assert all(math.isnan(s[k]) for k in ("mean", "var", "std", "min", "max"))
    s = K.activation_stats(np.array([np.nan, np.inf], np.float32))
    assert (s["count"], s["nan"], s["inf"], s["zeros"]) == (2, 1, 1, 0)
    assert math.isnan(s["mean"]) and math.isnan(s["max"])
    one = K.activation_stats(np.array([2.5], np.float16))
    assert one["mean"] == 2.5 and one["var"] == 0.0 and one["min"] == one["max"] == 2.5


@pytest.mark.parametrize("bad", [np.arange(5), np.ones(3, bool), np.ones(2, np.complex64)])
def test_stats_rejects_non_float(bad):
    with pytest.raises(InputTypeError):
        K.activation_stats(bad)
    with pytest.raises(TypeError):
        K.clip_by_global_norm([bad], 1.0)


@pytest.mark.parametrize("kw", [{"saturation": 0}, {"saturation": float("nan")}, {"bins": (1, 0, 4)},
                                {"bins": (0, 1, 0)}, {"bins": 12}, {"bins": (0, float("inf"), 3)}])
def test_stats_bad_config(kw):
    with pytest.raises(ConfigError):
        K.activation_stats(np.ones(3, np.float32), **kw)


@pytest.mark.parametrize("max_norm", [0, -1.0, float("nan"), True, "1"])
def test_clip_bad_max_norm(max_norm):
    with pytest.raises(ValueError):
        K.clip_by_global_norm([np.ones(3, np.float32)], max_norm)


def test_clip_numpy_in_place_semantics():
    g = [np.full((3, 4), 2.0, np.float32), None, np.full(5, -1.0, np.float64)]
    ids = [id(a) for a in g if a is not None]
    out, norm, bad = K.clip_by_global_norm(g, 1.0)
    want = math.sqrt(12 * 4 + 5)
    assert out[1] is None and [id(a) for a in out if a is not None] == ids
    assert abs(norm - want) < 1e-9 and bad is False
    coef = 1.0 / (want + 1e-6)
    np.testing.assert_allclose(out[0], 2.0 * coef, rtol=1e-6)
    np.testing.assert_allclose(out[2], -coef, rtol=1e-12)
    # below the threshold: unchanged
    h = [np.full(4, 0.1, np.float32)]
    K.clip_by_global_norm(h, 10.0)
    np.testing.assert_array_equal(h[0], np.full(4, 0.1, np.float32))


def test_clip_nonfinite_propagates_like_torch():
    g = [np.array([1.0, np.nan], np.float32), np.ones(3, np.float32)]
    _, norm, bad = K.clip_by_global_norm(g, 1.0)
    assert math.isnan(norm) and bad is True and np.isnan(g[1]).all()
    g = [np.array([1.0, np.inf], np.float32)]
    _, norm, bad = K.clip_by_global_norm(g, 1.0)
    assert norm == math.inf and bad is True
    assert g[0][0] == 0.0 and math.isnan(g[0][1])


def test_clip_empty_list_and_readonly_noncontiguous():
    assert K.clip_by_global_norm([], 1.0)[1:] == (0.0, False)
    base = np.full((4, 6), 3.0, np.float32)
    view = base[:, ::2]  # non-contiguous: written back in place
    ro = np.full(4, 3.0, np.float32)
    ro.flags.writeable = False
    out, norm, _ = K.clip_by_global_norm([view, ro], 1.0)
    assert abs(norm - 3.0 * math.sqrt(16)) < 1e-6
    assert out[0] is view and np.allclose(base[:, ::2], 3.0 / 12.0, rtol=1e-5) and np.all(base[:, 1::2] == 3.0)
    assert out[1] is not ro and np.all(ro == 3.0) and np.allclose(out[1], 0.25, rtol=1e-5)


def test_info_keys():
    i = K.info()
    for k in ("native_built", "cuda_compiled", "gpu_visible", "gpu_count", "threads", "paths"):
        assert k in i
    assert set(i["paths"]) >= {"numpy", "torch_cpu", "torch_cuda", "tensorflow_eager", "jax_eager", "traced"}
