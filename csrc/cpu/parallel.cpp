// Finding a libgomp that is already loaded (see parallel.h for why the kernels share it).
#include "cpu/parallel.h"

#include <dlfcn.h>
#include <unistd.h>

#include <mutex>

namespace kr {

const GompApi* loaded_gomp() {
    static std::mutex mu;
    static GompApi api{};
    static std::atomic<int> state{0};  // 0: not found yet, 1: found, -1: off for good
    static pid_t owner = 0;
    int s = state.load(std::memory_order_acquire);
    if (s == 0) {
        std::lock_guard<std::mutex> lock(mu);
        s = state.load(std::memory_order_relaxed);
        if (s == 0) {
            const char* env = std::getenv("KERASRECIPE_OPENMP");
            if (env && std::strcmp(env, "0") == 0) {
                s = -1;
            } else if (void* h = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
                api.parallel = reinterpret_cast<decltype(api.parallel)>(dlsym(h, "GOMP_parallel"));
                api.thread_num = reinterpret_cast<int (*)()>(dlsym(h, "omp_get_thread_num"));
                api.max_threads = reinterpret_cast<int (*)()>(dlsym(h, "omp_get_max_threads"));
                s = (api.parallel && api.thread_num && api.max_threads) ? 1 : -1;
                owner = getpid();
            }
            // not loaded (yet): s stays 0 and the next call looks again (torch may be imported later)
            state.store(s, std::memory_order_release);
        }
    }
    if (s != 1 || getpid() != owner) return nullptr;
    return &api;
}

const char* cpu_thread_pool() { return loaded_gomp() ? "openmp" : "std::thread"; }

}  // namespace kr
