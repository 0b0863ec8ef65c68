// Shared definitions of the project's CUDA kernels (plain CUDA, no torch headers, so the
// .cu files compile quickly). The torch-facing code is in ops.cpp.
#pragma once

// Element types understood by the launchers.
enum OpsDtype { OPS_HALF = 0, OPS_FLOAT = 1, OPS_DOUBLE = 2 };

#ifdef __CUDACC__
#include <cuda_fp16.h>

// Loads and stores in the accumulation type (float for half/float, double for double).
template <typename T> struct OpsTraits;
template <> struct OpsTraits<float> {
    typedef float acc;
    static __device__ __forceinline__ float load(const float* p) { return __ldg(p); }
    static __device__ __forceinline__ float store(float v) { return v; }
};
template <> struct OpsTraits<double> {
    typedef double acc;
    static __device__ __forceinline__ double load(const double* p) { return __ldg(p); }
    static __device__ __forceinline__ double store(double v) { return v; }
};
template <> struct OpsTraits<__half> {
    typedef float acc;
    static __device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
    static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};

static inline int ops_num_blocks(long long n, int threads) {
    long long blocks = (n + threads - 1) / threads;
    const long long cap = 65535LL * 8;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    return (int)blocks;
}
#endif
