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
        a = np.abs(fin)
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
        e = e - (np.exp2(e) > a) + (np.exp2(e + 1) <= a)  # guard log2 rounding at powers of two
        m = np.clip(e, -20, 11).astype(np.int64) + 20
        idx = np.where(a < 2.0 ** -20, 32, np.where(fin > 0, 33 + m, 31 - m))
        hist = np.bincount(idx, minlength=65).astype(np.int64)
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


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_non_native_byte_order_stats(dtype):
    """A big-endian array's dtype is named like a native one ("float32"): the native kernels
    must read a native-order copy, not the raw bytes (mean 3.45e-41 instead of 3.0 before)."""
    x = np.arange(1, 6, dtype=dtype)
    s = K.activation_stats(x)
    assert s["mean"] == 3.0 and s["var"] == 2.0 and (s["min"], s["max"]) == (1.0, 5.0)
    rng = np.random.default_rng(12)
    y = (rng.standard_normal((9, 31)) * 3).astype(dtype)
    y[0, :3] = [np.nan, np.inf, 0.0]
    assert_stats_close(K.activation_stats(y), oracle_stats(y), rtol=1e-9)
    assert_stats_close(K.activation_stats_many([y, y.astype(y.dtype.newbyteorder("="))])[0], oracle_stats(y))


def test_non_native_byte_order_clipped_in_place():
    """Big-endian arrays are clipped in place (on a native-order copy, written back), like
    non-contiguous ones; the norm counts them (it was 0.0 and nothing clipped before)."""
    a = np.arange(1, 6, dtype=">f8")
    base = np.full((4, 6), 3.0, ">f4")
    view = base[:, ::2]  # big-endian and non-contiguous
    ro = np.full(4, 3.0, ">f2")
    ro.flags.writeable = False
    ref = [np.arange(1, 6, dtype="f8"), np.full((4, 3), 3.0, "f4"), np.full(4, 3.0, "f2")]
    want, wnorm = oracle_clip(ref, 1.0)
    assert abs(wnorm - math.sqrt(55 + 12 * 9 + 4 * 9)) < 1e-12
    out, norm, bad = K.clip_by_global_norm([a, view, ro], 1.0)
    assert abs(norm - wnorm) <= 1e-12 * wnorm and bad is False
    assert out[0] is a and out[1] is view and out[2] is not ro and np.all(ro == 3.0)
    assert a.dtype == np.dtype(">f8") and base.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(a, want[0])
    np.testing.assert_array_equal(base[:, ::2], want[1])
    assert np.all(base[:, 1::2] == 3.0)
    np.testing.assert_array_equal(np.asarray(out[2], np.float16), want[2])


def test_info_keys():
    i = K.info()
    for k in ("native_built", "cuda_compiled", "gpu_visible", "gpu_count", "threads", "paths"):
        assert k in i
    assert set(i["paths"]) >= {"numpy", "torch_cpu", "torch_cuda", "tensorflow_eager", "jax_eager", "traced"}


# ----------------------------------------------------------------------------- property tests
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import ml_dtypes  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64}


@st.composite
def float_arrays(draw, max_side=48):
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=3)))
    n = int(np.prod(shape)) if shape else 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # magnitudes up to ~1e144: beyond ~1e150 the sum of squared deviations overflows float64
    # in the chunk-combination step (documented in kerasrecipe.kernels: var/std can become inf)
    scale = draw(st.sampled_from([1e-30, 1e-7, 1.0, 3e3, 1e30, 1e140]))
    offset = draw(st.sampled_from([0.0, 1.0, -1e4]))
    x = rng.standard_normal(n) * scale + offset * scale
    if draw(st.booleans()):  # ReLU-like: many exact zeros
        x = np.maximum(x, 0)
    for val, frac in ((np.nan, draw(st.sampled_from([0, 0.01, 0.3]))), (np.inf, draw(st.sampled_from([0, 0.01]))),
                      (-np.inf, draw(st.sampled_from([0, 0.01]))), (0.0, draw(st.sampled_from([0, 0.1])))):
        if n and frac:
            x[rng.random(n) < frac] = val
    with np.errstate(over="ignore"):
        a = x.astype(DTYPES[dtype]).reshape(shape)
    if draw(st.booleans()) and a.ndim >= 1 and a.shape[-1] > 1:  # non-contiguous view
        a = a[..., ::2]
    return a


