// Minimal thread fan-out: the caller's thread plus (n - 1) workers pull chunk indices from an
// atomic counter. Results are stored per chunk and combined in chunk order by the caller, so they
// do not depend on the number of threads or on scheduling.
//
// The workers are libgomp's thread team when the process has already loaded libgomp.so.1 (torch's
// CPU build, whose intra-op pool is OpenMP), else std::threads made for the call. Sharing torch's
// team is not about saving thread creation: after each parallel op torch's OpenMP workers spin-wait
// for the next one (milliseconds on a small VM), so std::threads started right after a torch op
// find every core taken and the work runs at one thread's speed; a parallel region of the same
// runtime is picked up by those spinning workers at once. Nothing links libgomp (the module
// stays framework-free): it is found with dlopen(RTLD_NOLOAD), i.e. only if someone loaded it,
// and is never used in a forked child of the process that found it. KERASRECIPE_OPENMP=0 turns
// this off.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include "common.h"

namespace kr {

struct Chunk {
    int t;          // tensor index
    int64_t b, e;   // element range [b, e)
};

inline std::vector<Chunk> make_chunks(const std::vector<TensorRef>& ts, int64_t chunk) {
    std::vector<Chunk> out;
    for (size_t t = 0; t < ts.size(); ++t)
        for (int64_t b = 0; b < ts[t].numel; b += chunk)
            out.push_back({int(t), b, (ts[t].numel - b < chunk) ? ts[t].numel : b + chunk});
    return out;
}

// libgomp's entry points, when a libgomp.so.1 is loaded in this process (and this is not a
// forked child of the process that found it); nullptr otherwise. parallel.cpp.
struct GompApi {
    void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
    int (*thread_num)();
    int (*max_threads)();
};
const GompApi* loaded_gomp();

// Threads when the caller asks for "all" (0): OpenMP's current team size where libgomp is shared
// (so torch.set_num_threads applies to these kernels too), else every core.
inline int default_threads() {
    if (const GompApi* g = loaded_gomp()) {
        const int n = g->max_threads();
        return n > 0 ? n : 1;
    }
    unsigned hw = std::thread::hardware_concurrency();
    return int(hw ? hw : 1);
}

inline int resolve_threads(int requested, int64_t total_elems, size_t nchunks, int64_t min_per_thread) {
    int n = requested > 0 ? requested : default_threads();
    int64_t by_work = total_elems / min_per_thread;
    if (by_work < n) n = int(by_work > 1 ? by_work : 1);
    if (size_t(n) > nchunks) n = int(nchunks ? nchunks : 1);
    return n < 1 ? 1 : n;
}

// worker(thread_index) runs on nthreads threads (the caller's included); if a thread cannot be
// created the caller's own worker picks up the remaining chunks.
template <class F>
void run_threads(int nthreads, F&& worker) {
    if (nthreads > 1) {
        if (const GompApi* g = loaded_gomp()) {
            struct Ctx {
                std::remove_reference_t<F>* worker;
                const GompApi* g;
            } ctx{&worker, g};
            g->parallel([](void* p) {
                Ctx* c = static_cast<Ctx*>(p);
                (*c->worker)(c->g->thread_num());
            }, &ctx, unsigned(nthreads), 0u);
            return;
        }
    }
    std::vector<std::thread> pool;
    for (int i = 1; i < nthreads; ++i) {
        try {
            pool.emplace_back(worker, i);
        } catch (...) {
            break;
        }
    }
    worker(0);
    for (auto& th : pool) th.join();
}

}  // namespace kr
