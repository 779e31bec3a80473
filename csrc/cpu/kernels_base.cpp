// Block kernels for the baseline ISA of the build (SSE2 on x86-64).
#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#define KR_SIMD_NS kr::simd_base
#include "cpu/simd_kernels.h"
