// Device helpers shared by the CUDA kernels (each .cu includes this; no relocatable device code).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "cuda/api.h"

namespace kr {
namespace gpu {

// One row of the device-side tensor table. Blocks [first_block, first_block + nblocks) work on
// the tensor; a block finds its row by binary search over first_block.
struct DevTensor {
    const void* ptr;
    long long numel;
    long long first_block;
    int dtype;
    int nblocks;
};

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear a sticky-free error so later calls can go on
        throw std::runtime_error(std::string("kerasrecipe CUDA: ") + what + ": " + cudaGetErrorString(e));
    }
}

inline size_t align16(size_t n) { return (n + 15) & ~size_t(15); }

// Makes `device` current for the lifetime of the guard, restoring the caller's device after.
struct DeviceGuard {
    int prev = -1;
    explicit DeviceGuard(int device) {
        check(cudaGetDevice(&prev), "cudaGetDevice");
        if (prev != device) check(cudaSetDevice(device), "cudaSetDevice");
    }
    ~DeviceGuard() {
        int cur = -1;
        if (cudaGetDevice(&cur) == cudaSuccess && cur != prev && prev >= 0) cudaSetDevice(prev);
    }
};

// Multiprocessors of `device` (cached; 132 on an H100 SXM).
int sm_count(int device);

// Stream-ordered scratch memory (cudaMallocAsync pool; kept cached by the pool, see runtime.cu).
void* stream_alloc(size_t bytes, cudaStream_t s);
void stream_free(void* p, cudaStream_t s);

// Fills table rows (first_block, nblocks) for a tile size; returns the total number of blocks.
inline long long plan_blocks(const std::vector<TensorRef>& ts, long long tile, std::vector<DevTensor>& rows) {
    long long total = 0;
    rows.resize(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
        const long long nb = (ts[i].numel + tile - 1) / tile;
        rows[i] = DevTensor{ts[i].ptr, (long long)ts[i].numel, total, ts[i].dtype, int(nb)};
        total += nb;
    }
    return total;
}

__device__ __forceinline__ int find_tensor(const DevTensor* tab, int n, long long block) {
    int lo = 0, hi = n - 1;  // last row with first_block <= block (rows with 0 blocks are skipped)
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (tab[mid].first_block <= block) lo = mid; else hi = mid - 1;
    }
    while (lo < n - 1 && tab[lo].nblocks == 0) ++lo;
    return lo;
}

template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace gpu
}  // namespace kr
