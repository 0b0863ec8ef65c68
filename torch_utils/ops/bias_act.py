"""Fused bias + activation + gain + clamp.

    y = clamp(act(x + b) * gain, -clamp, clamp)

with ``b`` broadcast along dimension ``dim`` of ``x``. One function, two implementations:
a reference path in plain PyTorch ('ref', any device, any order of gradients) and a CUDA
kernel written for this project (``bias_act.cu``; 'cuda', built on first use, gradients of
first and second order through a pair of autograd Functions whose backward passes call the
same kernel). ``impl='auto'`` picks 'cuda' for CUDA tensors when the plugin builds.

Activations (name: default alpha, default gain):

    linear   x                                   -, 1
    relu     max(x, 0)                           -, sqrt(2)
    lrelu    x if x > 0 else alpha * x           0.2, sqrt(2)
    tanh     tanh(x)                             -, 1
    sigmoid  1 / (1 + exp(-x))                   -, 1
    elu      x if x > 0 else alpha*(exp(x) - 1)  1.0, 1
    selu     scale * elu(x, 1.6732...)           -, 1
    softplus log(1 + exp(x))                     -, 1
    swish    x * sigmoid(x)                      -, sqrt(2)

The default gains follow the StyleGAN2 convention, so networks read from StyleGAN2
checkpoints (which store only the activation name) compute the same thing; note that this
includes sqrt(2) for swish. ``gain=None`` means the activation's default gain,
``alpha=None`` its default alpha, ``clamp=None`` no clamping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import _build


@dataclass(frozen=True)
class Activation:
    func: Callable  # (x, alpha) -> y, reference implementation
    def_alpha: float
    def_gain: float
    index: int  # activation id in bias_act.cu
    piecewise_linear: bool  # second derivative is zero almost everywhere


_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717


def _lrelu(x, alpha):
    return F.leaky_relu(x, alpha)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, 0, True),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 1, True),
    "lrelu": Activation(_lrelu, 0.2, math.sqrt(2), 2, True),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, 3, False),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 4, False),
    "elu": Activation(lambda x, a: F.elu(x, a), 1.0, 1.0, 5, False),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, 6, False),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0, 7, False),
    "swish": Activation(lambda x, a: x * torch.sigmoid(x), 0.0, math.sqrt(2), 8, False),
}

def _plugin():
    return _build.get_ops_plugin()


def _resolve(act, alpha, gain, clamp):
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation '{act}' (known: {', '.join(ACTIVATIONS)})")
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    return spec, alpha, gain, clamp


def _use_cuda(x: torch.Tensor, impl: str) -> bool:
    if impl not in ("auto", "ref", "cuda"):
        raise ValueError(f"impl must be 'auto', 'ref' or 'cuda', got '{impl}'")
    if impl == "ref" or not x.is_cuda:
        return False
    if x.dtype not in (torch.float16, torch.float32, torch.float64):
        return False
    return _plugin() is not None


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """y = act(x + b) * gain, clamped to [-clamp, clamp] when clamp is given.

    Args:
        x: input tensor of any shape.
        b: optional bias, 1-D with ``x.shape[dim]`` elements; broadcast along ``dim``.
        dim: the dimension of ``x`` that ``b`` runs along (default 1: channels of NCHW / NC).
        act: activation name, see the module docstring.
        alpha: activation parameter (lrelu slope, elu alpha); None = default.
        gain: output scale; None = the activation's default gain (sqrt(2) for relu/lrelu/swish).
        clamp: clamp the output to [-clamp, clamp]; None = no clamping.
        impl: 'auto' (CUDA kernel for CUDA tensors when it builds, else reference), 'ref' or 'cuda'.
    Returns:
        A tensor of the same shape and dtype as ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError("bias_act: x must be a tensor")
    spec, alpha, gain, clamp = _resolve(act, alpha, gain, clamp)
    if b is not None:
        if b.ndim != 1 or not (-x.ndim <= dim < x.ndim) or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match dim {dim} of x {tuple(x.shape)}")
    dim = dim % x.ndim if x.ndim > 0 else 0
    if _use_cuda(x, impl):
        return _bias_act_cuda(x, b, dim, spec, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


_INPLACE = {
    "linear": lambda y, a: y,
    "relu": lambda y, a: y.relu_(),
    "lrelu": lambda y, a: F.leaky_relu_(y, a),
    "tanh": lambda y, a: y.tanh_(),
    "sigmoid": lambda y, a: y.sigmoid_(),
    "elu": lambda y, a: F.elu_(y, a),
    "selu": lambda y, a: F.selu(y, inplace=True),
}


_NAMES = {id(v): k for k, v in ACTIVATIONS.items()}


def _bias_act_ref(x, b, dim, spec, alpha, gain, clamp):
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        b = b.to(x.dtype).reshape(shape)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    # linear, relu and lrelu commute with a positive gain: act(v) * g == act(v * g), so the gain
    # rides along with the bias in one pass (x * g + b * g) instead of costing its own.
    if spec.piecewise_linear and gain > 0 and gain != 1:
        if b is None:
            y = x * gain
        elif torch.compiler.is_compiling():
            # torch.compile (inductor, CPU) mis-computes add(..., alpha=) fused after a matrix
            # product (tests/test_accel.py shows it); the plain form compiles correctly.
            y = x * gain + b * gain
        else:
            y = torch.add(b * gain, x, alpha=gain)
        gain = 1.0
    elif b is not None:
        y = x + b
    else:
        y = None  # nothing new yet
    inplace = _INPLACE.get(_NAMES[id(spec)])
    if not needs_grad:
        # Inference: make one new tensor, then update it in place (no temporaries).
        if y is None:
            if inplace is not None and spec.index == 0 and gain == 1 and clamp < 0:
                return x
            y = inplace(x.clone(), alpha) if inplace is not None else spec.func(x, alpha)
        else:
            y = inplace(y, alpha) if inplace is not None else spec.func(y, alpha)
        if gain != 1:
            y.mul_(gain)
        if clamp >= 0:
            y.clamp_(-clamp, clamp)
        return y
    y = spec.func(x if y is None else y, alpha)
    if gain != 1:
        y = y * gain
    if clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y


# ---------------------------------------------------------------------------------------------
# CUDA path. The kernel computes, for the pre-activation v = x + b and u = act(v) * gain:
#   order 0:  clamp(u)
#   order 1:  g * du/dv * [|u| <= clamp]
#   order 2:  g * d2u/dv2 * [|u| <= clamp]
# so the first derivative is an autograd Function (_BiasActGrad) whose own backward uses
# orders 1 and 2 again.


def _reduce_bias(dx, dim, b):
    if b is None:
        return None
    dims = [i for i in range(dx.ndim) if i != dim]
    return dx.sum(dims).to(b.dtype) if dims else dx.to(b.dtype)


def _empty_bias(x):
    return torch.empty([0], dtype=x.dtype, device=x.device)


def _bias_act_cuda(x, b, dim, spec, alpha, gain, clamp):
    return _BiasAct.apply(x, b, dim, spec.index, spec.piecewise_linear, alpha, gain, clamp)


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act_idx, pwl, alpha, gain, clamp):
        x = x.contiguous()
        bb = _empty_bias(x) if b is None else b.to(x.dtype).contiguous()
        y = _plugin().bias_act(x, bb, None, dim, act_idx, 0, alpha, gain, clamp)
        ctx.save_for_backward(x, b)
        ctx.args = (dim, act_idx, pwl, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dim = ctx.args[0]
        dx = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = _BiasActGrad.apply(dy, x, b, *ctx.args)
        db = _reduce_bias(dx, dim, b) if ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * d act(x + b) * gain / dx * clamp mask, differentiable once more."""

    @staticmethod
    def forward(ctx, dy, x, b, dim, act_idx, pwl, alpha, gain, clamp):
        dy = dy.contiguous()
        bb = _empty_bias(x) if b is None else b.to(x.dtype).contiguous()
        dx = _plugin().bias_act(x, bb, dy, dim, act_idx, 1, alpha, gain, clamp)
        ctx.save_for_backward(dy, x, b)
        ctx.args = (dim, act_idx, pwl, alpha, gain, clamp)
        return dx

    @staticmethod
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        dim, act_idx, pwl, alpha, gain, clamp = ctx.args
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActGrad.apply(ddx, x, b, *ctx.args)
        if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and not pwl:
            bb = _empty_bias(x) if b is None else b.to(x.dtype).contiguous()
            d_x = _plugin().bias_act(x, bb, (ddx * dy).contiguous(), dim, act_idx, 2, alpha, gain, clamp)
            d_b = _reduce_bias(d_x, dim, b) if ctx.needs_input_grad[2] else None
            if not ctx.needs_input_grad[1]:
                d_x = None
        return d_dy, d_x, d_b, None, None, None, None, None, None
