"""Up-sample, FIR-filter, down-sample (upfirdn2d) on NCHW tensors, StyleGAN2 semantics.

For each image plane the op computes, per axis (x and y independently):

1. zero-insertion up-sampling by ``up``: sample i goes to position i*up, followed by up-1
   zeros (so a length-L signal becomes length L*up);
2. padding with ``pad0`` zeros before and ``pad1`` after (a negative amount crops);
3. a "valid" FIR filter with the filter ``f``: a true convolution (the filter is flipped),
   or a correlation if ``flip_filter=True``; the filter is multiplied by ``gain``;
4. down-sampling by ``down``: keep samples 0, down, 2*down, ...

Output length per axis: ``(L*up + pad0 + pad1 - taps) // down + 1``.

``f`` is a 2-D filter [fh, fw], a 1-D filter [taps] meaning the separable filter
``f[:, None] * f[None, :]`` (applied as two 1-D passes), or None for the identity [[1]].
``gain`` scales the whole 2-D filter (each pass of a separable filter by sqrt(gain)).
``upfirdn2d`` itself does not compensate for the zeros inserted by up-sampling;
``upsample2d`` does, by multiplying the gain by ``up_x * up_y`` (StyleGAN2 convention).

``up``/``down`` are an int or a pair [x, y]; ``padding`` an int, a pair [x, y] or
[x0, x1, y0, y1].

Implementations: 'ref' (PyTorch: conv2d / conv_transpose2d, any device, all gradients) and
'cuda' (a kernel written for this project, ``upfirdn2d.cu``; the gradient with respect to x
is the same op with up/down swapped and the filter flipped, so it is differentiable again).
No gradient flows to ``f`` on the CUDA path.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import _build

def _plugin():
    return _build.get_ops_plugin()


# ---------------------------------------------------------------------------------------------
# Argument parsing


def _parse_scaling(s):
    if isinstance(s, int):
        s = [s, s]
    s = [int(v) for v in s]
    if len(s) != 2 or min(s) < 1:
        raise ValueError(f"upfirdn2d: scaling must be a positive int or a pair [x, y], got {s}")
    return s


def _parse_padding(p):
    if isinstance(p, int):
        p = [p, p]
    p = [int(v) for v in p]
    if len(p) == 2:
        px, py = p
        p = [px, px, py, py]
    if len(p) != 4:
        raise ValueError(f"upfirdn2d: padding must be an int, [x, y] or [x0, x1, y0, y1], got {p}")
    return p


def _filter_size(f):
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    fw = f.shape[-1]
    fh = f.shape[0]
    return int(fw), int(fh)


# ---------------------------------------------------------------------------------------------
# Filters


def setup_filter(f, device=torch.device("cpu"), normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn filter taps (list / array / tensor) into a float32 tensor for ``upfirdn2d``.

    Args:
        f: taps; a scalar, 1-D or 2-D; None means [1].
        device: where the result lives.
        normalize: divide by the sum of the (2-D) filter, so it sums to 1 before ``gain``.
        flip_filter: flip the taps (store a correlation filter as a convolution one).
        gain: overall gain of the 2-D filter (each 1-D factor of a separable filter gets sqrt).
        separable: keep a 1-D filter 1-D (separable) or expand it to the 2-D outer product.
            None (default): separable when 1-D with at least 8 taps; short 1-D filters
            become 2-D (StyleGAN2 convention; both forms give the same result).
    Returns:
        float32 tensor, 1-D [taps] (separable) or 2-D [fh, fw].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(np.asarray(f, dtype=np.float32) if not isinstance(f, torch.Tensor) else f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2):
        raise ValueError(f"setup_filter: expected a 1-D or 2-D filter, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError("setup_filter: empty filter")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("setup_filter: a 2-D filter cannot be separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


# ---------------------------------------------------------------------------------------------
# The op


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Up-sample, pad, FIR-filter and down-sample a batch of images; see the module docstring.

    Args:
        x: [N, C, H, W] tensor.
        f: float filter, 2-D [fh, fw], 1-D [taps] (separable) or None (identity).
        up: integer up-sampling factor, int or [x, y].
        down: integer down-sampling factor, int or [x, y].
        padding: int, [x, y] or [x0, x1, y0, y1]; negative values crop.
        flip_filter: False = true convolution with f (StyleGAN2 default), True = correlation.
        gain: overall gain of the filter.
        impl: 'auto', 'ref' or 'cuda'.
    Returns:
        [N, C, H_out, W_out] tensor, same dtype as x.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("upfirdn2d: x must be a 4-D NCHW tensor")
    if impl not in ("auto", "ref", "cuda"):
        raise ValueError(f"impl must be 'auto', 'ref' or 'cuda', got '{impl}'")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    H, W = x.shape[2], x.shape[3]
    out_w = (W * upx + padx0 + padx1 - fw) // downx + 1
    out_h = (H * upy + pady0 + pady1 - fh) // downy + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: output would be empty ({out_h}x{out_w}) for input {H}x{W}, filter {fh}x{fw}, "
                         f"up {[upx, upy]}, down {[downx, downy]}, padding {[padx0, padx1, pady0, pady1]}")
    args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), float(gain))
    if impl != "ref" and x.is_cuda and x.dtype in (torch.float16, torch.float32, torch.float64) and _plugin() is not None:
        return _upfirdn2d_cuda(x, f, *args)
    return _upfirdn2d_ref(x, f, *args)


def _upfirdn2d_ref(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
    """Reference implementation with PyTorch convolutions (differentiable to any order).

    A separable filter runs as two 1-D passes. Each pass is one depthwise convolution:
    without up-sampling, padding + a strided conv2d (no work on dropped samples); with
    up-sampling, a strided conv_transpose2d, which is zero insertion + a full true convolution
    without multiplying the inserted zeros, followed by the padding/cropping difference.
    """
    f = f.to(device=x.device, dtype=x.dtype)
    if f.ndim == 1:
        g = gain ** 0.5
        x = _ref_pass(x, f[None, :], upx, 1, downx, 1, padx0, padx1, 0, 0, flip_filter, g)
        return _ref_pass(x, f[:, None], 1, upy, 1, downy, 0, 0, pady0, pady1, flip_filter, g)
    return _ref_pass(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain)


def _pad(x, px0, px1, py0, py1):
    """Zero-pad (positive) / crop (negative) the last two dimensions."""
    if not (px0 or px1 or py0 or py1):
        return x
    if min(px0, px1, py0, py1) >= 0:
        return F.pad(x, [px0, px1, py0, py1])
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    return x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]


def _ref_pass(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
    C = x.shape[1]
    fh, fw = f.shape
    if gain != 1:
        f = f * gain
    if fh == 1 and fw == 1 and upx == 1 and upy == 1:  # no filtering: pad, scale, stride
        x = _pad(x, padx0, padx1, pady0, pady1)
        if downx > 1 or downy > 1:
            x = x[:, :, ::downy, ::downx]
        return x * f.reshape([]) if gain != 1 or f.reshape([]).item() != 1 else x
    if upx == 1 and upy == 1:
        # conv2d is a correlation: flip the filter for a true convolution.
        w = (f if flip_filter else f.flip([0, 1]))[None, None].repeat(C, 1, 1, 1)
        # Let conv2d do the symmetric part of a non-negative padding (no padded copy).
        cx = max(min(padx0, padx1), 0)
        cy = max(min(pady0, pady1), 0)
        x = _pad(x, padx0 - cx, padx1 - cx, pady0 - cy, pady1 - cy)
        return F.conv2d(x, w, stride=[downy, downx], padding=[cy, cx], groups=C)
    # conv_transpose2d(stride=up) = zero insertion (no trailing zeros) + full true convolution,
    # whose output o corresponds to upfirdn2d's (o - (taps - 1) + pad0). Crop what we can
    # symmetrically inside conv_transpose2d, then pad/crop the rest.
    w = (f.flip([0, 1]) if flip_filter else f)[None, None].repeat(C, 1, 1, 1)
    cx0, cx1 = fw - 1 - padx0, fw - upx - padx1  # amounts to crop (negative: pad)
    cy0, cy1 = fh - 1 - pady0, fh - upy - pady1
    tx = max(min(cx0, cx1), 0)
    ty = max(min(cy0, cy1), 0)
    x = F.conv_transpose2d(x, w, stride=[upy, upx], padding=[ty, tx], groups=C)
    x = _pad(x, tx - cx0, tx - cx1, ty - cy0, ty - cy1)
    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


# ---------------------------------------------------------------------------------------------
# Helpers that choose the padding for the natural output size


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """FIR-filter x with f; output has the input's size (plus ``padding``)."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Up-sample x by ``up`` with the FIR filter f (gain multiplied by up_x * up_y), output size x.size * up."""
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2, pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=[upx, upy], padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """FIR-filter x with f and down-sample by ``down``, output size x.size // down."""
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2, pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=[downx, downy], padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# ---------------------------------------------------------------------------------------------
# CUDA path


