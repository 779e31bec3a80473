// Inner loops of the CPU kernels, written once with GCC/Clang vector extensions and compiled
// twice: kernels_base.cpp (the default x86-64 / aarch64 ISA) and kernels_avx2.cpp (AVX2,
// chosen at run time when the CPU has it). Everything here has internal linkage (anonymous
// namespace) so the two copies never merge at link time. No -ffast-math: the NaN/Inf tests
// below are exact integer tests on the bit patterns.
//
// Included AFTER the standard headers and AFTER an optional `#pragma GCC target`.
// The including file defines KR_SIMD_NS (the namespace of its exported entry points).
#include "cpu/kernels.h"

#pragma GCC diagnostic ignored "-Wpsabi"
#define KR_INL inline __attribute__((always_inline))
namespace {

using kr::BlockStats;
using kr::HistSink;

typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef uint32_t u8v __attribute__((vector_size(32)));
typedef double d4 __attribute__((vector_size(32)));
typedef int64_t l4 __attribute__((vector_size(32)));
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));

constexpr int64_t SUB = 2048;  // sub-block (fits L1): moments per sub-block, then Chan
constexpr int STREAMS = 4;     // sequential streams one core reads at once (sumsq_impl, stats_f32_impl)

template <class V>
KR_INL V loadu(const void* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(V));
    return v;
}

// float32 x8 -> two float64 x4 (vcvtps2pd ymm on AVX; generic code elsewhere)
KR_INL d4 widen_lo(f8 v) {
#if defined(KR_AVX2_COPY)
    return (d4)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v));
#else
    return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), d4);
#endif
}
KR_INL d4 widen_hi(f8 v) {
#if defined(KR_AVX2_COPY)
    return (d4)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1));
#else
    return __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), d4);
#endif
}

// Lane select m ? a : b (m: all-ones / all-zeros lanes). With AVX2 the ternary is one blend;
// without it GCC scalarises 32-byte float ternaries, so the baseline copy uses bit operations.
template <class V, class M>
KR_INL V select(M m, V a, V b) {
#if defined(KR_AVX2_COPY)
    return m ? a : b;
#else
    return (V)(((M)a & m) | ((M)b & ~m));
#endif
}

