// Run-time choice of the block kernels (AVX2 where the CPU has it; KERASRECIPE_SIMD=base forces
// the baseline copy, which the tests use to check both).
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cpu/kernels.h"
#include "cpu/simd.h"

namespace kr {

static bool detect_avx2() {
    const char* env = std::getenv("KERASRECIPE_SIMD");
    if (env && std::strcmp(env, "base") == 0) return false;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

bool use_avx2() {
    static const bool v = detect_avx2();
    return v;
}

const char* simd_level() { return use_avx2() ? "avx2" : "base"; }

int hardware_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n ? int(n) : 1;
}

}  // namespace kr