def _upfirdn2d_cuda(x, f, *args):
    if f.requires_grad:
        raise ValueError("upfirdn2d: the CUDA implementation does not differentiate with respect to f; use impl='ref'")
    return _UpFirDn2d.apply(x, f, *args)


def _grad_args(x_shape, y_shape, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
    """upfirdn2d arguments whose result is the gradient with respect to x (the adjoint op)."""
    fw, fh = _filter_size(f)
    H, W = x_shape[2], x_shape[3]
    oh, ow = y_shape[2], y_shape[3]
    p = [fw - padx0 - 1, W * upx - ow * downx + padx0 - upx + 1,
         fh - pady0 - 1, H * upy - oh * downy + pady0 - upy + 1]
    return (downx, downy, upx, upy, p[0], p[1], p[2], p[3], not flip_filter, gain)


class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
        args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        fk = f.to(device=x.device, dtype=acc)
        if gain != 1:
            fk = fk * (gain ** (f.ndim / 2))
        plugin = _plugin()
        x = x.contiguous()
        if fk.ndim == 2:
            y = plugin.upfirdn2d(x, fk.contiguous(), upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter)
        else:
            y = plugin.upfirdn2d(x, fk[None, :].contiguous(), upx, 1, downx, 1, padx0, padx1, 0, 0, flip_filter)
            y = plugin.upfirdn2d(y.contiguous(), fk[:, None].contiguous(), 1, upy, 1, downy, 0, 0, pady0, pady1, flip_filter)
        ctx.save_for_backward(f)
        ctx.args = args
        ctx.x_shape = x.shape
        ctx.y_shape = y.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            gargs = _grad_args(ctx.x_shape, ctx.y_shape, f, *ctx.args)
            dx = _UpFirDn2d.apply(dy, f, *gargs)
        return (dx, None) + (None,) * 10
