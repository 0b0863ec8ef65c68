// CUDA kernel for upfirdn2d (see upfirdn2d.py for the definition of the op).
//
// One thread per output sample. Output sample o (per axis) reads the zero-inserted, padded
// signal at positions j = o * down - pad0 + t for the taps t = 0 .. taps-1; only positions
// that are multiples of `up` hold input samples (input index j / up), so the loop starts at
// the first such tap and steps by `up` (a polyphase filter: no work on inserted zeros).
// Tap t is weighted by f[taps-1-t] (true convolution) or f[t] (flip_filter: correlation).
#include <cuda_runtime.h>
#include "upfirdn2d.h"

// First tap t >= 0 for which j0 + t is a non-negative multiple of up.
__device__ __forceinline__ int ufd_first_tap(int j0, int up) {
    if (j0 < 0) return -j0;
    int r = j0 % up;
    return r == 0 ? 0 : up - r;
}

template <typename T>
__global__ void upfirdn2d_kernel(T* __restrict__ out, const T* __restrict__ x,
                                 const typename OpsTraits<T>::acc* __restrict__ f, UpFirDn2dParams p) {
    typedef typename OpsTraits<T>::acc A;
    const long long plane_out = (long long)p.out_h * p.out_w;
    const long long plane_in = (long long)p.in_h * p.in_w;
    const long long n = p.planes * plane_out;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const long long plane = i / plane_out;
        const int rem = (int)(i - plane * plane_out);
        const int oy = rem / p.out_w;
        const int ox = rem - oy * p.out_w;
        const T* xp = x + plane * plane_in;
        const int jy0 = oy * p.down_y - p.pad_y0;
        const int jx0 = ox * p.down_x - p.pad_x0;
        const int ty0 = ufd_first_tap(jy0, p.up_y);
        const int tx0 = ufd_first_tap(jx0, p.up_x);
        A acc = A(0);
        for (int ty = ty0; ty < p.fh; ty += p.up_y) {
            const int iy = (jy0 + ty) / p.up_y;
            if (iy >= p.in_h) break;
            const int fy = p.flip_filter ? ty : p.fh - 1 - ty;
            for (int tx = tx0; tx < p.fw; tx += p.up_x) {
                const int ix = (jx0 + tx) / p.up_x;
                if (ix >= p.in_w) break;
                const int fx = p.flip_filter ? tx : p.fw - 1 - tx;
                acc += OpsTraits<T>::load(xp + (long long)iy * p.in_w + ix) * f[fy * p.fw + fx];
            }
        }
        out[i] = OpsTraits<T>::store(acc);
    }
}

template <typename T>
static int launch_typed(const UpFirDn2dParams& p, cudaStream_t stream) {
    typedef typename OpsTraits<T>::acc A;
    const long long n = p.planes * (long long)p.out_h * p.out_w;
    if (n == 0) return 0;
    const int threads = 256;
    upfirdn2d_kernel<T><<<ops_num_blocks(n, threads), threads, 0, stream>>>((T*)p.out, (const T*)p.x, (const A*)p.f, p);
    return (int)cudaGetLastError();
}

int upfirdn2d_launch(const UpFirDn2dParams& p, void* stream) {
    cudaStream_t s = (cudaStream_t)stream;
    switch (p.dtype) {
        case OPS_HALF: return launch_typed<__half>(p, s);
        case OPS_FLOAT: return launch_typed<float>(p, s);
        case OPS_DOUBLE: return launch_typed<double>(p, s);
        default: return (int)cudaErrorInvalidValue;
    }
}
