// Device discovery and scratch memory. Nothing here may fail at import: the runtime is linked
// statically and every error becomes device_count() == 0 with a reason.
#include <mutex>
#include <set>
#include <vector>

#include "cuda/common.cuh"

namespace kr {
namespace gpu {

static std::mutex g_mu;
static int g_count = -1;
static std::string g_reason;

int device_count() {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_count >= 0) return g_count;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        g_reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
        n = 0;
    } else if (n == 0) {
        g_reason = "no CUDA device";
    }
    g_count = n;
    return n;
}

std::string unavailable_reason() {
    device_count();
    std::lock_guard<std::mutex> lock(g_mu);
    return g_count > 0 ? std::string() : g_reason;
}

int sm_count(int device) {
    static std::mutex mu;
    static std::vector<int> counts;
    std::lock_guard<std::mutex> lock(mu);
    if (device < 0) return 1;
    if (size_t(device) >= counts.size()) counts.resize(size_t(device) + 1, 0);
    if (counts[device] == 0) {
        int n = 0;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) {
            cudaGetLastError();
            n = 100;
        }
        counts[device] = n;
    }
    return counts[device];
}

void* stream_alloc(size_t bytes, cudaStream_t s) {
    static std::mutex mu;
    static std::set<int> tuned;
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    {
        std::lock_guard<std::mutex> lock(mu);
        if (!tuned.count(dev)) {  // keep freed blocks cached in the pool instead of returning them
            cudaMemPool_t pool;
            if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
                uint64_t threshold = UINT64_MAX;
                cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
            }
            cudaGetLastError();
            tuned.insert(dev);
        }
    }
    void* p = nullptr;
    check(cudaMallocAsync(&p, bytes ? bytes : 16, s), "cudaMallocAsync");
    return p;
}

void stream_free(void* p, cudaStream_t s) {
    if (p) cudaFreeAsync(p, s);
}

}  // namespace gpu
}  // namespace kr