def max_abs_finite(x):
    f = np.asarray(x, np.float64)
    f = f[np.isfinite(f)]
    return float(np.abs(f).max()) if f.size else 0.0


def assert_native_exact(got, want, x):
    """Native vs float64 oracle: counts, min, max and histogram exact; moments to float64 accuracy."""
    for k in ("count", "nan", "inf", "zeros", "saturated"):
        assert got[k] == want[k], (k, got[k], want[k])
    np.testing.assert_array_equal(got["hist"], want["hist"])
    for k in ("min", "max"):
        assert (math.isnan(got[k]) and math.isnan(want[k])) or got[k] == want[k], (k, got[k], want[k])
    m = max_abs_finite(x)
    if math.isnan(want["mean"]):
        assert all(math.isnan(got[k]) for k in ("mean", "var", "std"))
        return
    assert abs(got["mean"] - want["mean"]) <= 1e-12 * m + 1e-300, (got["mean"], want["mean"])
    if np.isfinite(want["var"]) and np.isfinite(m * m):
        assert abs(got["var"] - want["var"]) <= 1e-9 * want["var"] + 1e-13 * m * m, (got["var"], want["var"])
        assert abs(got["std"] - want["std"]) <= 1e-9 * want["std"] + 1e-6 * m, (got["std"], want["std"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=float_arrays(), uniform=st.booleans(), sat=st.sampled_from([0.5, 0.99, 1e4]))
def test_stats_match_float64_oracle(x, uniform, sat):
    bins = (-2.5, 3.0, 23) if uniform else None
    got = K.activation_stats(x, saturation=sat, bins=bins)
    assert_native_exact(got, oracle_stats(x, sat, bins), x)


@settings(max_examples=25, deadline=None)
@given(xs=st.lists(float_arrays(max_side=20), min_size=0, max_size=6))
def test_stats_many_matches_single(xs):
    many = K.activation_stats_many(xs)
    assert len(many) == len(xs)
    for got, x in zip(many, xs):
        assert_native_exact(got, oracle_stats(x), x)


def oracle_clip(arrays, max_norm, eps=1e-6):
    with np.errstate(over="ignore", invalid="ignore"):
        norm = math.sqrt(sum(float(np.sum(np.square(np.asarray(a, np.float64)))) for a in arrays))
    coef = max_norm / (norm + eps)
    coef = coef if (math.isnan(coef) or coef < 1) else 1.0
    out = []
    for a in arrays:
        work = np.float64 if a.dtype == np.float64 else np.float32
        with np.errstate(invalid="ignore", over="ignore"):
            out.append((a.astype(work) * work(coef)).astype(a.dtype))
    return out, norm


@settings(max_examples=50, deadline=None)
@given(xs=st.lists(float_arrays(max_side=30), min_size=1, max_size=5), max_norm=st.sampled_from([1e-3, 1.0, 5.0, 1e6]))
def test_clip_matches_oracle(xs, max_norm):
    xs = [np.array(x) if not x.flags.writeable else x for x in xs]
    want, wnorm = oracle_clip([np.ascontiguousarray(x) for x in xs], max_norm)
    out, norm, bad = K.clip_by_global_norm(xs, max_norm)
    assert bad == (not math.isfinite(wnorm))
    if math.isfinite(wnorm):
        assert abs(norm - wnorm) <= 1e-12 * wnorm + 1e-300
    else:
        assert (math.isnan(norm) and math.isnan(wnorm)) or norm == wnorm
    for o, w in zip(out, want):
        # the coefficient comes from the same float64 norm up to rounding: one float ulp apart at most
        np.testing.assert_allclose(np.asarray(o, np.float64), np.asarray(w, np.float64), rtol=1e-2 if o.dtype.itemsize == 2 else 1e-6,
                                   atol=0, equal_nan=True)


def test_large_multichunk_and_thread_independence(monkeypatch):
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal(1_500_017), 0).astype(np.float32) * 5 + 1000
    x[::1001] = np.nan
    want = oracle_stats(x, bins=(990.0, 1020.0, 64))
    results = []
    for nt in ("1", "2", "3"):
        monkeypatch.setenv("KERASRECIPE_NUM_THREADS", nt)
        got = K.activation_stats(x, bins=(990.0, 1020.0, 64))
        assert_native_exact(got, want, x)
        results.append((got["mean"], got["var"]))
    assert results[0] == results[1] == results[2]  # deterministic whatever the thread count


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("where", ["none", "stream", "last-stream", "rest", "tail"])
def test_float32_streams_with_rare_nonfinite(where, uniform, monkeypatch):
    """float32 reads a chunk as four interleaved streams and assumes a sub-block is finite until
    it finds otherwise (then counts that one again, testing every value): one NaN/Inf in the
    streams, in the single-stream rest or in the last partial vector must come out exact."""
    rng = np.random.default_rng(11)
    # whole chunks (65536 values), then one of 48029: four streams of 12000, a rest of 29 (3 vectors + 5)
    n = 3 * 65536 + 48_029
    x = np.maximum(rng.standard_normal(n), 0).astype(np.float32) * 3 - 0.5
    x[rng.random(n) < 0.05] = 0.0
    last = 3 * 65536
    pos = {"none": [], "stream": [70_001, 131_072 + 16_384 * 2 + 5], "last-stream": [last + 3 * 12_000 + 7],
           "rest": [n - 20], "tail": [n - 2]}[where]
    for i, p in enumerate(pos):
        x[p] = (np.nan, np.inf, -np.inf)[i % 3]
    if where == "tail":
        x[n - 4] = -np.inf
    bins = (-1.0, 5.0, 37) if uniform else None
    want = oracle_stats(x, bins=bins)
    for nt in ("1", "2"):
        monkeypatch.setenv("KERASRECIPE_NUM_THREADS", nt)
        assert_native_exact(K.activation_stats(x, bins=bins), want, x)


