// Host-side API of the CUDA kernels (plain C++: bindings.cpp includes it without CUDA headers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace kr {
namespace gpu {

// Number of usable devices; 0 (never an exception) without driver, device or a working runtime.
int device_count();
// Why device_count() is 0 (empty when it is not).
std::string unavailable_reason();

// Statistics of every tensor (all on `device`) in one kernel launch on `stream`; results are
// copied to the host arrays (dbl: n x N_DBL, cnt: n x N_CNT, hist: n x nbins), which
// synchronises the stream.
void stats_many(const std::vector<TensorRef>& ts, int device, uintptr_t stream, double saturation,
                const HistParams& hp, double* dbl, int64_t* cnt, int64_t* hist);

// Global-norm clipping on `stream` in two launches, no host synchronisation: writes the norm
// (float32) and the non-finite flag (1 byte) to the device pointers, scales in place.
void clip_many(const std::vector<TensorRef>& ts, int device, uintptr_t stream, double max_norm, double eps,
               float* out_norm, uint8_t* out_flag);

}  // namespace gpu
}  // namespace kr