KR_INL double hsum(d4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
KR_INL int64_t hsum(i8 v) {
    int64_t s = 0;
    for (int i = 0; i < 8; ++i) s += v[i];
    return s;
}
KR_INL int64_t hsum(l4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// The 8 non-negative int32 lanes of v as 4 uint64 pairs (lane 2k in the low half, 2k+1 in the
// high half): 5 moves out of the vector unit instead of 8 lane extractions, which competed with
// the statistics for the vector ports (the float32 log2 loop: 6.7 -> 4.7 ms over 8.4M values
// in L2 on one core of this project's EPYC); the halves are split with cheap integer ops.
KR_INL void lane_pairs(i8 v, uint64_t q[4]) {
    const l4 w = (l4)v;
    q[0] = uint64_t(w[0]); q[1] = uint64_t(w[1]); q[2] = uint64_t(w[2]); q[3] = uint64_t(w[3]);
}

KR_INL void scatter8(HistSink& h, i8 idx) {
    uint64_t q[4];
    lane_pairs(idx, q);
    ++h.h[0][uint32_t(q[0])]; ++h.h[1][q[0] >> 32]; ++h.h[2][uint32_t(q[1])]; ++h.h[3][q[1] >> 32];
    ++h.h[0][uint32_t(q[2])]; ++h.h[1][q[2] >> 32]; ++h.h[2][uint32_t(q[3])]; ++h.h[3][q[3] >> 32];
}
KR_INL void scatter4(HistSink& h, l4 idx) {
    ++h.h[0][idx[0]]; ++h.h[1][idx[1]]; ++h.h[2][idx[2]]; ++h.h[3][idx[3]];
}

// Chan et al.: combine (n, mean, M2) of a sub-block into the accumulator.
KR_INL void chan_add(BlockStats& a, int64_t nb, double mean_b, double m2_b) {
    if (nb == 0) return;
    if (a.nfin == 0) { a.nfin = nb; a.mean = mean_b; a.m2 = m2_b; return; }
    const double n = double(a.nfin) + double(nb);
    const double delta = mean_b - a.mean;
    a.mean += delta * (double(nb) / n);
    a.m2 += m2_b + delta * delta * (double(a.nfin) * double(nb) / n);
    a.nfin += nb;
}

// ---------------------------------------------------------------- float32 statistics
// Moments, min/max and counters of one sub-block (<= SUB values), accumulated per lane.
struct SubF32 {
    i8 czero = {}, csat = {}, amax = {}, cfin = {};
    f8 vmin = __builtin_inff() - (f8){}, vmax = -__builtin_inff() - (f8){};
    d4 s1a = {}, s1b = {}, s2a = {}, s2b = {};
};

// What one pass over 8 values needs besides the accumulators (all loop-invariant).
struct F32Consts {
    d4 vK;        // the shift K (float64)
    f8 vKf;       // the shift K (float32)
    float satf;   // saturation threshold
    uint32_t* keys;  // log2 mode: 8 key tables (HistSink::keys)
    HistSink* hs;    // uniform mode
    double lo, scale, nm1;
    int32_t trash;
};

// 8 values into the accumulators. CAREFUL = false assumes every value is finite (no per-value
// finiteness test, no select; only the largest |bits| is kept, to find out). CAREFUL = true tests
// every value and leaves NaN/Inf out; it does not count the histogram (the fast pass did).
// `live` masks out padding lanes.
template <int MODE, bool CAREFUL>
KR_INL void stats8(SubF32& s, const F32Consts& c, const f8 v, const i8 live) {
    const i8 bits = (i8)v;
    const i8 ab = bits & 0x7fffffff;
    const i8 fin = ((0x7f800000 - (i8){}) > ab) & live;
    s.czero -= (ab == 0) & live;
    f8 vm = v;
    if (CAREFUL) {
        s.cfin -= fin;
        s.csat -= ((f8)ab >= c.satf) & fin;
        vm = select(fin, v, c.vKf);
    } else {
        s.amax = s.amax > ab ? s.amax : ab;
        s.csat -= ((f8)ab >= c.satf) & live;
    }
    s.vmin = vm < s.vmin ? vm : s.vmin;
    s.vmax = vm > s.vmax ? vm : s.vmax;
    const d4 dlo = widen_lo(vm) - c.vK, dhi = widen_hi(vm) - c.vK;
    s.s1a += dlo;
    s.s1b += dhi;
    s.s2a += dlo * dlo;
    s.s2b += dhi * dhi;
    if (CAREFUL) return;
    if (MODE == kr::HIST_LOG2) {
        // the bin is a function of the sign+exponent bits alone: count those 512 keys
        // (exponent 255, NaN/Inf or a masked lane, is dropped when the keys are mapped)
        const i8 key = (i8)((u8v)bits >> 23) | (~live & 255);
        uint64_t q[4];
        lane_pairs(key, q);
        uint32_t* t = c.keys;
        constexpr int N = kr::N_KEYS;
        ++t[uint32_t(q[0])]; ++t[N + (q[0] >> 32)]; ++t[2 * N + uint32_t(q[1])]; ++t[3 * N + (q[1] >> 32)];
        ++t[4 * N + uint32_t(q[2])]; ++t[5 * N + (q[2] >> 32)]; ++t[6 * N + uint32_t(q[3])];
        ++t[7 * N + (q[3] >> 32)];
    } else {
        d4 tlo = (widen_lo(v) - c.lo) * c.scale, thi = (widen_hi(v) - c.lo) * c.scale;
        tlo = tlo < 0.0 ? 0.0 : tlo; thi = thi < 0.0 ? 0.0 : thi;
        tlo = tlo > c.nm1 ? c.nm1 : tlo; thi = thi > c.nm1 ? c.nm1 : thi;
        const i4 ilo = __builtin_convertvector(tlo, i4), ihi = __builtin_convertvector(thi, i4);
        i8 idx = __builtin_shufflevector(ilo, ihi, 0, 1, 2, 3, 4, 5, 6, 7);
        idx = select(fin, idx, c.trash - (i8){});
        scatter8(*c.hs, idx);
    }
}

// One piece of a sub-block: m values from p, the last m % 8 padded with K and masked out (K adds
// exactly 0 to the shifted sums and lies within the values seen, so min/max do not move).
template <int MODE, bool CAREFUL>
inline void stats_piece(SubF32& s, const F32Consts& c, const float* p, int64_t m) {
    const i8 all = (i8){} - 1;
    const int64_t full = m & ~int64_t(7);
    for (int64_t j = 0; j < full; j += 8) stats8<MODE, CAREFUL>(s, c, loadu<f8>(p + j), all);
    if (full < m) {
        alignas(32) float pad[8];
        for (int k = 0; k < 8; ++k) pad[k] = (full + k < m) ? p[full + k] : c.vKf[0];
        const i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
        stats8<MODE, CAREFUL>(s, c, loadu<f8>(pad), lane < int32_t(m - full));
    }
}

// STREAMS pieces of w values each (w a multiple of 8), read side by side: one core keeps more
// cache-line fills in flight over several sequential streams than over one (see sumsq_impl).
// One core, 16.8M values from memory: 10-20% faster than one stream; the same speed in cache.
template <int MODE>
inline void stats_streams(SubF32& s, const F32Consts& c, const float* const* p, int64_t w) {
    const i8 all = (i8){} - 1;
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    static_assert(STREAMS == 4, "one pointer per stream");
    for (int64_t j = 0; j < w; j += 8) {
        stats8<MODE, false>(s, c, loadu<f8>(p0 + j), all);
        stats8<MODE, false>(s, c, loadu<f8>(p1 + j), all);
        stats8<MODE, false>(s, c, loadu<f8>(p2 + j), all);
        stats8<MODE, false>(s, c, loadu<f8>(p3 + j), all);
    }
}

// A sub-block is read once on the assumption that every value is finite (the common case). One
// that turns out to hold NaN/Inf is counted again by the careful loop (moments and counters
// only: its histogram counts are right already, non-finite values land on exponent 255 / the
// trash slot). Then Chan's combination into acc, and the next shift K.
template <int MODE>
inline void stats_f32_impl(const float* x, int64_t n, float satf, HistSink& hs, BlockStats& acc) {
    // shift: the first finite value (keeps the shifted sums small); later the previous mean
    float Kf = 0.f;
    for (int64_t i = 0; i < n; ++i) {
        if ((kr::f2u(x[i]) & 0x7fffffffu) < 0x7f800000u) { Kf = x[i]; break; }
    }
    F32Consts c;
    c.satf = satf; c.keys = hs.keys; c.hs = &hs;
    c.lo = hs.lo; c.scale = hs.scale; c.nm1 = double(hs.nbins - 1); c.trash = hs.trash;
    // STREAMS interleaved ranges of q values each (a multiple of 8), then the rest in one stream
    const int64_t q = n >= STREAMS * SUB ? (n / STREAMS) & ~int64_t(7) : 0;
    const int64_t W = SUB / STREAMS;
    for (int64_t b = 0; b < STREAMS * q || b < n; ) {
        const float* pc[STREAMS];
        int np;
        int64_t w, m;
        if (b < STREAMS * q) {  // sub-block = STREAMS pieces of w values
            const int64_t j = b / STREAMS;
            w = (q - j < W) ? (q - j) : W;
            for (int k = 0; k < STREAMS; ++k) pc[k] = x + k * q + j;
            np = STREAMS;
            m = STREAMS * w;
        } else {
            w = m = (n - b < SUB) ? (n - b) : SUB;
            pc[0] = x + b;
            np = 1;
        }
        b += m;
        const double K = double(Kf);
        c.vK = K - (d4){};
        c.vKf = Kf - (f8){};
        SubF32 s;
        if (np == STREAMS) stats_streams<MODE>(s, c, pc, w);
        else stats_piece<MODE, false>(s, c, pc[0], w);
        int64_t nb = m, ninf = 0;
        bool finite = true;
        for (int k = 0; k < 8; ++k) finite &= s.amax[k] < 0x7f800000;
        if (!finite) {  // rare: NaN/Inf in this sub-block; count it again, testing every value
            s = SubF32{};
            for (int k = 0; k < np; ++k) {
                stats_piece<MODE, true>(s, c, pc[k], w);
                for (int64_t j = 0; j < w; ++j) ninf += (kr::f2u(pc[k][j]) & 0x7fffffffu) == 0x7f800000u;
            }
            nb = hsum(s.cfin);
        }
        acc.nan += m - nb - ninf; acc.inf += ninf; acc.zeros += hsum(s.czero); acc.sat += hsum(s.csat);
        if (nb > 0) {
            const double S1 = hsum(s.s1a + s.s1b), S2 = hsum(s.s2a + s.s2b);
            const double mean_b = K + S1 / double(nb);
            double m2_b = S2 - S1 * (S1 / double(nb));
            m2_b = m2_b > 0 ? m2_b : 0;
            float mn = s.vmin[0], mx = s.vmax[0];
            for (int k = 1; k < 8; ++k) { mn = s.vmin[k] < mn ? s.vmin[k] : mn; mx = s.vmax[k] > mx ? s.vmax[k] : mx; }
            if (double(mn) < acc.mn) acc.mn = mn;
            if (double(mx) > acc.mx) acc.mx = mx;
            chan_add(acc, nb, mean_b, m2_b);
            const double kn = mean_b < mn ? mn : (mean_b > mx ? mx : mean_b);
            Kf = float(kn);
        }
    }
}

// ---------------------------------------------------------------- float64 statistics
template <int MODE>
inline void stats_f64_impl(const double* x, int64_t n, double sat, HistSink& hs, BlockStats& acc) {
    const int64_t EXPMASK = 0x7ff0000000000000LL, ABSMASK = 0x7fffffffffffffffLL;
    double K = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        int64_t u;
        __builtin_memcpy(&u, x + i, 8);
        if ((u & ABSMASK) < EXPMASK) { K = x[i]; break; }
    }
    const int64_t trash = hs.trash;
    const double lo = hs.lo, scale = hs.scale, nm1 = double(hs.nbins - 1);
    alignas(32) double pad[4];
    for (int64_t b = 0; b < n; b += SUB) {
        const int64_t m = (n - b < SUB) ? (n - b) : SUB;
        const double* p = x + b;
        const d4 vK = K - (d4){};
        l4 czero = {}, csat = {}, cnan = {}, cinf = {};
        d4 vmin = __builtin_inf() - (d4){}, vmax = -__builtin_inf() - (d4){};
        d4 s1 = {}, s2 = {};
        const int64_t full = m & ~int64_t(3);
        const int64_t nv = (m + 3) / 4;
        for (int64_t j = 0; j < nv; ++j) {
            d4 v;
            if (j * 4 < full) {
                v = loadu<d4>(p + j * 4);
            } else {
                for (int k = 0; k < 4; ++k) pad[k] = (full + k < m) ? p[full + k] : __builtin_nan("");
                v = loadu<d4>(pad);
            }
            const l4 bits = (l4)v;
            const l4 ab = bits & ABSMASK;
            const l4 fin = ab < EXPMASK;
            cnan -= (ab > EXPMASK);
            cinf -= (ab == EXPMASK);
            czero -= (ab == 0);
            csat -= ((d4)ab >= sat) & fin;
            const d4 vm = select(fin, v, vK);
            vmin = select(vm < vmin, vm, vmin);
            vmax = select(vm > vmax, vm, vmax);
            const d4 d = vm - K;
            s1 += d;
            s2 += d * d;
            l4 idx;
            if (MODE == kr::HIST_LOG2) {
                l4 mag = (ab >> 52) - (1023 + kr::LOG2_EMIN);
                const l4 tiny = mag < 0;
                mag = mag > (kr::N_MAG - 1) ? (l4){} + (kr::N_MAG - 1) : mag;
                idx = bits < 0 ? (kr::N_MAG - 1) - mag : (kr::N_MAG + 1) + mag;
                idx = tiny ? (l4){} + kr::N_MAG : idx;
            } else {
                d4 t = (v - lo) * scale;
                t = t < 0.0 ? 0.0 : t;
                t = t > nm1 ? nm1 : t;
                idx = __builtin_convertvector(t, l4);
            }
            idx = fin ? idx : (l4){} + trash;
            scatter4(hs, idx);
        }
        const int64_t padded = nv * 4 - m;
        const int64_t nnan = hsum(cnan) - padded, ninf = hsum(cinf);
        const int64_t nb = m - nnan - ninf;
        acc.nan += nnan; acc.inf += ninf; acc.zeros += hsum(czero); acc.sat += hsum(csat);
        if (nb > 0) {
            const double S1 = hsum(s1), S2 = hsum(s2);
            const double mean_b = K + S1 / double(nb);
            double m2_b = S2 - S1 * (S1 / double(nb));
            m2_b = m2_b > 0 ? m2_b : 0;
            double mn = vmin[0], mx = vmax[0];
            for (int k = 1; k < 4; ++k) { mn = vmin[k] < mn ? vmin[k] : mn; mx = vmax[k] > mx ? vmax[k] : mx; }
            if (mn < acc.mn) acc.mn = mn;
            if (mx > acc.mx) acc.mx = mx;
            chan_add(acc, nb, mean_b, m2_b);
            K = mean_b < mn ? mn : (mean_b > mx ? mx : mean_b);
        }
    }
}

// ---------------------------------------------------------------- sum of squares / scale
// Sums of squares read the block as STREAMS interleaved sub-ranges, one accumulator pair each:
// one core keeps more cache-line fills in flight over several sequential streams than over one,
// which is what bounds this memory-bound pass (ResNet-50's 94 MB of float32 gradients: 5.7 ms
// with one stream, 4.1-4.6 ms with four, on this project's 2-vCPU EPYC). Each float is widened
// before squaring (no float overflow for |x| > 1.8e19); the order of the additions is fixed by
// the block, so results do not depend on threads.
KR_INL d4 load_d4(const float* p) { return __builtin_convertvector(loadu<f4>(p), d4); }
KR_INL d4 load_d4(const double* p) { return loadu<d4>(p); }

template <class T>
inline double sumsq_impl(const T* x, int64_t n) {
    const int64_t q = (n / STREAMS) & ~int64_t(7);
    d4 a[STREAMS] = {}, b[STREAMS] = {};
    for (int64_t i = 0; i < q; i += 8) {
#pragma GCC unroll 4
        for (int k = 0; k < STREAMS; ++k) {
            const T* p = x + k * q + i;
            const d4 v = load_d4(p), w = load_d4(p + 4);
            a[k] += v * v;
            b[k] += w * w;
        }
    }
    double s = 0.0;
    for (int k = 0; k < STREAMS; ++k) s += hsum(a[k]) + hsum(b[k]);
    for (int64_t i = STREAMS * q; i < n; ++i) s += double(x[i]) * double(x[i]);
    return s;
}

inline void scale_f32_impl(float* x, int64_t n, float c) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        f8 v = loadu<f8>(x + i) * c;
        __builtin_memcpy(x + i, &v, sizeof(v));
    }
    for (; i < n; ++i) x[i] *= c;
}

