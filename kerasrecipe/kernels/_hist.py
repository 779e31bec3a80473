"""Histogram bins of activation_stats: single pass, no data-dependent range.

Two designs, both decided per element without knowing the data's range first:

* ``bins=None`` (default) -- **sign/exponent bins**. A finite value's bin is fixed by its sign and
  its binary exponent ``e = floor(log2|x|)``: magnitudes ``[2**e, 2**(e+1))`` for
  ``e = -20 .. 11`` on each side (32 bins a side), one centre bin for ``|x| < 2**-20``
  (exact zeros included), and the outermost bins also take ``|x| >= 2**12``. 65 bins in all,
  ordered from most negative to most positive; ``hist_edges`` (66 values) is
  ``[-2**12, -2**11, ..., -2**-20, 2**-20, ..., 2**12]`` for plotting. Negative bins are closed
  on the side of larger magnitude (``-2**(e+1) < x <= -2**e``) so that both signs use the same
  exponent rule.
* ``bins=(lo, hi, n)`` -- ``n`` equal bins over ``[lo, hi]`` given by the caller:
  ``index = floor((x - lo) * n / (hi - lo))`` computed in float64 and clamped to ``[0, n-1]``,
  so values outside the range count in the end bins. ``hist_edges = linspace(lo, hi, n + 1)``.

NaN and +-Inf never enter the histogram (they are counted apart).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from kerasrecipe.errors import ConfigError

LOG2_EMIN = -20  # smallest magnitude bin starts at 2**-20 (~9.5e-7)
LOG2_EMAX = 12  # largest magnitude bin ends at 2**12 = 4096 (clamped beyond)
N_MAG = LOG2_EMAX - LOG2_EMIN  # 32 magnitude bins per sign
N_LOG_BINS = 2 * N_MAG + 1  # 65
MAX_UNIFORM_BINS = 1 << 16

MODE_LOG2 = 0
MODE_UNIFORM = 1

_pos = np.ldexp(1.0, np.arange(LOG2_EMIN, LOG2_EMAX + 1))
_LOG2_EDGES = np.concatenate([-_pos[::-1], _pos])
_LOG2_EDGES.flags.writeable = False
del _pos


class HistSpec:
    """Parsed `bins` argument: mode, lo, hi, n (lo/hi unused in log2 mode)."""

    __slots__ = ("mode", "lo", "hi", "n", "_edges")

    def __init__(self, mode, lo=0.0, hi=0.0, n=N_LOG_BINS):
        self.mode, self.lo, self.hi, self.n = mode, float(lo), float(hi), int(n)
        self._edges = None

    @property
    def scale(self) -> float:
        return self.n / (self.hi - self.lo) if self.mode == MODE_UNIFORM else 0.0

    def edges(self) -> np.ndarray:
        """The n + 1 bin edges (read-only; one array shared by every result of a call)."""
        if self._edges is None:
            if self.mode == MODE_UNIFORM:
                self._edges = np.linspace(self.lo, self.hi, self.n + 1)
                self._edges.flags.writeable = False
            else:
                self._edges = _LOG2_EDGES
        return self._edges

    def __repr__(self):
        if self.mode == MODE_UNIFORM:
            return f"HistSpec(uniform, lo={self.lo}, hi={self.hi}, n={self.n})"
        return "HistSpec(log2)"


def parse_bins(bins) -> HistSpec:
    """None -> sign/exponent bins; (lo, hi, n) -> n uniform bins on [lo, hi]."""
    if bins is None:
        return HistSpec(MODE_LOG2)
    if isinstance(bins, (tuple, list)) and len(bins) == 3:
        lo, hi, n = bins
        ok_num = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (lo, hi))
        if not ok_num or not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise ConfigError(f"bins=(lo, hi, n) needs finite numbers lo < hi, got lo={lo!r}, hi={hi!r}")
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or not 1 <= n <= MAX_UNIFORM_BINS:
            raise ConfigError(f"bins=(lo, hi, n) needs an integer n in [1, {MAX_UNIFORM_BINS}], got n={n!r}")
        return HistSpec(MODE_UNIFORM, float(lo), float(hi), int(n))
    raise ConfigError(
        f"bins must be None (sign/exponent bins, no range needed) or a tuple (lo, hi, n) of a fixed "
        f"range and a bin count, got {bins!r}"
    )


def hist_index_numpy(x: np.ndarray, spec: HistSpec) -> np.ndarray:
    """Bin index (int64) of each value of a float64 array of FINITE values."""
    if spec.mode == MODE_UNIFORM:
        idx = np.floor((x - spec.lo) * spec.scale)
        return np.clip(idx, 0, spec.n - 1).astype(np.int64)
    a = np.abs(x)
    _, e = np.frexp(a)  # a = m * 2**e, m in [0.5, 1) -> floor(log2 a) = e - 1
    mag = np.clip(e.astype(np.int64) - 1 - LOG2_EMIN, 0, N_MAG - 1)
    idx = np.where(x > 0, N_MAG + 1 + mag, N_MAG - 1 - mag)
    return np.where(a < math.ldexp(1.0, LOG2_EMIN), N_MAG, idx).astype(np.int64)
