"""StyleGAN2 discriminator (residual architecture), used to train the project's generators.

    image [N, C, R, R]
      -> fromRGB (1x1 conv) at R
      -> residual blocks R -> R/2 -> ... -> 4: two 3x3 convs (the second FIR-down-sampling)
         plus a 1x1 down-sampling skip, summed with gain sqrt(1/2)
      -> epilogue at 4x4: minibatch standard deviation, 3x3 conv, fully connected, output
    -> logits [N, 1] (or, with c_dim > 0, the projection of the features on an embedding of c)

Every layer uses the equalised learning rate of ``network.stylegan2`` (the same
``Conv2dLayer`` / ``FullyConnectedLayer``). Parameter names follow the published layout
(``b64.fromrgb.weight``, ``b64.conv0.weight``, ``b64.skip.weight``, ``b4.fc.weight``,
``b4.out.weight``, ...). The top ``num_fp16_res`` resolutions run in float16 on CUDA with
``conv_clamp`` keeping activations in range; on the CPU everything is float32.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from network.stylegan2 import Conv2dLayer, FullyConnectedLayer, MappingNetwork, _block_resolutions

SQRT_HALF = math.sqrt(0.5)


class DiscriminatorBlock(nn.Module):
    """One resolution of the residual discriminator: (fromRGB) + conv + conv/2, plus a 1x1 skip/2."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 activation: str = "lrelu", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False) -> torch.Tensor:
        device = (x if x is not None else img).device
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and device.type == "cuda") else torch.float32
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype))
        else:
            x = x.to(dtype)
        y = self.skip(x, gain=SQRT_HALF)
        x = self.conv1(self.conv0(x), gain=SQRT_HALF)
        return y.add_(x)


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation across groups of ``group_size`` samples as extra feature maps.

    The features are split into ``num_channels`` groups of channels; for each group of samples
    the per-position std over the group is averaged over channels and pixels and broadcast as
    one extra channel per channel group. Lets the discriminator see a lack of variety.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        if n % g != 0:  # fall back to the largest divisor of the batch not above group_size
            g = max(d for d in range(1, g + 1) if n % d == 0)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, M, F, c, H, W]; sample i is in group i % M
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [M, F, c, H, W]
        y = y.mean(dim=[2, 3, 4])  # [M, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std, 3x3 conv, fully connected, output (1 logit or a cmap projection)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, activation: str = "lrelu", conv_clamp: float | None = None,
                 img_channels: int = 0):
        super().__init__()
        self.cmap_dim = cmap_dim
        if img_channels > 0:  # a 4x4 discriminator has no blocks: read the image here
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor | None, cmap: torch.Tensor | None = None,
                img: torch.Tensor | None = None) -> torch.Tensor:
        x = self.fromrgb(img.to(torch.float32)) if x is None else x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator; ``Discriminator(**D.init_kwargs)`` rebuilds the same network.

    Args:
        img_resolution, img_channels: input size (any power of two >= 4).
        c_dim: conditioning size (0: unconditional); with c_dim > 0 a small mapping network
            embeds c into ``cmap_dim`` features that the output is projected on.
        channel_base, channel_max, channels: channels per resolution, ``min(channel_base // res,
            channel_max)`` or an explicit list (one entry per block resolution, highest first,
            then 4x4).
        num_fp16_res: number of top resolutions computed in float16 on CUDA.
        conv_clamp: clamp of the convolution outputs (None: no clamp).
        mbstd_group_size, mbstd_num_channels: minibatch standard deviation layer (0 channels: off).
        resample_filter: FIR taps of the 2x down-sampling.
    """

    def __init__(self, img_resolution: int = 64, img_channels: int = 3, c_dim: int = 0, channel_base: int = 32768,
                 channel_max: int = 512, channels: Sequence[int] | None = None, num_fp16_res: int = 4,
                 conv_clamp: float | None = 256, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 cmap_dim: int | None = None, resample_filter: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.c_dim = int(c_dim)
        resolutions = _block_resolutions(self.img_resolution)[::-1]  # R, R/2, ..., 4
        if channels is None:
            channels = [min(channel_base // res, channel_max) for res in resolutions]
        channels = [int(c) for c in channels]
        if len(channels) != len(resolutions) or min(channels) < 1:
            raise ValueError(f"channels: expected {len(resolutions)} positive counts (highest resolution first), "
                             f"got {channels}")
        if mbstd_num_channels > 0 and channels[-1] % mbstd_num_channels != 0:
            raise ValueError(f"mbstd_num_channels={mbstd_num_channels} must divide the 4x4 channels ({channels[-1]})")
        self.init_kwargs = dict(
            img_resolution=self.img_resolution, img_channels=self.img_channels, c_dim=self.c_dim,
            channel_base=int(channel_base), channel_max=int(channel_max), channels=channels,
            num_fp16_res=int(num_fp16_res), conv_clamp=None if conv_clamp is None else float(conv_clamp),
            mbstd_group_size=int(mbstd_group_size), mbstd_num_channels=int(mbstd_num_channels),
            cmap_dim=None if cmap_dim is None else int(cmap_dim),
            resample_filter=[float(v) for v in resample_filter],
        )
        self.channels = dict(zip(resolutions, channels))
        self.block_resolutions = resolutions[:-1]  # the 4x4 level is the epilogue
        fp16_resolution = max(2 ** (int(round(math.log2(self.img_resolution))) + 1 - num_fp16_res), 8)
        if self.c_dim > 0:
            cmap_dim = self.channels[4] if cmap_dim is None else int(cmap_dim)
        else:
            cmap_dim = 0
        self.cmap_dim = cmap_dim
        for res in self.block_resolutions:
            in_channels = self.channels[res] if res < self.img_resolution else 0
            block = DiscriminatorBlock(in_channels, self.channels[res], self.channels[res // 2], resolution=res,
                                       img_channels=self.img_channels, resample_filter=resample_filter,
                                       conv_clamp=conv_clamp, use_fp16=(num_fp16_res > 0 and res >= fp16_resolution))
            setattr(self, f"b{res}", block)
        if self.c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=self.c_dim, w_dim=cmap_dim, num_ws=None, num_layers=2,
                                          lr_multiplier=1.0, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(self.channels[4], cmap_dim=cmap_dim, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp,
                                        img_channels=0 if self.block_resolutions else self.img_channels)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        """Logits [N, 1] for images [N, img_channels, R, R] in nominal [-1, 1]."""
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"img must be [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                             f"got {list(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = None
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}] for this conditional discriminator")
            cmap = self.mapping(None, c)
        return self.b4(x, cmap, img=img)

    def extra_repr(self) -> str:
        return f"img_resolution={self.img_resolution}, img_channels={self.img_channels}, c_dim={self.c_dim}"
