// Fused bias + activation + gain + clamp: launcher of the CUDA kernel in bias_act.cu.
#pragma once
#include "ops_common.h"

// Activation ids (must match ACTIVATIONS[...].index in bias_act.py).
enum BiasActKind {
    BA_LINEAR = 0, BA_RELU = 1, BA_LRELU = 2, BA_TANH = 3, BA_SIGMOID = 4,
    BA_ELU = 5, BA_SELU = 6, BA_SOFTPLUS = 7, BA_SWISH = 8, BA_COUNT = 9
};

struct BiasActParams {
    void* out;              // [n] result
    const void* x;          // [n] input (contiguous)
    const void* b;          // [bsize] bias or nullptr
    const void* g;          // [n] incoming gradient (order >= 1) or nullptr
    long long n;            // number of elements
    long long inner;        // product of the sizes after the bias dimension
    long long bsize;        // size of the bias dimension
    int act;                // BiasActKind
    int order;              // 0: clamp(act(x+b)*gain); 1/2: g * d^order/dv^order [act(v)*gain] * clamp mask
    double alpha, gain, clamp;  // clamp < 0: no clamping
    int dtype;              // OpsDtype
};

// Launches on `stream` (a cudaStream_t); returns a cudaError_t value (0 = success).
int bias_act_launch(const BiasActParams& p, void* stream);
