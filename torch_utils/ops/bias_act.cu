// CUDA kernel for bias_act (see bias_act.py for the definition of the op).
#include <cuda_runtime.h>
#include "bias_act.h"

template <typename A>
__device__ __forceinline__ A ba_sigmoid(A v) { return A(1) / (A(1) + exp(-v)); }

// act(v)
template <typename A>
__device__ __forceinline__ A ba_value(int act, A v, A alpha) {
    const A selu_scale = A(1.0507009873554804934193349852946);
    const A selu_alpha = A(1.6732632423543772848170429916717);
    switch (act) {
        case BA_RELU: return v > A(0) ? v : A(0);
        case BA_LRELU: return v > A(0) ? v : v * alpha;
        case BA_TANH: return tanh(v);
        case BA_SIGMOID: return ba_sigmoid(v);
        case BA_ELU: return v > A(0) ? v : alpha * (exp(v) - A(1));
        case BA_SELU: return selu_scale * (v > A(0) ? v : selu_alpha * (exp(v) - A(1)));
        case BA_SOFTPLUS: return v > A(20) ? v : log1p(exp(v));
        case BA_SWISH: return v * ba_sigmoid(v);
        default: return v;
    }
}

// d act / dv (order 1) or d2 act / dv2 (order 2)
template <typename A>
__device__ __forceinline__ A ba_deriv(int act, A v, A alpha, int order) {
    const A selu_scale = A(1.0507009873554804934193349852946);
    const A selu_alpha = A(1.6732632423543772848170429916717);
    if (order == 1) {
        switch (act) {
            case BA_RELU: return v > A(0) ? A(1) : A(0);
            case BA_LRELU: return v > A(0) ? A(1) : alpha;
            case BA_TANH: { A t = tanh(v); return A(1) - t * t; }
            case BA_SIGMOID: { A s = ba_sigmoid(v); return s * (A(1) - s); }
            case BA_ELU: return v > A(0) ? A(1) : alpha * exp(v);
            case BA_SELU: return selu_scale * (v > A(0) ? A(1) : selu_alpha * exp(v));
            case BA_SOFTPLUS: return v > A(20) ? A(1) : ba_sigmoid(v);
            case BA_SWISH: { A s = ba_sigmoid(v); return s * (A(1) + v * (A(1) - s)); }
            default: return A(1);
        }
    }
    switch (act) {
        case BA_TANH: { A t = tanh(v); return A(-2) * t * (A(1) - t * t); }
        case BA_SIGMOID: { A s = ba_sigmoid(v); return s * (A(1) - s) * (A(1) - A(2) * s); }
        case BA_ELU: return v > A(0) ? A(0) : alpha * exp(v);
        case BA_SELU: return v > A(0) ? A(0) : selu_scale * selu_alpha * exp(v);
        case BA_SOFTPLUS: { if (v > A(20)) return A(0); A s = ba_sigmoid(v); return s * (A(1) - s); }
        case BA_SWISH: { A s = ba_sigmoid(v); return s * (A(1) - s) * (A(2) + v * (A(1) - A(2) * s)); }
        default: return A(0);  // linear, relu, lrelu
    }
}

template <typename T>
__global__ void bias_act_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ b,
                                const T* __restrict__ g, long long n, long long inner, long long bsize,
                                int act, int order, typename OpsTraits<T>::acc alpha,
                                typename OpsTraits<T>::acc gain, typename OpsTraits<T>::acc clamp) {
    typedef typename OpsTraits<T>::acc A;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        A v = OpsTraits<T>::load(x + i);
        if (b != nullptr) v += OpsTraits<T>::load(b + (i / inner) % bsize);
        A u = ba_value(act, v, alpha) * gain;
        if (order == 0) {
            if (clamp >= A(0)) u = u > clamp ? clamp : (u < -clamp ? -clamp : u);
            out[i] = OpsTraits<T>::store(u);
        } else {
            A r = A(0);
            if (clamp < A(0) || (u >= -clamp && u <= clamp))
                r = OpsTraits<T>::load(g + i) * ba_deriv(act, v, alpha, order) * gain;
            out[i] = OpsTraits<T>::store(r);
        }
    }
}

template <typename T>
static int launch_typed(const BiasActParams& p, cudaStream_t stream) {
    typedef typename OpsTraits<T>::acc A;
    if (p.n == 0) return 0;
    const int threads = 256;
    bias_act_kernel<T><<<ops_num_blocks(p.n, threads), threads, 0, stream>>>(
        (T*)p.out, (const T*)p.x, (const T*)p.b, (const T*)p.g, p.n, p.inner > 0 ? p.inner : 1,
        p.bsize > 0 ? p.bsize : 1, p.act, p.order, (A)p.alpha, (A)p.gain, (A)p.clamp);
    return (int)cudaGetLastError();
}

int bias_act_launch(const BiasActParams& p, void* stream) {
    cudaStream_t s = (cudaStream_t)stream;
    switch (p.dtype) {
        case OPS_HALF: return launch_typed<__half>(p, s);
        case OPS_FLOAT: return launch_typed<float>(p, s);
        case OPS_DOUBLE: return launch_typed<double>(p, s);
        default: return (int)cudaErrorInvalidValue;
    }
}