@pytest.mark.skipif(not K.info()["native_built"], reason="native module not built")
def test_baseline_simd_copy_agrees():
    """The non-AVX2 copy of the loops (KERASRECIPE_SIMD=base) gives the same answers."""
    code = (
        "import numpy as np, json\n"
        "from kerasrecipe import kernels as K, _native\n"
        "rng = np.random.default_rng(5)\n"
        "out = {'simd': _native.simd_level()}\n"
        "for dt in ('float16', 'float32', 'float64'):\n"
        "    x = (rng.standard_normal(70001) * 3).astype(dt); x[::97] = np.nan; x[::331] = 0; x[5] = np.inf\n"
        "    for b in (None, (-1.0, 2.0, 9)):\n"
        "        s = K.activation_stats(x, bins=b)\n"
        "        out[dt + str(b)] = [s[k] for k in ('count','zeros','saturated','nan','inf','min','max')] + [s['hist'].tolist(), s['mean'], s['var']]\n"
        "print(json.dumps(out))\n"
    )
    import json

    res = {}
    for simd in ("base", "auto"):
        env = dict(os.environ, KERASRECIPE_SIMD=simd)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        res[simd] = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["base"].pop("simd") == "base"
    res["auto"].pop("simd")
    for key, b in res["base"].items():
        a = res["auto"][key]
        assert a[:8] == b[:8], key
        assert abs(a[8] - b[8]) <= 1e-12 * max(1.0, abs(b[8])) and abs(a[9] - b[9]) <= 1e-10 * b[9], key


_POOL_CODE = (
    "import os, sys, json, numpy as np\n"
    "if sys.argv[1] == 'torch': import torch\n"
    "from kerasrecipe import kernels as K\n"
    "rng = np.random.default_rng(9)\n"
    "xs = [(rng.standard_normal(n) * 2).astype('float32') for n in (300001, 70000, 5)]\n"
    "xs[0][::101] = 0\n"
    "out = {'pool': K.info()['thread_pool']}\n"
    "s = K.activation_stats_many(xs)\n"
    "out['stats'] = [[d[k] for k in ('zeros', 'min', 'max', 'mean', 'var')] + [d['hist'].tolist()] for d in s]\n"
    "out['norm'] = float(K.clip_by_global_norm([x.copy() for x in xs], 1e30)[1])\n"
    "if sys.argv[1] == 'torch':\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"  # a forked child never uses the parent's OpenMP team
    "        ok = K.info()['thread_pool'] == 'std::thread' and float(K.clip_by_global_norm([x.copy() for x in xs], 1e30)[1]) == out['norm']\n"
    "        os._exit(0 if ok else 3)\n"
    "    out['child'] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
    "    torch.set_num_threads(1)\n"  # info() reports the team size the native side will use
    "    out['threads1'] = K.info()['threads']\n"
    "print(json.dumps(out))\n"
)


