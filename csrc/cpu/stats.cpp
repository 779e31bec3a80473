// activation statistics over many tensors: chunks spread over threads, per-chunk moments combined
// in chunk order (Chan), per-thread histograms flushed into the output under a lock.
#include <algorithm>
#include <cmath>
#include <mutex>

#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kr {

static constexpr int64_t STATS_CHUNK = int64_t(1) << 16;

void stats_many(const std::vector<TensorRef>& ts, double saturation, const HistParams& hp, int nthreads,
                double* dbl, int64_t* cnt, int64_t* hist) {
    const size_t n = ts.size();
    const int nb = hp.nbins;
    std::fill(hist, hist + n * size_t(nb), int64_t(0));
    const std::vector<Chunk> chunks = make_chunks(ts, STATS_CHUNK);
    std::vector<BlockStats> parts(chunks.size());
    int64_t total = 0;
    for (const auto& t : ts) total += t.numel;
    const int nt = resolve_threads(nthreads, total, chunks.size(), int64_t(1) << 15);
    std::atomic<size_t> next{0};
    std::mutex mu;
    auto worker = [&](int) {
        const size_t slots = size_t(nb) + 1;
        std::vector<int64_t> local(4 * slots, 0);
        std::vector<uint32_t> keys(8 * size_t(N_KEYS), 0);
        HistSink hs;
        for (int k = 0; k < 4; ++k) hs.h[k] = local.data() + k * slots;
        hs.keys = keys.data();
        int64_t since_flush = 0;  // values counted into the uint32 key copies since the last flush
        hs.mode = hp.mode; hs.lo = hp.lo; hs.scale = hp.scale; hs.nbins = nb; hs.trash = nb;
        int cur = -1;
        auto flush = [&]() {
            if (cur < 0) return;
            {
                std::lock_guard<std::mutex> lock(mu);
                int64_t* dst = hist + size_t(cur) * nb;
                for (int k = 0; k < nb; ++k) dst[k] += local[k] + local[slots + k] + local[2 * slots + k] + local[3 * slots + k];
                if (hp.mode == HIST_LOG2) {
                    for (int k = 0; k < N_KEYS; ++k) {
                        const int bin = key_to_bin(k);
                        if (bin < 0) continue;
                        int64_t sum = 0;
                        for (int c = 0; c < 8; ++c) sum += keys[size_t(c) * N_KEYS + k];
                        dst[bin] += sum;
                    }
                }
            }
            std::fill(local.begin(), local.end(), int64_t(0));
            std::fill(keys.begin(), keys.end(), uint32_t(0));
            since_flush = 0;
        };
        for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks.size();) {
            const Chunk& c = chunks[i];
            if (c.t != cur || since_flush > (int64_t(1) << 31)) { flush(); cur = c.t; }
            since_flush += c.e - c.b;
            BlockStats part;  // a local: the sub-blocks update it often, parts[] shares cache lines
            stats_block(ts[c.t], c.b, c.e, saturation, hs, part);
            parts[i] = part;
        }
        flush();
    };
    run_threads(nt, worker);

    std::vector<BlockStats> tot(n);
    for (size_t i = 0; i < chunks.size(); ++i) {
        const BlockStats& p = parts[i];
        BlockStats& a = tot[chunks[i].t];
        a.zeros += p.zeros; a.sat += p.sat; a.nan += p.nan; a.inf += p.inf;
        if (p.nfin == 0) continue;
        a.mn = std::min(a.mn, p.mn);
        a.mx = std::max(a.mx, p.mx);
        if (a.nfin == 0) { a.nfin = p.nfin; a.mean = p.mean; a.m2 = p.m2; continue; }
        const double nn = double(a.nfin) + double(p.nfin);
        const double delta = p.mean - a.mean;
        a.mean += delta * (double(p.nfin) / nn);
        a.m2 += p.m2 + delta * delta * (double(a.nfin) * double(p.nfin) / nn);
        a.nfin += p.nfin;
    }
    for (size_t t = 0; t < n; ++t) {
        const BlockStats& a = tot[t];
        double* d = dbl + t * N_DBL;
        int64_t* c = cnt + t * N_CNT;
        const double nanv = std::nan("");
        d[0] = a.nfin ? a.mean : nanv;
        d[1] = a.nfin ? a.m2 / double(a.nfin) : nanv;
        d[2] = a.nfin ? a.mn : nanv;
        d[3] = a.nfin ? a.mx : nanv;
        c[0] = ts[t].numel; c[1] = a.nfin; c[2] = a.zeros; c[3] = a.sat; c[4] = a.nan; c[5] = a.inf;
    }
}

}  // namespace kr
