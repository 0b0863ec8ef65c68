"""StyleGAN2 generator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN").

    z --MappingNetwork--> w (broadcast to num_ws copies, optionally truncated toward w_avg)
      --SynthesisNetwork--> image [N, img_channels, H, W], nominal range [-1, 1]

Every hyper-parameter is a constructor argument, so one class covers the official FFHQ
models (z = w = 512, 8 mapping layers, channel_base 32768, channel_max 512), the small
test generators and the project's toy generator.

Parameter and buffer names follow the layout of the published checkpoints
(``mapping.fc0.weight``, ``synthesis.b4.const``, ``synthesis.b8.conv0.affine.weight``,
``synthesis.b8.torgb.bias``, ...), so a checkpoint's tensors map one to one onto a module
built from its hyper-parameters. Weights are stored unscaled and multiplied by their
equalised-learning-rate gain at run time.

The building blocks (``FullyConnectedLayer``, ``Conv2dLayer``, ``modulated_conv2d``,
``normalize_2nd_moment``) are public for reuse by the discriminator and other networks.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

import torch_utils.ops.upfirdn2d as upfirdn2d
from torch_utils.ops.bias_act import bias_act
from torch_utils.ops.conv2d_resample import conv2d_resample

LRELU_GAIN = math.sqrt(2.0)
_ACT_GAIN = {"linear": 1.0, "relu": LRELU_GAIN, "lrelu": LRELU_GAIN}


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x to unit mean square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ---------------------------------------------------------------------------
# Generic layers with equalised learning rate
# ---------------------------------------------------------------------------


class FullyConnectedLayer(nn.Module):
    """y = act(x @ (W * gain)^T + b * lr_multiplier), W ~ N(0, 1/lr_multiplier^2) at init.

    ``weight_gain = lr_multiplier / sqrt(in_features)`` (equalised learning rate).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear":
            if b is not None:
                return torch.addmm(b.unsqueeze(0), x, w.t())
            return x.matmul(w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/down-sampling, bias, activation and clamp.

    Used by the discriminator (and available to any other network).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)), persistent=False)
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = _ACT_GAIN[activation]
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_t)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # slightly faster; the stored weights assume this convention
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=flip_weight)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


# ---------------------------------------------------------------------------
# Modulated convolution
# ---------------------------------------------------------------------------


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """Convolve each sample with ``weight`` scaled per input channel by its ``styles``.

    x: [N, I, H, W]; weight: [O, I, k, k]; styles: [N, I]; noise: broadcastable to the output.
    With ``demodulate`` each output channel of the modulated weight is normalised to unit L2
    norm (eps 1e-8). ``fused_modconv`` runs one grouped convolution with per-sample weights;
    otherwise the styles scale the activations around one shared convolution (same result).
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    # Pre-normalise in float16 to keep the products in range (the result is scale-invariant).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:
        # |W * s|^2 summed over (I, k, k) = s^2 @ (sum over k of W^2): no [N, O, I, k, k] temporary.
        wsq = weight.to(torch.float32).square().sum(dim=[2, 3])  # [O, I]
        dcoefs = (styles.to(torch.float32).square() @ wsq.t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * dcoefs.to(w.dtype).reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding, groups=batch_size,
                        flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


NOISE_MODES = ("const", "random", "none")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling) + noise + bias + leaky ReLU (+ clamp)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)), persistent=False)
        self.padding = kernel_size // 2
        self.act_gain = _ACT_GAIN[activation]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, no demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const input | 2x up-sampling conv) + conv, and a toRGB added to the up-sampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, use_noise: bool = True,
                 kernel_size: int = 3):
        if architecture not in ("orig", "skip"):
            raise ValueError(f"unsupported synthesis architecture '{architecture}' (expected 'skip' or 'orig')")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)), persistent=False)
        self.num_conv = 0
        self.num_torgb = 0
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, kernel_size=kernel_size, use_noise=use_noise,
                            resample_filter=resample_filter, conv_clamp=conv_clamp)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const",
                force_fp32: bool = False, fused_modconv: bool | None = None, channels_last: bool = False):
        w_iter = iter(ws.unbind(dim=1))
        device = ws.device
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and device.type == "cuda") else torch.float32
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if fused_modconv is None:
            # CPU: one shared convolution on style-scaled activations measured fastest for every
            # batch size (benchmarks/RESULTS.md). CUDA: per-sample weights in one grouped convolution
            # in float32 or for a single sample; shared otherwise (stays finite in float16).
            fused_modconv = (not self.training and device.type != "cpu"
                             and (dtype == torch.float32 or ws.shape[0] == 1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1).contiguous(memory_format=memory_format)
        else:
            x = x.to(dtype).contiguous(memory_format=memory_format)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if img is not None:
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


def _block_resolutions(img_resolution: int) -> list[int]:
    log2 = int(round(math.log2(img_resolution)))
    if img_resolution < 4 or 2 ** log2 != img_resolution:
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return [2 ** i for i in range(2, log2 + 1)]


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution].

    Channels per resolution: ``min(channel_base // res, channel_max)``, or the explicit list
    ``channels`` (one entry per block, 4x4 first). The top ``num_fp16_res`` resolutions
    (never below 8x8) run in float16 on CUDA; everything runs in float32 on the CPU.
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, channels: Sequence[int] | None = None, num_fp16_res: int = 4,
                 conv_clamp: float | None = 256, architecture: str = "skip",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), use_noise: bool = True, kernel_size: int = 3):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = _block_resolutions(img_resolution)
        if channels is None:
            channels = [min(channel_base // res, channel_max) for res in self.block_resolutions]
        channels = [int(c) for c in channels]
        if len(channels) != len(self.block_resolutions) or min(channels) < 1:
            raise ValueError(f"channels: expected {len(self.block_resolutions)} positive counts, got {channels}")
        self.channels = dict(zip(self.block_resolutions, channels))
        log2 = len(self.block_resolutions) + 1
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = self.channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_channels, self.channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=(res == img_resolution),
                                   architecture=architecture, resample_filter=resample_filter,
                                   conv_clamp=conv_clamp, use_fp16=(num_fp16_res > 0 and res >= fp16_resolution),
                                   use_noise=use_noise, kernel_size=kernel_size)
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self):
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: bool | None = None, channels_last: bool | None = None) -> torch.Tensor:
        """``channels_last``: NHWC activations (None: on the CPU, where oneDNN convolutions are faster with it)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got '{noise_mode}'")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        if channels_last is None:
            channels_last = ws.device.type == "cpu"
        x = img = None
        w_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           channels_last=channels_last)
        return img


