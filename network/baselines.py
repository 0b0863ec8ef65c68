"""Baselines trained directly on 64x64 face images: a conditional VAE and a conditional GAN.

Both take a condition vector ``c`` of size ``cond_dim``: either a CLIP text
embedding of a caption (``cond_dim`` = CLIP embedding size, unit norm) or the
40 CelebA attributes as +-1. The condition first goes through a small MLP
(``CondEmbed``) so both kinds look alike to the rest of the network.

- ``ImageCVAE``: convolutional encoder q(z | x, c) and decoder p(x | z, c).
  The condition enters the encoder (concatenated to the flattened features)
  and every decoder block (FiLM: per-channel scale and shift).
- ``CondGenerator``: DCGAN-style transposed-convolution generator with
  conditional batch normalisation (scale/shift from z and c).
- ``ProjectionDiscriminator``: spectrally normalised conv net whose output is
  ``psi(h) + <embed(c), h>`` (Miyato & Koyama's projection discriminator,
  with a linear embedding since our conditions are continuous vectors).

Sizes default to something two CPU cores train in minutes at 64x64.
Pure nn.Modules, no I/O.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


class CondEmbed(nn.Module):
    """Condition vector -> embedding. CLIP embeddings are unit vectors, so they are
    rescaled by sqrt(cond_dim) to unit variance per coordinate first."""

    def __init__(self, cond_dim: int, embed_dim: int, cond_kind: str):
        super().__init__()
        self.cond_dim = cond_dim
        self.scale = math.sqrt(cond_dim) if cond_kind == "clip" else 1.0
        self.net = nn.Sequential(nn.Linear(cond_dim, embed_dim), nn.LeakyReLU(0.2), nn.Linear(embed_dim, embed_dim))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if c.ndim != 2 or c.shape[1] != self.cond_dim:
            raise ValueError(f"condition must be [N, {self.cond_dim}], got {list(c.shape)}")
        if self.scale != 1.0:
            c = F.normalize(c.float(), dim=1) * self.scale
        return self.net(c.float())


def _check_kind(cond_kind: str) -> None:
    if cond_kind not in ("clip", "attr"):
        raise ValueError(f"cond_kind must be 'clip' or 'attr', got {cond_kind!r}")


# ---------------------------------------------------------------------------
# Conditional VAE
# ---------------------------------------------------------------------------


class _FiLMUp(nn.Module):
    """Upsample x2 -> conv3x3 -> GroupNorm -> FiLM(c) -> LeakyReLU."""

    def __init__(self, cin: int, cout: int, embed_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout, affine=False)
        self.film = nn.Linear(embed_dim, 2 * cout)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv(x))
        gamma, beta = self.film(e).chunk(2, dim=1)
        x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return F.leaky_relu(x, 0.2)


class ImageCVAE(nn.Module):
    """Conditional VAE on ``resolution`` x ``resolution`` RGB images in [-1, 1].

    ``forward(x, c)`` returns ``(recon, mu, logvar)``; ``sample(c, generator)``
    decodes z ~ N(0, I).
    """

    def __init__(self, cond_dim: int, cond_kind: str = "clip", z_dim: int = 64, ch: int = 16, embed_dim: int = 128, resolution: int = 64):
        super().__init__()
        _check_kind(cond_kind)
        if resolution not in (16, 32, 64, 128):
            raise ValueError("resolution must be 16, 32, 64 or 128")
        self.cond_dim, self.cond_kind, self.z_dim, self.resolution = cond_dim, cond_kind, z_dim, resolution
        n_down = int(math.log2(resolution)) - 2  # down to 4x4
        chans = [min(ch * 2**i, 8 * ch) for i in range(n_down)]
        self.enc_embed = CondEmbed(cond_dim, embed_dim, cond_kind)
        self.dec_embed = CondEmbed(cond_dim, embed_dim, cond_kind)
        layers, cin = [], 3
        for c in chans:
            layers += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.LeakyReLU(0.2)]
            cin = c
        self.encoder = nn.Sequential(*layers)
        self.enc_out = nn.Linear(cin * 16 + embed_dim, 2 * z_dim)
        self.top_ch = cin
        self.dec_in = nn.Linear(z_dim + embed_dim, cin * 16)
        dec_chans = list(reversed(chans))
        self.dec_blocks = nn.ModuleList()
        for i in range(n_down):
            cout = dec_chans[i + 1] if i + 1 < n_down else ch
            self.dec_blocks.append(_FiLMUp(dec_chans[i], cout, embed_dim))
        self.to_rgb = nn.Conv2d(ch, 3, 3, padding=1)

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x).flatten(1)
        mu, logvar = self.enc_out(torch.cat([h, self.enc_embed(c)], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        e = self.dec_embed(c)
        x = F.leaky_relu(self.dec_in(torch.cat([z, e], dim=1)), 0.2).view(-1, self.top_ch, 4, 4)
        for blk in self.dec_blocks:
            x = blk(x, e)
        return torch.tanh(self.to_rgb(x))

    def forward(self, x: torch.Tensor, c: torch.Tensor):
        mu, logvar = self.encode(x, c)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z, c), mu, logvar

    @torch.no_grad()
    def sample(self, c: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        z = torch.randn(c.shape[0], self.z_dim, generator=generator, device=c.device) * temperature
        return self.decode(z, c)


# ---------------------------------------------------------------------------
# Conditional GAN
# ---------------------------------------------------------------------------


class _CondBN(nn.Module):
    """BatchNorm without affine parameters, then a per-sample scale/shift from a vector."""

    def __init__(self, ch: int, in_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(ch, affine=False)
        self.affine = nn.Linear(in_dim, 2 * ch)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(s).chunk(2, dim=1)
        return self.bn(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class CondGenerator(nn.Module):
    """DCGAN-style generator: [z, embed(c)] -> 4x4 -> (ConvTranspose x2, CondBN, ReLU)* -> RGB tanh."""

    def __init__(self, cond_dim: int, cond_kind: str = "clip", z_dim: int = 64, ch: int = 32, embed_dim: int = 128, resolution: int = 64):
        super().__init__()
        _check_kind(cond_kind)
        self.cond_dim, self.cond_kind, self.z_dim, self.resolution = cond_dim, cond_kind, z_dim, resolution
        n_up = int(math.log2(resolution)) - 2
        chans = [min(ch * 2 ** (n_up - 1 - i), 8 * ch) for i in range(n_up)]  # e.g. 256,128,64,32
        self.embed = CondEmbed(cond_dim, embed_dim, cond_kind)
        s_dim = z_dim + embed_dim
        self.fc = nn.Linear(s_dim, chans[0] * 16)
        self.bn0 = _CondBN(chans[0], s_dim)
        self.ups = nn.ModuleList()
        self.bns = nn.ModuleList()
        for i in range(n_up - 1):
            self.ups.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride=2, padding=1))
            self.bns.append(_CondBN(chans[i + 1], s_dim))
        self.to_rgb = nn.ConvTranspose2d(chans[-1], 3, 4, stride=2, padding=1)
        self.top_ch = chans[0]

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s = torch.cat([z, self.embed(c)], dim=1)
        x = F.relu(self.bn0(self.fc(s).view(-1, self.top_ch, 4, 4), s))
        for up, bn in zip(self.ups, self.bns):
            x = F.relu(bn(up(x), s))
        return torch.tanh(self.to_rgb(x))

    @torch.no_grad()
    def sample(self, c: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        z = torch.randn(c.shape[0], self.z_dim, generator=generator, device=c.device) * temperature
        return self(z, c)


class ProjectionDiscriminator(nn.Module):
    """Spectrally normalised conv net; logit = psi(h) + <W c_emb, h>."""

    def __init__(self, cond_dim: int, cond_kind: str = "clip", ch: int = 32, embed_dim: int = 128, feat_dim: int = 256, resolution: int = 64):
        super().__init__()
        _check_kind(cond_kind)
        self.cond_dim, self.cond_kind = cond_dim, cond_kind
        n_down = int(math.log2(resolution)) - 2
        layers, cin = [], 3
        for i in range(n_down):
            c = min(ch * 2**i, 8 * ch)
            layers += [spectral_norm(nn.Conv2d(cin, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.fc = spectral_norm(nn.Linear(cin * 16, feat_dim))
        self.psi = spectral_norm(nn.Linear(feat_dim, 1))
        self.embed = CondEmbed(cond_dim, embed_dim, cond_kind)
        self.proj = spectral_norm(nn.Linear(embed_dim, feat_dim, bias=False))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(self.convs(x).flatten(1)), 0.2)
        return (self.psi(h) + (self.proj(self.embed(c)) * h).sum(dim=1, keepdim=True)).squeeze(1)