inline void scale_f64_impl(double* x, int64_t n, double c) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        d4 v = loadu<d4>(x + i) * c;
        __builtin_memcpy(x + i, &v, sizeof(v));
    }
    for (; i < n; ++i) x[i] *= c;
}

inline void widen(const uint16_t* src, float* dst, int64_t n, int dtype) {
    if (dtype == kr::BF16) {
        for (int64_t i = 0; i < n; ++i) dst[i] = kr::u2f(uint32_t(src[i]) << 16);
    } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = kr::f16_to_f32(src[i]);
    }
}

}  // namespace

namespace KR_SIMD_NS {

void stats_block(const kr::TensorRef& t, int64_t begin, int64_t end, double sat, kr::HistSink& hs,
                 kr::BlockStats& acc) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    if (t.dtype == kr::F64) {
        const double* x = static_cast<const double*>(t.ptr) + begin;
        if (hs.mode == kr::HIST_LOG2) stats_f64_impl<kr::HIST_LOG2>(x, n, sat, hs, acc);
        else stats_f64_impl<kr::HIST_UNIFORM>(x, n, sat, hs, acc);
        return;
    }
    const float satf = kr::sat_threshold_f32(sat);
    if (t.dtype == kr::F32) {
        const float* x = static_cast<const float*>(t.ptr) + begin;
        if (hs.mode == kr::HIST_LOG2) stats_f32_impl<kr::HIST_LOG2>(x, n, satf, hs, acc);
        else stats_f32_impl<kr::HIST_UNIFORM>(x, n, satf, hs, acc);
        return;
    }
    // half types: widen a slab into float32 (exact), then the float32 loop
    alignas(32) float buf[4 * SUB];
    const uint16_t* src = static_cast<const uint16_t*>(t.ptr) + begin;
    for (int64_t b = 0; b < n; b += 4 * SUB) {
        const int64_t m = (n - b < 4 * SUB) ? (n - b) : 4 * SUB;
        widen(src + b, buf, m, t.dtype);
        if (hs.mode == kr::HIST_LOG2) stats_f32_impl<kr::HIST_LOG2>(buf, m, satf, hs, acc);
        else stats_f32_impl<kr::HIST_UNIFORM>(buf, m, satf, hs, acc);
    }
}

