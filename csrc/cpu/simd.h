#pragma once
#include "cpu/kernels.h"

namespace kr {
bool use_avx2();

inline void stats_block(const TensorRef& t, int64_t b, int64_t e, double sat, HistSink& hs, BlockStats& acc) {
    use_avx2() ? simd_avx2::stats_block(t, b, e, sat, hs, acc) : simd_base::stats_block(t, b, e, sat, hs, acc);
}
inline double sumsq_block(const TensorRef& t, int64_t b, int64_t e) {
    return use_avx2() ? simd_avx2::sumsq_block(t, b, e) : simd_base::sumsq_block(t, b, e);
}
inline void scale_block(const TensorRef& t, int64_t b, int64_t e, double coef) {
    use_avx2() ? simd_avx2::scale_block(t, b, e, coef) : simd_base::scale_block(t, b, e, coef);
}
}  // namespace kr