@pytest.mark.skipif(not K.info()["native_built"], reason="native module not built")
def test_cpu_kernels_share_torch_openmp_team_with_identical_answers():
    """With torch imported (its libgomp loaded), the CPU kernels run on OpenMP's team
    (csrc/cpu/parallel.h); the answers are the same bits as on std::threads, KERASRECIPE_OPENMP=0
    turns it off, and a forked child falls back to std::threads (and finishes)."""
    pytest.importorskip("torch")
    import json

    res = {}
    for label, mode, env_extra in (("openmp", "torch", {}), ("off", "torch", {"KERASRECIPE_OPENMP": "0"}),
                                   ("plain", "numpy", {})):
        env = dict(os.environ, KERASRECIPE_NUM_THREADS="", **env_extra)
        r = subprocess.run([sys.executable, "-c", _POOL_CODE, mode], env=env, capture_output=True, text=True,
                           timeout=180)
        assert r.returncode == 0, r.stderr
        res[label] = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["openmp"]["pool"] == "openmp"
    assert res["off"]["pool"] == "std::thread" and res["plain"]["pool"] == "std::thread"
    assert res["openmp"]["child"] == 0 and res["off"]["child"] == 0
    assert res["openmp"]["threads1"] == 1  # follows torch.set_num_threads (OpenMP's team size)
    assert res["off"]["threads1"] == os.cpu_count()  # std::threads: every core
    for key in ("stats", "norm"):
        assert res["openmp"][key] == res["off"][key] == res["plain"][key], key


@pytest.mark.skipif(not K.info()["native_built"], reason="native module not built")
def test_native_rejects_bad_buffers():
    from kerasrecipe import _native

    with pytest.raises(ValueError):
        _native.stats_cpu([0], [10], [0], 0.99, 0, 0.0, 0.0, 65, 0)  # null pointer
    with pytest.raises(ValueError):
        _native.sumsq_cpu([1, 2], [1], [0], 0)  # ragged
    with pytest.raises(ValueError):
        _native.clip_cpu([0], [0], [9], 1.0, 1e-6, 0)  # bad dtype code


# ----------------------------------------------------------------------------- backends & dispatch

def test_native_agrees_with_keras_ops_reference(backend):
    import keras

    from kerasrecipe.kernels import _reference as R
    from kerasrecipe.kernels._hist import parse_bins

    rng = np.random.default_rng(7)
    x = (rng.standard_normal((16, 33)) * 2).astype("float32")
    x[0, :3] = [np.nan, np.inf, 0.0]
    native = K.activation_stats(x)
    for bins in (None, (-3.0, 3.0, 12)):
        native = K.activation_stats(x, bins=bins)
        ref = R.stats_keras(keras.ops.convert_to_tensor(x), 0.99, parse_bins(bins), "float32")
        ref = {k: (np.asarray(keras.ops.convert_to_numpy(v)) if k != "hist_edges" else v) for k, v in ref.items()}
        assert_stats_close(ref, oracle_stats(x, bins=bins), rtol=1e-5, hist_slack=2)
        for k in ("count", "zeros", "saturated", "nan", "inf"):
            assert int(ref[k]) == native[k]
    g = [(rng.standard_normal(50) * 3).astype("float32"), (rng.standard_normal((4, 5))).astype("float32")]
    want, wnorm = oracle_clip(g, 1.0)
    out, norm, bad = R.clip_keras([keras.ops.convert_to_tensor(a) for a in g], ["float32"] * 2, 1.0, 1e-6)
    assert abs(float(keras.ops.convert_to_numpy(norm)) - wnorm) < 1e-5 * wnorm and not bool(keras.ops.convert_to_numpy(bad))
    for o, w in zip(out, want):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(o), w, rtol=1e-5)