class MappingNetwork(nn.Module):
    """z (and c) -> w, broadcast to [N, num_ws, w_dim]; tracks w_avg during training; truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        if z_dim <= 0 and c_dim <= 0:
            raise ValueError("mapping network needs z_dim > 0 or c_dim > 0")
        if num_layers < 1:
            raise ValueError(f"mapping network needs at least one layer, got {num_layers}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool | None = None) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else list(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}] for this conditional generator")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_w_avg is None:
            update_w_avg = self.training
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x.contiguous() if self.num_ws is not None else x


# ---------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------


class Generator(nn.Module):
    """StyleGAN2 generator; ``Generator(**G.init_kwargs)`` rebuilds the same architecture.

    Args:
        z_dim, w_dim, c_dim: latent, intermediate latent and conditioning sizes (c_dim may be 0).
        img_resolution, img_channels: output size.
        mapping_layers, mapping_lr_multiplier, embed_features, layer_features, w_avg_beta:
            the mapping network.
        channel_base, channel_max, channels: channels per resolution (``channels`` overrides).
        num_fp16_res: number of top resolutions computed in float16 on CUDA.
        conv_clamp: clamp of the convolution outputs (None: no clamp).
        architecture: 'skip' (toRGB at every resolution, summed) or 'orig' (toRGB at the end).
        resample_filter: FIR taps of the 2x up-sampling.
        use_noise: per-layer noise inputs.
    """

    def __init__(self, z_dim: int = 512, w_dim: int = 512, c_dim: int = 0, img_resolution: int = 1024,
                 img_channels: int = 3, mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 embed_features: int | None = None, layer_features: int | None = None,
                 w_avg_beta: float | None = 0.995, channel_base: int = 32768, channel_max: int = 512,
                 channels: Sequence[int] | None = None, num_fp16_res: int = 4, conv_clamp: float | None = 256,
                 architecture: str = "skip", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 use_noise: bool = True):
        super().__init__()
        self.init_kwargs = dict(
            z_dim=int(z_dim), w_dim=int(w_dim), c_dim=int(c_dim), img_resolution=int(img_resolution),
            img_channels=int(img_channels), mapping_layers=int(mapping_layers),
            mapping_lr_multiplier=float(mapping_lr_multiplier), embed_features=embed_features,
            layer_features=layer_features, w_avg_beta=None if w_avg_beta is None else float(w_avg_beta),
            channel_base=int(channel_base), channel_max=int(channel_max),
            channels=None if channels is None else [int(c) for c in channels], num_fp16_res=int(num_fp16_res),
            conv_clamp=None if conv_clamp is None else float(conv_clamp), architecture=str(architecture),
            resample_filter=[float(v) for v in resample_filter], use_noise=bool(use_noise),
        )
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base=channel_base,
                                          channel_max=channel_max, channels=channels, num_fp16_res=num_fp16_res,
                                          conv_clamp=conv_clamp, architecture=architecture,
                                          resample_filter=resample_filter, use_noise=use_noise)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, num_layers=mapping_layers,
                                      embed_features=embed_features, layer_features=layer_features,
                                      lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", force_fp32: bool = False) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, w_dim={self.w_dim}, c_dim={self.c_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
