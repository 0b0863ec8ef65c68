// Python bindings of the project's CUDA ops: argument checks, output allocation, launch on
// torch's current stream. The kernels are in bias_act.cu and upfirdn2d.cu.
#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

#include "bias_act.h"
#include "upfirdn2d.h"

static int ops_dtype(const torch::Tensor& t) {
    switch (t.scalar_type()) {
        case torch::kHalf: return OPS_HALF;
        case torch::kFloat: return OPS_FLOAT;
        case torch::kDouble: return OPS_DOUBLE;
        default: TORCH_CHECK(false, "text2face ops: unsupported dtype ", t.scalar_type(), " (expected float16/32/64)");
    }
    return -1;
}

static void* current_stream() { return (void*)c10::cuda::getCurrentCUDAStream().stream(); }

static void check_launch(int err, const char* op) {
    TORCH_CHECK(err == 0, "text2face ops: ", op, " kernel launch failed with CUDA error ", err);
}

// ---------------------------------------------------------------------------------------------

torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, std::optional<torch::Tensor> g, int64_t dim, int64_t act,
                       int64_t order, double alpha, double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous(), "bias_act: x must be contiguous");
    TORCH_CHECK(act >= 0 && act < BA_COUNT, "bias_act: unknown activation id ", act);
    TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.device() == x.device() && b.scalar_type() == x.scalar_type() &&
                                   b.is_contiguous()),
                "bias_act: b must be empty or a contiguous 1-D tensor of x's dtype and device");
    const int64_t nd = x.dim();
    if (nd > 0) dim = ((dim % nd) + nd) % nd;
    int64_t inner = 1;
    for (int64_t i = dim + 1; i < nd; i++) inner *= x.size(i);
    const int64_t bsize = nd > 0 ? x.size(dim) : 1;
    TORCH_CHECK(b.numel() == 0 || b.numel() == bsize, "bias_act: b has ", b.numel(), " elements, x.shape[dim] is ", bsize);
    torch::Tensor gg;
    if (order > 0) {
        TORCH_CHECK(g.has_value(), "bias_act: an incoming gradient is needed for order > 0");
        gg = g.value();
        TORCH_CHECK(gg.is_contiguous() && gg.sizes() == x.sizes() && gg.scalar_type() == x.scalar_type() &&
                        gg.device() == x.device(),
                    "bias_act: the gradient must be contiguous with x's shape, dtype and device");
    }
    const c10::cuda::CUDAGuard guard(x.device());
    torch::Tensor y = torch::empty_like(x);
    BiasActParams p;
    p.out = y.data_ptr();
    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.g = order > 0 ? gg.data_ptr() : nullptr;
    p.n = x.numel();
    p.inner = inner;
    p.bsize = bsize;
    p.act = (int)act;
    p.order = (int)order;
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    p.dtype = ops_dtype(x);
    check_launch(bias_act_launch(p, current_stream()), "bias_act");
    return y;
}

// ---------------------------------------------------------------------------------------------

torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                        int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip_filter) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(), "upfirdn2d: x must be a contiguous 4-D CUDA tensor");
    TORCH_CHECK(f.device() == x.device() && f.dim() == 2 && f.is_contiguous() && f.numel() > 0,
                "upfirdn2d: f must be a non-empty contiguous 2-D tensor on x's device");
    const auto acc = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    TORCH_CHECK(f.scalar_type() == acc, "upfirdn2d: f must be float64 for float64 x and float32 otherwise");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up/down must be >= 1");
    const int64_t in_h = x.size(2), in_w = x.size(3);
    const int64_t fh = f.size(0), fw = f.size(1);
    const int64_t out_h = (in_h * upy + pady0 + pady1 - fh) / downy + 1;
    const int64_t out_w = (in_w * upx + padx0 + padx1 - fw) / downx + 1;
    TORCH_CHECK(in_h * upy + pady0 + pady1 - fh >= 0 && in_w * upx + padx0 + padx1 - fw >= 0,
                "upfirdn2d: the output would be empty");
    TORCH_CHECK(in_h * upy + std::abs(pady0) + std::abs(pady1) < INT32_MAX &&
                    in_w * upx + std::abs(padx0) + std::abs(padx1) < INT32_MAX,
                "upfirdn2d: image too large");
    const c10::cuda::CUDAGuard guard(x.device());
    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    UpFirDn2dParams p;
    p.out = y.data_ptr();
    p.x = x.data_ptr();
    p.f = f.data_ptr();
    p.planes = x.size(0) * x.size(1);
    p.in_h = (int)in_h;
    p.in_w = (int)in_w;
    p.out_h = (int)out_h;
    p.out_w = (int)out_w;
    p.fh = (int)fh;
    p.fw = (int)fw;
    p.up_x = (int)upx;
    p.up_y = (int)upy;
    p.down_x = (int)downx;
    p.down_y = (int)downy;
    p.pad_x0 = (int)padx0;
    p.pad_y0 = (int)pady0;
    p.flip_filter = flip_filter ? 1 : 0;
    p.dtype = ops_dtype(x);
    check_launch(upfirdn2d_launch(p, current_stream()), "upfirdn2d");
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "fused bias + activation + gain + clamp (order 0) or its derivatives (order 1, 2)");
    m.def("upfirdn2d", &upfirdn2d, "up-sample, FIR-filter (2-D filter), down-sample");
}
