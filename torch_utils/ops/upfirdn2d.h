// Up-sample, FIR-filter, down-sample: launcher of the CUDA kernel in upfirdn2d.cu.
#pragma once
#include "ops_common.h"

struct UpFirDn2dParams {
    void* out;             // [planes, out_h, out_w] (contiguous NCHW, planes = N * C)
    const void* x;         // [planes, in_h, in_w]
    const void* f;         // [fh, fw] filter in the accumulation type (double for double, else float)
    long long planes;
    int in_h, in_w, out_h, out_w;
    int fh, fw;
    int up_x, up_y, down_x, down_y;
    int pad_x0, pad_y0;    // leading padding (negative = crop); the trailing one is implied by out_h/out_w
    int flip_filter;       // 0: true convolution with f, 1: correlation
    int dtype;             // OpsDtype
};

// Launches on `stream` (a cudaStream_t); returns a cudaError_t value (0 = success).
int upfirdn2d_launch(const UpFirDn2dParams& p, void* stream);