def test_dispatch_eager_backend_tensors(backend):
    import keras

    rng = np.random.default_rng(8)
    x = np.maximum(rng.standard_normal((8, 40)), 0).astype("float32")
    t = keras.ops.convert_to_tensor(x)
    s = K.activation_stats(t)  # eager: native via a host view
    assert isinstance(s["mean"], float)
    assert_native_exact(s, oracle_stats(x), x)
    v = keras.Variable(x)
    assert K.activation_stats(v)["zeros"] == s["zeros"]
    g = [keras.ops.convert_to_tensor((rng.standard_normal(30) * 4).astype("float32")) for _ in range(3)]
    gnp = [np.array(keras.ops.convert_to_numpy(a)) for a in g]
    want, wnorm = oracle_clip(gnp, 2.0)
    out, norm, bad = K.clip_by_global_norm(g, 2.0)
    assert abs(float(keras.ops.convert_to_numpy(norm)) - wnorm) < 1e-5 * wnorm
    assert not bool(keras.ops.convert_to_numpy(bad))
    for o, w in zip(out, want):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(o), w, rtol=1e-6)
    if backend == "torch":  # eager torch: in place
        assert out[0] is g[0]


def test_dispatch_traced(backend):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((6, 50)) * 3).astype("float32")
    x[0, 0] = np.nan
    want = oracle_stats(x)
    g = [(rng.standard_normal(20) * 5).astype("float32")]
    wclip, wnorm = oracle_clip(g, 1.0)
    if backend == "jax":
        import jax

        s = jax.jit(lambda a: K.activation_stats(a))(x)
        c, n, b = jax.jit(lambda a: K.clip_by_global_norm([a], 1.0))(g[0])
    elif backend == "tensorflow":
        import tensorflow as tf

        s = tf.function(lambda a: K.activation_stats(a))(tf.constant(x))
        c, n, b = tf.function(lambda a: K.clip_by_global_norm([a], 1.0))(tf.constant(g[0]))
    else:
        pytest.skip("torch tensors are eager here; torch.compile tracing is covered by the reference path")
    s = {k: (np.asarray(v) if k != "hist_edges" else v) for k, v in s.items()}
    assert_stats_close(s, want, rtol=1e-5, hist_slack=0)
    assert abs(float(n) - wnorm) < 1e-5 * wnorm and not bool(b)
    np.testing.assert_allclose(np.asarray(c[0]), wclip[0], rtol=1e-6)



def test_traced_empty_tensor_gives_the_documented_empty_result(backend):
    import keras

    from kerasrecipe.kernels import _reference as R
    from kerasrecipe.kernels._hist import parse_bins

    x = np.zeros((0, 3), np.float32)
    if backend == "jax":
        import jax

        res = jax.jit(lambda a: {k: v for k, v in K.activation_stats(a).items() if k != "hist_edges"})(x)
    elif backend == "tensorflow":
        import tensorflow as tf

        res = tf.function(lambda a: {k: v for k, v in K.activation_stats(a).items() if k != "hist_edges"})(
            tf.constant(x))
    else:
        res = R.stats_keras(keras.ops.convert_to_tensor(x), 0.99, parse_bins(None), "float32")
    got = {k: keras.ops.convert_to_numpy(v) for k, v in res.items() if k != "hist_edges"}
    assert int(got["count"]) == 0 and int(got["nan"]) == 0 and int(got["zeros"]) == 0 and got["hist"].sum() == 0
    assert all(math.isnan(float(got[k])) for k in ("mean", "var", "std", "min", "max"))


def test_traced_stats_accumulate_without_overflow(backend):
    """The keras.ops path (traced tensors) accumulates in float64 where the backend can (TF,
    torch, JAX with x64) and, on JAX without x64, scales by max|x| and takes the mean out before
    squaring: no float32 overflow (var was inf inside tf.function for this float32 input)."""
    import keras

    from kerasrecipe.kernels import _reference as R
    from kerasrecipe.kernels._hist import parse_bins

    rng = np.random.default_rng(13)
    big = (rng.standard_normal(1000) * 1e20).astype(np.float32)    # var ~1e40: beyond float32
    mid = (rng.standard_normal(1000) * 1e18).astype(np.float32)    # var ~1e36, sum of squares ~1e39
    shifted = (1e4 + rng.standard_normal(1000)).astype(np.float32)  # mean >> std
    f64 = backend != "jax" or bool(__import__("jax").config.jax_enable_x64)  # float64 traceable

    if backend == "jax":  # one compilation for the three inputs (same shape and dtype)
        import jax

        run = jax.jit(lambda a: K.activation_stats(a))
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda a: K.activation_stats(a))
        run = lambda x: fn(tf.constant(x))  # noqa: E731
    else:  # torch: tensors are eager outside torch.compile; the traced path is this reference
        run = lambda x: R.stats_keras(keras.ops.convert_to_tensor(x), 0.99, parse_bins(None), "float32")  # noqa: E731

    rtol = 1e-12 if f64 else 1e-5
    for x in (big, mid, shifted):
        want = K.activation_stats(x)  # native, float64
        res = run(x)
        got = {k: float(keras.ops.convert_to_numpy(res[k])) for k in ("mean", "var", "std", "min", "max")}
        for k in ("mean", "std", "min", "max"):
            tol = rtol * max(abs(want[k]), want["std"])  # the mean's error scales with the spread
            assert math.isfinite(got[k]) and abs(got[k] - want[k]) <= tol, (k, got[k], want[k])
        if f64 or want["var"] < float(np.finfo(np.float32).max):
            assert abs(got["var"] - want["var"]) <= 2 * rtol * want["var"], (got["var"], want["var"])
        else:  # a float32 result cannot hold 1e40; std still does
            assert got["var"] == math.inf
        if f64:
            assert keras.ops.convert_to_numpy(res["var"]).dtype == np.float64