double sumsq_block(const kr::TensorRef& t, int64_t begin, int64_t end) {
    const int64_t n = end - begin;
    if (n <= 0) return 0.0;
    if (t.dtype == kr::F32) return sumsq_impl(static_cast<const float*>(t.ptr) + begin, n);
    if (t.dtype == kr::F64) return sumsq_impl(static_cast<const double*>(t.ptr) + begin, n);
    alignas(32) float buf[4 * SUB];
    const uint16_t* src = static_cast<const uint16_t*>(t.ptr) + begin;
    double s = 0.0;
    for (int64_t b = 0; b < n; b += 4 * SUB) {
        const int64_t m = (n - b < 4 * SUB) ? (n - b) : 4 * SUB;
        widen(src + b, buf, m, t.dtype);
        s += sumsq_impl(buf, m);
    }
    return s;
}

void scale_block(const kr::TensorRef& t, int64_t begin, int64_t end, double coef) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    void* base = const_cast<void*>(t.ptr);
    if (t.dtype == kr::F64) { scale_f64_impl(static_cast<double*>(base) + begin, n, coef); return; }
    const float c = float(coef);
    if (t.dtype == kr::F32) { scale_f32_impl(static_cast<float*>(base) + begin, n, c); return; }
    uint16_t* x = static_cast<uint16_t*>(base) + begin;
    if (t.dtype == kr::BF16) {
        for (int64_t i = 0; i < n; ++i) x[i] = kr::f32_to_bf16(kr::u2f(uint32_t(x[i]) << 16) * c);
    } else {
        for (int64_t i = 0; i < n; ++i) x[i] = kr::f32_to_f16(kr::f16_to_f32(x[i]) * c);
    }
}

}  // namespace KR_SIMD_NS
