// Global-norm clipping of many tensors in two launches on the caller's stream, no host sync:
//   1. norm_kernel: every block sums the squares (float64) of one tile of one tensor (found in
//      the device-side tensor table), writes its partial; the last block to finish adds the
//      partials in block order (deterministic), writes norm, non-finite flag and coefficient.
//   2. scale_kernel: reads the coefficient from device memory and scales (skips when it is 1).
#include <cmath>

#include "cuda/common.cuh"

namespace kr {
namespace gpu {

constexpr long long CLIP_TILE = 8192;

struct ClipHeader {
    unsigned int done;  // blocks finished (last-block detection)
    unsigned int pad;
    long long nblocks;
    double coef;
    double max_norm, eps;
};

__device__ __forceinline__ double block_sum(double v, double* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double r = 0.0;
    if (threadIdx.x == 0)
        for (int i = 0; i < WARPS; ++i) r += sh[i];
    __syncthreads();
    return r;  // valid in thread 0
}

// Sum of squares of x[b, e): 16-byte vector loads (two in flight per thread) when x + b is
// 16-byte aligned, scalar loads for the rest. Float64 accumulation.
template <class T>
__device__ __forceinline__ double sq(T v) { const double d = to_f(v); return d * d; }
__device__ __forceinline__ double sq(double v) { return v * v; }

template <class T>
__device__ __forceinline__ double sumsq_tile(const T* x, long long b, long long e) {
    constexpr int V = 16 / sizeof(T);
    double s0 = 0.0, s1 = 0.0;
    long long i = b;
    if ((reinterpret_cast<uintptr_t>(x + b) & 15u) == 0) {
        const uint4* xv = reinterpret_cast<const uint4*>(x + b);
        const long long nv = (e - b) / V;
        long long j = threadIdx.x;
        for (; j + THREADS < nv; j += 2 * THREADS) {
            const uint4 p = xv[j], q = xv[j + THREADS];
            const T* pt = reinterpret_cast<const T*>(&p);
            const T* qt = reinterpret_cast<const T*>(&q);
#pragma unroll
            for (int k = 0; k < V; ++k) { s0 += sq(pt[k]); s1 += sq(qt[k]); }
        }
        if (j < nv) {
            const uint4 p = xv[j];
            const T* pt = reinterpret_cast<const T*>(&p);
#pragma unroll
            for (int k = 0; k < V; ++k) s0 += sq(pt[k]);
        }
        i = b + nv * V;
    }
    for (i += threadIdx.x; i < e; i += THREADS) s0 += sq(x[i]);
    return s0 + s1;
}

__global__ void __launch_bounds__(THREADS) norm_kernel(ClipHeader* hdr, const DevTensor* tab, int ntab,
                                                       double* partial, float* out_norm, uint8_t* out_flag) {
    __shared__ double sh[WARPS];
    __shared__ bool last;
    const long long blk = blockIdx.x;
    double s = 0.0;
    if (blk < hdr->nblocks && ntab > 0) {
        const DevTensor t = tab[find_tensor(tab, ntab, blk)];
        const long long b = (blk - t.first_block) * CLIP_TILE;
        const long long e = (b + CLIP_TILE < t.numel) ? b + CLIP_TILE : t.numel;
        switch (t.dtype) {
            case F32: s = sumsq_tile(static_cast<const float*>(t.ptr), b, e); break;
            case F64: s = sumsq_tile(static_cast<const double*>(t.ptr), b, e); break;
            case F16: s = sumsq_tile(static_cast<const __half*>(t.ptr), b, e); break;
            default: s = sumsq_tile(static_cast<const __nv_bfloat16*>(t.ptr), b, e); break;
        }
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        partial[blk] = s;
        __threadfence();
        last = atomicAdd(&hdr->done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    double tot = 0.0;  // fixed order: thread-strided, then warp tree, then warps in order
    for (long long i = threadIdx.x; i < gridDim.x; i += THREADS) tot += ((volatile double*)partial)[i];
    tot = block_sum(tot, sh);
    if (threadIdx.x == 0) {
        const double norm = sqrt(tot);
        double coef = hdr->max_norm / (norm + hdr->eps);
        coef = (isnan(coef) || coef < 1.0) ? coef : 1.0;  // torch: clamp(max=1), NaN propagates
        hdr->coef = coef;
        *out_norm = float(norm);
        *out_flag = isfinite(norm) ? 0 : 1;
        hdr->done = 0;
    }
}

template <class T>
__device__ __forceinline__ T scaled(T v, double c) { return from_f<T>(to_f(v) * float(c)); }
__device__ __forceinline__ double scaled(double v, double c) { return v * c; }

// x[b, e) *= coef in place; 16-byte vector loads and stores where aligned.
template <class T>
__device__ __forceinline__ void scale_tile(T* x, long long b, long long e, double c) {
    constexpr int V = 16 / sizeof(T);
    long long i = b;
    if ((reinterpret_cast<uintptr_t>(x + b) & 15u) == 0) {
        uint4* xv = reinterpret_cast<uint4*>(x + b);
        const long long nv = (e - b) / V;
        for (long long j = threadIdx.x; j < nv; j += THREADS) {
            uint4 p = xv[j];
            T* pt = reinterpret_cast<T*>(&p);
#pragma unroll
            for (int k = 0; k < V; ++k) pt[k] = scaled(pt[k], c);
            xv[j] = p;
        }
        i = b + nv * V;
    }
    for (i += threadIdx.x; i < e; i += THREADS) x[i] = scaled(x[i], c);
}

__global__ void __launch_bounds__(THREADS) scale_kernel(const ClipHeader* hdr, const DevTensor* tab, int ntab) {
    const double coef = hdr->coef;
    // multiplying by exactly 1 changes no value: skip the writes (torch multiplies regardless)
    if (coef == 1.0 || ntab == 0 || (long long)blockIdx.x >= hdr->nblocks) return;
    const long long blk = blockIdx.x;
    const DevTensor t = tab[find_tensor(tab, ntab, blk)];
    const long long b = (blk - t.first_block) * CLIP_TILE;
    const long long e = (b + CLIP_TILE < t.numel) ? b + CLIP_TILE : t.numel;
    void* p = const_cast<void*>(t.ptr);
    switch (t.dtype) {
        case F32: scale_tile(static_cast<float*>(p), b, e, coef); break;
        case F64: scale_tile(static_cast<double*>(p), b, e, coef); break;
        case F16: scale_tile(static_cast<__half*>(p), b, e, coef); break;
        default: scale_tile(static_cast<__nv_bfloat16*>(p), b, e, coef); break;
    }
}

void clip_many(const std::vector<TensorRef>& ts, int device, uintptr_t stream_handle, double max_norm, double eps,
               float* out_norm, uint8_t* out_flag) {
    DeviceGuard guard(device);
    cudaStream_t s = reinterpret_cast<cudaStream_t>(stream_handle);
    std::vector<DevTensor> rows;
    const long long nblocks = plan_blocks(ts, CLIP_TILE, rows);
    const long long grid = nblocks > 0 ? nblocks : 1;
    if (grid > 0x7fffffffLL) throw std::runtime_error("kerasrecipe CUDA: too many blocks");
    const size_t off_tab = align16(sizeof(ClipHeader));
    const size_t off_part = off_tab + align16(rows.size() * sizeof(DevTensor));
    const size_t bytes = off_part + size_t(grid) * sizeof(double);
    std::vector<unsigned char> host(off_part, 0);
    ClipHeader h{0u, 0u, nblocks, 1.0, max_norm, eps};
    std::memcpy(host.data(), &h, sizeof(h));
    if (!rows.empty()) std::memcpy(host.data() + off_tab, rows.data(), rows.size() * sizeof(DevTensor));
    unsigned char* ws = static_cast<unsigned char*>(stream_alloc(bytes, s));
    // pageable source: staged by the driver before this returns, so `host` may go out of scope
    check(cudaMemcpyAsync(ws, host.data(), off_part, cudaMemcpyHostToDevice, s), "copy tensor table");
    auto* hdr = reinterpret_cast<ClipHeader*>(ws);
    auto* tab = reinterpret_cast<const DevTensor*>(ws + off_tab);
    norm_kernel<<<unsigned(grid), THREADS, 0, s>>>(hdr, tab, int(rows.size()), reinterpret_cast<double*>(ws + off_part),
                                                   out_norm, out_flag);
    check(cudaGetLastError(), "norm_kernel launch");
    scale_kernel<<<unsigned(grid), THREADS, 0, s>>>(hdr, tab, int(rows.size()));
    check(cudaGetLastError(), "scale_kernel launch");
    stream_free(ws, s);
}

}  // namespace gpu
}  // namespace kr
