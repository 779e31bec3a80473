// CPU kernels: per-block entry points (compiled per ISA) and the threaded drivers.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"

namespace kr {

// Partial statistics of one block of one tensor (finite values only in the moments).
struct BlockStats {
    int64_t nfin = 0, zeros = 0, sat = 0, nan = 0, inf = 0;
    double mean = 0.0, m2 = 0.0;
    double mn = INFINITY, mx = -INFINITY;
};

// Where a thread counts its histogram: 4 interleaved copies (breaks the store->load chain when
// many values fall in one bin), each with nbins + 1 slots (the last one takes non-finite values).
struct HistSink {
    int64_t* h[4];
    uint32_t* keys;  // float32 log2 mode: counts of the 512 sign+exponent keys (see key_to_bin),
                     // 8 tables of N_KEYS one after another, one per lane; flushed at least
                     // every 2^31 values
    int mode;
    double lo, scale;
    int nbins;
    int trash;
};

constexpr int N_KEYS = 512;  // float32 sign bit + 8 exponent bits

// Log2-mode bin of a float32 sign+exponent key; -1 for Inf/NaN (exponent 255).
inline int key_to_bin(int key) {
    const int e = key & 255, neg = key >> 8;
    if (e == 255) return -1;
    int mag = e - (127 + LOG2_EMIN);
    if (mag < 0) return N_MAG;
    if (mag > N_MAG - 1) mag = N_MAG - 1;
    return neg ? (N_MAG - 1) - mag : (N_MAG + 1) + mag;
}

// Smallest float32 >= s, so that (float)|x| >= it  <=>  |x| >= s exactly.
inline float sat_threshold_f32(double s) {
    float f = static_cast<float>(s);
    if (static_cast<double>(f) < s) f = std::nextafter(f, INFINITY);
    return f;
}

#define KR_DECLARE_BLOCK_KERNELS(NS)                                                              \
    namespace NS {                                                                                \
    void stats_block(const TensorRef& t, int64_t begin, int64_t end, double sat, HistSink& hs,     \
                     BlockStats& acc);                                                            \
    double sumsq_block(const TensorRef& t, int64_t begin, int64_t end);                           \
    void scale_block(const TensorRef& t, int64_t begin, int64_t end, double coef);                \
    }
KR_DECLARE_BLOCK_KERNELS(simd_base)
KR_DECLARE_BLOCK_KERNELS(simd_avx2)

// ---- threaded drivers (stats.cpp, clip.cpp) ----
int hardware_threads();
const char* simd_level();  // "avx2" or "base"
const char* cpu_thread_pool();  // "openmp" (a loaded libgomp, shared) or "std::thread"

// dbl: n x N_DBL, cnt: n x N_CNT, hist: n x nbins (row-major, written completely).
void stats_many(const std::vector<TensorRef>& ts, double saturation, const HistParams& hp, int nthreads,
                double* dbl, int64_t* cnt, int64_t* hist);

double sumsq_many(const std::vector<TensorRef>& ts, int nthreads);
void scale_many(const std::vector<TensorRef>& ts, double coef, int nthreads);
// norm before clipping; scales every tensor by min(max_norm / (norm + eps), 1) (NaN propagates)
double clip_many(const std::vector<TensorRef>& ts, double max_norm, double eps, int nthreads);
double clip_coefficient(double norm, double max_norm, double eps);

}  // namespace kr
