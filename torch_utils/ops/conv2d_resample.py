"""2-D convolution combined with FIR up/down-sampling (StyleGAN2 semantics).

``conv2d_resample(x, w, f, up, down, padding)`` gives the same result as

    up > 1:   conv2d(upsample2d(x, f, up, padding=padding), w)             (no extra padding)
    down > 1: conv2d(upfirdn2d(x, f, padding=padding + downsample2d's pad), w, stride=down)
    else:     conv2d(x, w, padding=padding)

(with ``w`` used as a correlation kernel, PyTorch's conv2d, when ``flip_weight=True``, and as
a true convolution kernel when ``flip_weight=False``), but computes it cheaply: up-sampling
runs as a stride-``up`` transposed convolution followed by the FIR filter at the high
resolution; down-sampling as the FIR filter followed by a stride-``down`` convolution; 1x1
kernels are applied at the low resolution. The up-sampled path multiplies the filter gain
by ``up**2`` (as ``upsample2d`` does), so a normalised filter keeps the signal's level.

Grouped convolutions (``groups``) are supported on every path, which is what a fused
modulated convolution (one group per sample) needs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import upfirdn2d as _u


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d / conv_transpose2d; ``flip_weight=False`` flips w (true convolution for conv2d)."""
    kh, kw = w.shape[2], w.shape[3]
    if not flip_weight and (kh > 1 or kw > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False, impl="auto"):
    """Convolve x with w, with optional FIR up-sampling before / down-sampling after.

    Args:
        x: [N, C_in, H, W] input.
        w: [C_out, C_in // groups, kh, kw] weight.
        f: FIR filter for resampling (from ``upfirdn2d.setup_filter``); None = identity.
        up: integer up-sampling factor (same for both axes).
        down: integer down-sampling factor (same for both axes).
        padding: int, [x, y] or [x0, x1, y0, y1], padding of the (up-sampled) input of the
            convolution, e.g. ``kw // 2`` for a "same" convolution.
        groups: convolution groups.
        flip_weight: True = correlation (torch conv2d), False = true convolution. Both give
            the same result up to the orientation of w; a network stores which one it used.
        flip_filter: False = true convolution with f (StyleGAN2 default), True = correlation.
        impl: implementation of the FIR steps ('auto', 'ref' or 'cuda'), see ``upfirdn2d``.
    Returns:
        [N, C_out, H', W'] with H' = H * up / down for a "same" padding.
    """
    if not (isinstance(x, torch.Tensor) and x.ndim == 4):
        raise ValueError("conv2d_resample: x must be a 4-D NCHW tensor")
    if not (isinstance(w, torch.Tensor) and w.ndim == 4 and w.dtype == x.dtype):
        raise ValueError("conv2d_resample: w must be a 4-D tensor of x's dtype")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1 and isinstance(groups, int) and groups >= 1):
        raise ValueError("conv2d_resample: up, down and groups must be positive ints")
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _u._filter_size(f)
    px0, px1, py0, py1 = _u._parse_padding(padding)

    # Padding that the FIR resampling needs for a natural-size output.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernels: resample at the lower resolution.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = _u.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return _u.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter, impl=impl)

    # Down-sampling only: FIR at full resolution, then a strided convolution.
    if down > 1 and up == 1:
        x = _u.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up-sampling: stride-`up` transposed convolution (zero insertion + full convolution),
    # then the FIR filter with the remaining padding.
    if up > 1:
        if groups == 1:
            wt = w.transpose(0, 1).contiguous()
        else:
            wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            wt = wt.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        # The transposed convolution already pads by k-1 on each side and leaves no trailing
        # zeros after the last input sample (up-1 fewer than zero insertion); account for both.
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        # Let the transposed convolution crop what it can (cheaper than computing and cropping).
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        # conv_transpose2d is the adjoint of a correlation, i.e. a true convolution over the
        # zero-inserted input: flip w for correlation semantics.
        x = _conv(x, wt, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = _u.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, flip_filter=flip_filter, impl=impl)
        if down > 1:
            x = _u.upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
        return x

    # Plain convolution.
    if up == 1 and down == 1:
        if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
            return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case (asymmetric / negative padding, or up and down together).
    x = _u.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter, impl=impl)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = _u.upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
    return x
