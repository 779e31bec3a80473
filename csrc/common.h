// Shared by the CPU and CUDA kernels: dtype codes, tensor references, half conversions.
// No framework headers: tensors arrive as raw pointers + element counts + dtype codes.
#pragma once
#include <cstdint>
#include <cstring>

namespace kr {

// Must match kerasrecipe/kernels/_dispatch.py FLOAT_DTYPES.
enum DType : int { F32 = 0, F64 = 1, F16 = 2, BF16 = 3 };

// Histogram layout (kerasrecipe/kernels/_hist.py).
constexpr int LOG2_EMIN = -20;
constexpr int LOG2_EMAX = 12;
constexpr int N_MAG = LOG2_EMAX - LOG2_EMIN;  // 32 magnitude bins per sign
constexpr int N_LOG_BINS = 2 * N_MAG + 1;     // 65
enum HistMode : int { HIST_LOG2 = 0, HIST_UNIFORM = 1 };

struct TensorRef {
    const void* ptr;
    int64_t numel;
    int dtype;
};

struct HistParams {
    int mode;      // HistMode
    double lo;     // uniform: lower edge
    double scale;  // uniform: n / (hi - lo)
    int nbins;     // number of bins (65 in log2 mode)
};

// Per-tensor result rows (the layout of the arrays handed back to Python).
constexpr int N_DBL = 4;  // mean, var, min, max
constexpr int N_CNT = 6;  // count, finite, zeros, saturated, nan, inf

inline int dtype_size(int dt) { return dt == F64 ? 8 : (dt == F32 ? 4 : 2); }

// ---- scalar conversions (exact for widening; round-to-nearest-even for narrowing) ----
inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_f32(uint16_t h) { return u2f(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}

// F. Giesen's half <-> float conversions (public domain), RNE.
inline float f16_to_f32(uint16_t h) {
    const uint32_t shifted_exp = 0x7c00u << 13;
    uint32_t o = (uint32_t(h) & 0x7fffu) << 13;
    uint32_t exp = shifted_exp & o;
    o += uint32_t(127 - 15) << 23;
    if (exp == shifted_exp) {
        o += uint32_t(128 - 16) << 23;  // Inf/NaN
    } else if (exp == 0) {
        o += 1u << 23;  // zero/subnormal: renormalise
        o = f2u(u2f(o) - u2f(113u << 23));
    }
    o |= (uint32_t(h) & 0x8000u) << 16;
    return u2f(o);
}

inline uint16_t f32_to_f16(float f) {
    const uint32_t f32infty = 255u << 23;
    const uint32_t f16max = (127u + 16u) << 23;
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t fu = f2u(f);
    uint32_t sign = fu & 0x80000000u;
    fu ^= sign;
    uint16_t o;
    if (fu >= f16max) {
        o = (fu > f32infty) ? 0x7e00 : 0x7c00;
    } else if (fu < (113u << 23)) {
        float t = u2f(fu) + u2f(denorm_magic);
        o = uint16_t(f2u(t) - denorm_magic);
    } else {
        uint32_t mant_odd = (fu >> 13) & 1u;
        fu += (uint32_t(15 - 127) << 23) + 0xfffu;
        fu += mant_odd;
        o = uint16_t(fu >> 13);
    }
    return uint16_t(o | (sign >> 16));
}

}  // namespace kr
