"""The paper's CVAE mapper: p(w | e) as a conditional VAE with latent u.

Encoder q(u | w, e) = N(mu, diag(exp(logvar))), decoder w = f(u, e), prior
p(u) = N(0, I). Trained with the (KL-weighted) ELBO in ``loss.elbo`` on
standardised w (buffers ``w_mean`` / ``w_std`` from the training pairs, as in the
flow). Sampling draws ``u ~ N(0, temperature^2 I)`` and decodes it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from network.flow import MapperBase, _noise

__all__ = ["CVAEMapper"]


def _mlp(d_in: int, hidden: int, depth: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class CVAEMapper(MapperBase):
    """Conditional VAE mapper from a CLIP embedding to w.

    Arguments (JSON-serialisable; ``CVAEMapper(**config)`` rebuilds it):
        w_dim, e_dim: sizes of w and of the CLIP embedding.
        latent_dim: size of the latent u.
        hidden, depth: width and number of hidden layers of encoder and decoder MLPs.
        context_dim, context_hidden: the embedding's context MLP (shared by both).
    """

    kind = "cvae-mapper"

    def __init__(
        self,
        w_dim: int,
        e_dim: int,
        latent_dim: int = 32,
        hidden: int = 512,
        depth: int = 3,
        context_dim: int = 128,
        context_hidden: int = 256,
    ) -> None:
        super().__init__()
        self._init_statistics(w_dim, e_dim, dict(
            w_dim=int(w_dim),
            e_dim=int(e_dim),
            latent_dim=int(latent_dim),
            hidden=int(hidden),
            depth=int(depth),
            context_dim=int(context_dim),
            context_hidden=int(context_hidden),
        ))
        self.latent_dim = int(latent_dim)
        self.context = _mlp(e_dim, context_hidden, 2, context_dim)
        self.encoder = _mlp(w_dim + context_dim, hidden, depth, 2 * latent_dim)
        self.decoder = _mlp(latent_dim + context_dim, hidden, depth, w_dim)

    def standardise(self, w: torch.Tensor) -> torch.Tensor:
        return (w - self.w_mean) / self.w_std

    def encode(self, w: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(u | w, e): returns (mu, logvar), each [N, latent_dim]."""
        h = self.encoder(torch.cat([self.standardise(w), self._ctx(e)], dim=-1))
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def _decode_ctx(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([u, c], dim=-1))  # standardised w

    def decode(self, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """w = f(u, e) in the generator's w space, [N, w_dim]."""
        return self._decode_ctx(u, self._ctx(e)) * self.w_std + self.w_mean

    def forward(self, w: torch.Tensor, e: torch.Tensor) -> dict[str, torch.Tensor]:
        """One reparameterised pass for training; everything in standardised w space.

        Returns ``recon``, ``target`` [N, w_dim] and ``mu``, ``logvar`` [N, latent_dim].
        """
        c = self._ctx(e)
        target = self.standardise(w)
        h = self.encoder(torch.cat([target, c], dim=-1))
        mu, logvar = h.chunk(2, dim=-1)
        logvar = logvar.clamp(-12.0, 8.0)
        u = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return {"recon": self._decode_ctx(u, c), "target": target, "mu": mu, "logvar": logvar}

    def sample(
        self,
        e: torch.Tensor,
        n: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` latents per embedding: e [B, e_dim] (or [e_dim]) -> w [B * n, w_dim],
        rows grouped by embedding (same contract as ``ConditionalFlow.sample``)."""
        if e.ndim == 1:
            e = e[None]
        c = self._ctx(e).repeat_interleave(int(n), dim=0)
        u = _noise(c.shape[0], self.latent_dim, generator, self.w_mean)
        return self._decode_ctx(u * float(temperature), c) * self.w_std + self.w_mean
