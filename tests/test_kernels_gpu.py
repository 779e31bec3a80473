"""CUDA kernels of kerasrecipe.kernels, on eager torch CUDA tensors.

Needs only torch + numpy + the built extension (no keras, no hypothesis), so that
benchmarks/gpu_check.sh can run it on a bare GPU machine with `pytest --noconftest`.
Every test is marked `gpu` and skips cleanly without a GPU or without the CUDA build.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kerasrecipe import kernels as K  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (torch.cuda.is_available() and K.info()["gpu_visible"]),
                       reason="needs an NVIDIA GPU and the CUDA build of kerasrecipe._native"),
]


def oracle(x, sat=0.99, bins=None):
    x = np.asarray(x, np.float64).ravel()
    fin = x[np.isfinite(x)]
    if bins is None:
        a = np.abs(fin)
        _, e = np.frexp(a)
        mag = np.clip(e.astype(np.int64) - 1 + 20, 0, 31)
        idx = np.where(a < 2.0 ** -20, 32, np.where(fin > 0, 33 + mag, 31 - mag))
        hist = np.bincount(idx, minlength=65)
    else:
        lo, hi, n = bins
        hist = np.bincount(np.clip(np.floor((fin - lo) * (n / (hi - lo))), 0, n - 1).astype(np.int64), minlength=n)
    nan = float("nan")
    return {"count": x.size, "nan": int(np.isnan(x).sum()), "inf": int(np.isinf(x).sum()),
            "zeros": int((x == 0).sum()), "saturated": int((np.abs(fin) >= sat).sum()),
            "mean": fin.mean() if fin.size else nan, "var": fin.var() if fin.size else nan,
            "min": fin.min() if fin.size else nan, "max": fin.max() if fin.size else nan, "hist": hist}


def check(got, want, host):
    for k in ("count", "nan", "inf", "zeros", "saturated"):
        assert got[k] == want[k], (k, got[k], want[k])
    np.testing.assert_array_equal(got["hist"], want["hist"])
    if math.isnan(want["mean"]):
        assert math.isnan(got["mean"]) and math.isnan(got["min"])
        return
    assert got["min"] == want["min"] and got["max"] == want["max"]
    f = np.asarray(host, np.float64)
    m = float(np.abs(f[np.isfinite(f)]).max())
    assert abs(got["mean"] - want["mean"]) <= 1e-12 * m
    assert abs(got["var"] - want["var"]) <= 1e-9 * want["var"] + 1e-13 * m * m


def sample(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    flat = x.view(-1)
    if flat.numel() > 10:
        flat[::97] = float("nan")
        flat[5::211] = float("inf")
        flat[7::301] = float("-inf")
        flat[::13] = 0.0
    return x.to(dtype).cuda()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("bins", [None, (-2.0, 3.0, 37)])
def test_stats_cuda_matches_oracle(dtype, bins):
    x = sample((37, 1001), dtype)
    host = x.double().cpu().numpy()
    got = K.activation_stats(x, bins=bins)
    check(got, oracle(host, bins=bins), host)
    again = K.activation_stats(x, bins=bins)
    assert again["mean"] == got["mean"] and again["var"] == got["var"]  # deterministic


def test_stats_many_one_launch_mixed():
    xs = [sample((3_000_001,), torch.float32, 1), torch.empty(0, device="cuda"), torch.tensor([2.5], device="cuda"),
          sample((64, 33), torch.float16, 2), sample((128, 9), torch.bfloat16, 3).t()]  # last: non-contiguous
    got = K.activation_stats_many(xs)
    for g, x in zip(got, xs):
        host = x.double().cpu().numpy()
        check(g, oracle(host), host)
    assert got[1]["count"] == 0 and math.isnan(got[1]["mean"])
    assert got[2]["mean"] == 2.5 and got[2]["var"] == 0.0


@pytest.mark.parametrize("nbins", [2000, 10000])  # one shared histogram per block; global atomics
def test_stats_cuda_large_uniform_histograms(nbins):
    x = sample((4099, 33), torch.float32, 8)
    host = x.double().cpu().numpy()
    check(K.activation_stats(x, bins=(-5.0, 5.0, nbins)), oracle(host, bins=(-5.0, 5.0, nbins)), host)


def test_fast_path_misaligned_views(monkeypatch):
    """Contiguous tensors whose data is not 16-byte aligned take the scalar loads; the list is
    read by the native side in one call."""
    from kerasrecipe.kernels import _dispatch as D

    calls = []
    for name in ("torch_stats_cuda", "torch_clip_cuda"):
        real = getattr(D.native, name)
        monkeypatch.setattr(D.native, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k))
    xs = [sample((50_001,), dt, 9 + i)[1:] for i, dt in enumerate((torch.float32, torch.float16, torch.bfloat16,
                                                                   torch.float64))]
    assert all(x.is_contiguous() and x.data_ptr() % 16 for x in xs)
    got = K.activation_stats_many(xs)
    for g, x in zip(got, xs):
        host = x.double().cpu().numpy()
        check(g, oracle(host), host)
    gs = [x.nan_to_num(0, 0, 0) for x in xs]
    gs = [torch.cat([g[:1], g])[1:] for g in gs]  # misaligned again after nan_to_num
    host = [g.double().cpu().numpy() for g in gs]
    norm_w, coef = oracle_clip(host, 1.0)
    _, norm, bad = K.clip_by_global_norm(gs, 1.0)
    assert abs(float(norm) - norm_w) <= 1e-6 * norm_w and not bool(bad)
    for g, h in zip(gs, host):
        tol = 1e-2 if g.dtype in (torch.float16, torch.bfloat16) else 1e-6
        atol = 2.0 ** -24 if g.dtype == torch.float16 else 1e-30  # float16 subnormals: absolute spacing 2^-24
        np.testing.assert_allclose(g.double().cpu().numpy(), h * coef, rtol=tol, atol=atol)
    assert calls == ["torch_stats_cuda", "torch_clip_cuda"]


def oracle_clip(host, max_norm, eps=1e-6):
    norm = math.sqrt(sum(float(np.sum(np.square(np.asarray(h, np.float64)))) for h in host))
    coef = max_norm / (norm + eps)
    return norm, (coef if (math.isnan(coef) or coef < 1) else 1.0)


def test_clip_cuda_in_place_mixed_dtypes():
    ts = [sample((300, 70), torch.float32, 4).nan_to_num(0, 0, 0), sample((1000,), torch.float16, 5).nan_to_num(0, 0, 0),
          sample((77,), torch.bfloat16, 6).nan_to_num(0, 0, 0), sample((5, 5), torch.float64, 7).nan_to_num(0, 0, 0),
          torch.empty(0, device="cuda")]
    host = [t.double().cpu().numpy() for t in ts]
    norm_w, coef = oracle_clip(host, 1.0)
    out, norm, bad = K.clip_by_global_norm(ts, 1.0)
    assert out[0] is ts[0] and norm.device.type == "cuda" and norm.dtype == torch.float32
    assert abs(float(norm) - norm_w) <= 1e-6 * norm_w and not bool(bad)
    for t, h in zip(ts, host):
        tol = 1e-2 if t.dtype in (torch.float16, torch.bfloat16) else 1e-6
        np.testing.assert_allclose(t.double().cpu().numpy(), h * coef, rtol=tol, atol=1e-30)


def test_clip_cuda_no_sync_nonfinite_and_stream():
    g = [torch.full((4096,), 3.0, device="cuda") for _ in range(1000)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    torch.cuda.set_sync_debug_mode("error")  # the Python glue must not synchronise
    try:
        with torch.cuda.stream(side):
            _, norm, bad = K.clip_by_global_norm(g, 1.0)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    side.synchronize()
    want = 3.0 * math.sqrt(4096 * 1000)
    assert abs(float(norm) - want) <= 1e-6 * want and not bool(bad)
    assert abs(float(g[999][0]) - 3.0 / (want + 1e-6)) < 1e-9
    h = [torch.tensor([1.0, float("nan")], device="cuda"), torch.ones(3, device="cuda")]
    _, norm, bad = K.clip_by_global_norm(h, 1.0)
    assert bool(bad) and math.isnan(float(norm)) and torch.isnan(h[1]).all()
    small = [torch.full((10,), 0.01, device="cuda")]
    K.clip_by_global_norm(small, 10.0)
    assert (small[0] == 0.01).all()  # coef 1: unchanged


def test_indexing_beyond_2_31():
    n = 2**31 + 4099
    free, _ = torch.cuda.mem_get_info()
    if free < 3 * n * 2:
        pytest.skip("needs ~13 GB of free GPU memory")
    x = torch.ones(n, dtype=torch.float16, device="cuda")
    x[-1] = 2.0
    x[2**31 + 1] = float("nan")
    s = K.activation_stats(x)
    assert s["count"] == n and s["nan"] == 1 and s["max"] == 2.0 and s["min"] == 1.0
    assert s["hist"][33 + 20] == n - 2 and s["hist"][33 + 21] == 1
    x[2**31 + 1] = 1.0
    _, norm, bad = K.clip_by_global_norm([x], 1e9)
    assert abs(float(norm) - math.sqrt(n - 1 + 4)) < 1e-3 * math.sqrt(n) and not bool(bad)
    del x
    torch.cuda.empty_cache()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_stats_cuda_mostly_finite_large(dtype):
    """Long runs of finite values take the branch-free path (NaN/Inf checked per 16 values at once);
    a few NaN/Inf, both signs, zeros, values beyond the top bin and below the middle bin, a
    first value that is NaN (the shift comes from the first finite group), a misaligned view."""
    g = torch.Generator().manual_seed(11)
    x = torch.relu(torch.randn(1_000_003, generator=g, dtype=torch.float64))
    x[1::2] *= -1.0
    x[::7] *= 2.0 ** torch.randint(-40, 30, (x[::7].numel(),), generator=g).double()
    x[3::1001] = -0.0
    if dtype == torch.float16:
        x = x.clamp(-60000, 60000)
    x[0] = float("nan")
    x[123_457] = float("inf")
    x[777_777] = float("-inf")
    x = x.to(dtype).cuda()
    for t in (x, x[1:], x[5:-3]):  # the first views start off 16-byte alignment: scalar loads
        host = t.double().cpu().numpy()
        check(K.activation_stats(t), oracle(host), host)


def test_stats_cuda_far_from_zero_mean():
    # variance of values far from zero: the per-thread shift keeps the float64 sums exact enough
    g = torch.Generator().manual_seed(12)
    x = (1e4 + torch.randn(3_000_000, generator=g, dtype=torch.float64)).float().cuda()
    host = x.double().cpu().numpy()
    check(K.activation_stats(x), oracle(host), host)
