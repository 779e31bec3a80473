// Minimal thread fan-out: the caller's thread plus (n - 1) std::threads pull chunk indices from
// an atomic counter. Results are stored per chunk and combined in chunk order by the caller, so
// they do not depend on the number of threads or on scheduling.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
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

inline int resolve_threads(int requested, int64_t total_elems, size_t nchunks, int64_t min_per_thread) {
    unsigned hw = std::thread::hardware_concurrency();
    int n = requested > 0 ? requested : int(hw ? hw : 1);
    int64_t by_work = total_elems / min_per_thread;
    if (by_work < n) n = int(by_work > 1 ? by_work : 1);
    if (size_t(n) > nchunks) n = int(nchunks ? nchunks : 1);
    return n < 1 ? 1 : n;
}

// worker(thread_index) runs on nthreads threads (the caller's included); if a thread cannot be
// created the caller's own worker picks up the remaining chunks.
template <class F>
void run_threads(int nthreads, F&& worker) {
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