def test_traced_stats_jax_with_x64_enabled(backend):
    """With x64 on, JAX traces float64 too: the JAX path then accumulates in float64."""
    if backend != "jax":
        pytest.skip("JAX backend only")
    import jax

    rng = np.random.default_rng(14)
    x = (rng.standard_normal(500) * 1e20).astype(np.float32)
    want = K.activation_stats(x)
    with jax.enable_x64(True):
        s = jax.jit(lambda a: K.activation_stats(a))(x)
        assert s["var"].dtype == np.float64
        assert abs(float(s["var"]) - want["var"]) <= 1e-12 * want["var"]


def test_traced_tensor_of_another_framework_is_a_clear_error(backend):
    """Traced tensors are computed with keras.ops, i.e. by the Keras backend's framework: a
    tracer of another framework is an InputTypeError that says so (was a JAX
    TracerArrayConversionError from deep inside Keras's TF backend, or NotImplementedError)."""
    import importlib.util
    x = np.ones(10, np.float32)
    tried = 0
    if backend != "jax" and importlib.util.find_spec("jax") is not None:
        import jax

        for f in (lambda a: K.activation_stats(a)["mean"], lambda a: K.clip_by_global_norm([a], 1.0)[1],
                  lambda a: K.activation_stats_many([a])[0]["var"]):
            with pytest.raises(InputTypeError, match="traced jax tensor.*KERAS_BACKEND=jax"):
                jax.jit(f)(x)
        tried += 1
    if backend != "tensorflow" and importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        for f in (lambda a: K.activation_stats(a)["mean"], lambda a: K.clip_by_global_norm(a, 1.0)[1]):
            with pytest.raises(InputTypeError, match="traced tensorflow tensor.*KERAS_BACKEND=tensorflow"):
                tf.function(f, autograph=False)(tf.constant(x))
        tried += 1
    if not tried:
        pytest.skip("needs a second framework beside the backend's (TensorFlow or JAX)")
    # eager tensors of any framework still work with any backend
    if importlib.util.find_spec("jax") is not None:
        import jax.numpy as jnp

        assert K.activation_stats(jnp.ones(10))["mean"] == 1.0


def _torch():
    try:
        import torch as _t
    except ImportError:  # pragma: no cover
        pytest.skip("torch not installed")
    return _t


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_torch_cpu_native_in_place(dtype):
    t = _torch()
    dt = getattr(t, dtype)
    g = t.randn(40, 30, dtype=t.float64).mul(3).to(dt)
    nc = t.randn(30, 40).mul(2).to(dt).t()  # non-contiguous
    ref = [np.asarray(a.double().numpy()).astype(DTYPES[dtype]) for a in (g, nc)]
    want, wnorm = oracle_clip(ref, 1.0)
    out, norm, bad = K.clip_by_global_norm([g, nc], 1.0)
    assert out[0] is g and out[1] is nc and norm.dtype == t.float32 and bool(bad) is False
    assert abs(float(norm) - wnorm) <= 1e-6 * wnorm
    for o, w in zip(out, want):
        np.testing.assert_allclose(o.double().numpy(), np.asarray(w, np.float64), rtol=1e-2 if dtype in ("float16", "bfloat16") else 1e-6)
    s = K.activation_stats(nc)
    assert_native_exact(s, oracle_stats(np.asarray(nc.double().numpy())), nc.double().numpy())


