// Global-norm clipping over many tensors: a threaded float64 sum of squares (per-chunk partial
// sums added in chunk order: deterministic), then one threaded scaling pass.
#include <cmath>

#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kr {

static constexpr int64_t CLIP_CHUNK = int64_t(1) << 16;

double sumsq_many(const std::vector<TensorRef>& ts, int nthreads) {
    const std::vector<Chunk> chunks = make_chunks(ts, CLIP_CHUNK);
    std::vector<double> parts(chunks.size(), 0.0);
    int64_t total = 0;
    for (const auto& t : ts) total += t.numel;
    std::atomic<size_t> next{0};
    run_threads(resolve_threads(nthreads, total, chunks.size(), int64_t(1) << 16), [&](int) {
        for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks.size();)
            parts[i] = sumsq_block(ts[chunks[i].t], chunks[i].b, chunks[i].e);
    });
    double s = 0.0;
    for (double p : parts) s += p;
    return s;
}

void scale_many(const std::vector<TensorRef>& ts, double coef, int nthreads) {
    const std::vector<Chunk> chunks = make_chunks(ts, CLIP_CHUNK);
    int64_t total = 0;
    for (const auto& t : ts) total += t.numel;
    std::atomic<size_t> next{0};
    run_threads(resolve_threads(nthreads, total, chunks.size(), int64_t(1) << 16), [&](int) {
        for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks.size();)
            scale_block(ts[chunks[i].t], chunks[i].b, chunks[i].e, coef);
    });
}

double clip_coefficient(double norm, double max_norm, double eps) {
    const double coef = max_norm / (norm + eps);
    return (std::isnan(coef) || coef < 1.0) ? coef : 1.0;
}

double clip_many(const std::vector<TensorRef>& ts, double max_norm, double eps, int nthreads) {
    const double norm = std::sqrt(sumsq_many(ts, nthreads));
    const double coef = clip_coefficient(norm, max_norm, eps);
    // Multiplying by exactly 1 changes no value (half types round back to themselves), so the
    // pass is skipped then: same result as torch's unconditional multiply, one pass less.
    if (coef != 1.0) scale_many(ts, coef, nthreads);
    return norm;
}

}  // namespace kr
