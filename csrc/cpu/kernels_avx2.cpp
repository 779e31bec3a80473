// Block kernels compiled for AVX2 (selected at run time only on CPUs that have it; the build
// itself stays portable: no -march=native). On other architectures this is the base copy.
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <vector>
#include "common.h"
#include "cpu/kernels.h"
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma")
#define KR_AVX2_COPY 1
#endif
#define KR_SIMD_NS kr::simd_avx2
#include "cpu/simd_kernels.h"