def test_torch_cpu_fast_path_one_native_call(monkeypatch):
    """A list of contiguous CPU torch tensors is read by the native side in one call (no
    per-tensor Python); lists it cannot take go the general way with the same answers/errors."""
    from kerasrecipe.kernels import _dispatch as D

    t = _torch()
    calls = []
    real = D.native.torch_clip_cpu
    monkeypatch.setattr(D.native, "torch_clip_cpu", lambda *a, **k: calls.append(1) or real(*a, **k))
    gen = t.Generator().manual_seed(3)
    base = t.randn(1001, generator=gen, dtype=t.float64)
    ts = [base[1:].float(), t.randn(7, 9, generator=gen).half(), t.empty(0), base[3:].clone()[1:],  # misaligned views
          t.randn(33, generator=gen).bfloat16()]
    assert all(x.is_contiguous() for x in ts) and ts[3].data_ptr() % 16 != 0
    ref = [x.double().numpy().astype(DTYPES[str(x.dtype).split(".")[1]]) for x in ts]
    want, wnorm = oracle_clip(ref, 2.0)
    out, norm, bad = K.clip_by_global_norm(ts, 2.0)
    assert calls == [1] and all(o is x for o, x in zip(out, ts))
    assert abs(float(norm) - wnorm) <= 1e-6 * wnorm and not bool(bad)
    for o, w in zip(out, want):
        np.testing.assert_allclose(o.double().numpy(), np.asarray(w, np.float64), rtol=1e-2)
    with pytest.raises(InputTypeError, match="integer|int"):
        K.clip_by_global_norm([t.ones(3), t.ones(3, dtype=t.int32)], 1.0)
    with pytest.raises(InputTypeError, match="one kind"):
        K.clip_by_global_norm([t.ones(3), np.ones(3, np.float32)], 1.0)
    nc = [t.ones(4, 6).t()]
    K.clip_by_global_norm(nc, 1.0)  # declined (non-contiguous): general path, written back
    np.testing.assert_allclose(nc[0].numpy(), 1 / math.sqrt(24 + 24e-6 * math.sqrt(24)), rtol=1e-5)


def test_torch_grad_tensors_and_none():
    t = _torch()
    w = t.nn.Parameter(t.ones(5))
    (w * 10).sum().backward()
    out, norm, _ = K.clip_by_global_norm([w.grad, None], 1.0)
    assert out[1] is None and abs(float(norm) - 10 * math.sqrt(5)) < 1e-4
    assert abs(float(t.linalg.vector_norm(w.grad)) - 1.0) < 1e-5


def test_reference_fallbacks_without_native(monkeypatch):
    """Without the native module the same answers come from NumPy (arrays) and torch ops."""
    from kerasrecipe.kernels import _dispatch as D

    monkeypatch.setattr(D, "HAS_NATIVE_CPU", False)
    assert K.info()["paths"]["numpy"].startswith("NumPy")
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((30, 41)) * 4).astype("float32")
    x[0, :3] = [np.nan, -np.inf, 0.0]
    for bins in (None, (-3.0, 3.0, 10)):
        assert_native_exact(K.activation_stats(x, bins=bins), oracle_stats(x, bins=bins), x)
    g = [(rng.standard_normal(40) * 3).astype("float32"), (rng.standard_normal(7) * 3).astype("float16")]
    want, wnorm = oracle_clip([a.copy() for a in g], 1.0)
    _, norm, bad = K.clip_by_global_norm(g, 1.0)
    assert abs(norm - wnorm) <= 1e-12 * wnorm and bad is False
    for o, w in zip(g, want):
        np.testing.assert_array_equal(o, w)
    t = _torch()
    tg = [t.tensor(want[0] * 50), t.ones(4, dtype=t.bfloat16)]
    wt, wn = oracle_clip([tg[0].numpy().copy(), np.ones(4, ml_dtypes.bfloat16)], 1.0)
    _, tnorm, tbad = K.clip_by_global_norm(tg, 1.0)
    assert abs(float(tnorm) - wn) <= 1e-6 * wn and not bool(tbad)
    np.testing.assert_allclose(tg[0].numpy(), wt[0], rtol=1e-6)
    s = K.activation_stats(tg[1])
    assert s["count"] == 4 and s["hist"].sum() == 4
