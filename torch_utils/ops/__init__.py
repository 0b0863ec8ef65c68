"""Custom ops: each one module with a reference PyTorch path and a CUDA kernel of this project.

    from torch_utils.ops import bias_act, upfirdn2d, conv2d_resample
    y = bias_act.bias_act(x, b, act='lrelu')
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    y = upfirdn2d.upsample2d(x, f)          # also filter2d, downsample2d, upfirdn2d
    y = conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1)

(``from torch_utils.ops.bias_act import bias_act`` etc. work as well.) The CUDA kernels are
built on first use on a CUDA device (``_build.get_plugin``); if the build fails the ops warn
once and use the reference path.
"""
