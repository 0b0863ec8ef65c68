"""Conditional normalizing flow p(w | e) on StyleGAN2's intermediate latent w.

The flow is a stack of coupling layers (zuko's ``GeneralCouplingTransform`` with
monotonic rational-quadratic spline transforms, Durkan et al. 2019). Each layer
leaves a fixed random half of the features unchanged and transforms the other half
with a spline whose parameters come from an MLP of the unchanged half and a context
vector. The context is a small MLP of the CLIP embedding ``e`` (L2-normalised here, always),
computed once per call and shared by all layers.

Coupling layers invert in one pass (no autoregressive loop), so sampling costs one
MLP evaluation per layer; that keeps the mapper negligible next to the generator.

``w`` is standardised with the mean and standard deviation of the training pairs
(buffers ``w_mean`` / ``w_std``); ``log_prob`` includes the Jacobian of that
standardisation, so it is the exact log-density of ``w`` itself (nats).

Directions:  ``forward(w, e) -> (u, log|det du/dw|)`` maps a latent to base noise
(for analysis), ``inverse(u, e) -> w`` maps noise back, ``sample`` draws
``u ~ N(0, temperature^2 I)`` and returns ``inverse(u, e)``.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from zuko.flows.coupling import GeneralCouplingTransform
from zuko.transforms import MonotonicRQSTransform

__all__ = ["ConditionalFlow", "Flow", "ContextNet"]


class ContextNet(nn.Module):
    """Small MLP from a CLIP embedding to the flow's context vector."""

    def __init__(self, e_dim: int, context_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(e_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, context_dim),
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


class MapperBase(nn.Module):
    """What every mapper p(w | e) shares: its JSON config, the standardisation of w, the mean
    training image embedding (for the inference-time modality shift) and the context network
    on the L2-normalised embedding (``self.context``, made by the subclass)."""

    kind = "mapper"
    context: nn.Module

    def _init_statistics(self, w_dim: int, e_dim: int, config: dict[str, Any]) -> None:
        self._config = dict(config)
        self.w_dim, self.e_dim = int(w_dim), int(e_dim)
        self.register_buffer("w_mean", torch.zeros(w_dim))
        self.register_buffer("w_std", torch.ones(w_dim))
        # Mean image embedding of the training pairs (un-normalised mean of unit
        # vectors), for the inference-time modality shift.
        self.register_buffer("e_image_mean", torch.zeros(e_dim))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @torch.no_grad()
    def set_statistics(self, w_mean: torch.Tensor, w_std: torch.Tensor, e_image_mean: torch.Tensor | None = None) -> None:
        """Store the standardisation of w (and the mean image embedding) of the training pairs."""
        self.w_mean.copy_(w_mean.reshape(-1))
        self.w_std.copy_(w_std.reshape(-1).clamp_min(1e-6))
        if e_image_mean is not None:
            self.e_image_mean.copy_(e_image_mean.reshape(-1))

    def _ctx(self, e: torch.Tensor) -> torch.Tensor:
        if e.shape[-1] != self.e_dim:
            raise ValueError(f"embedding size {e.shape[-1]} != {self.kind} e_dim {self.e_dim}")
        return self.context(F.normalize(e.to(self.w_mean.dtype), dim=-1))


class ConditionalFlow(MapperBase):
    """Conditional normalizing flow on ``w`` given a CLIP embedding ``e``.

    Arguments (all JSON-serialisable, see :attr:`config`; ``ConditionalFlow(**config)``
    rebuilds the same architecture):
        w_dim: size of w (512 for FFHQ StyleGAN2).
        e_dim: size of the CLIP embedding (512 for ViT-B/32).
        layers: number of coupling layers.
        hidden: width of each layer's conditioner MLP.
        depth: number of hidden layers in each conditioner MLP.
        bins: number of spline bins.
        context_dim: size of the context vector fed to every layer.
        context_hidden: width of the context MLP.
        mask_seed: seed of the random coupling masks (stored as buffers too).
    """

    kind = "flow"

    def __init__(
        self,
        w_dim: int,
        e_dim: int,
        layers: int = 8,
        hidden: int = 256,
        depth: int = 2,
        bins: int = 8,
        context_dim: int = 128,
        context_hidden: int = 256,
        mask_seed: int = 0,
    ) -> None:
        super().__init__()
        if w_dim < 2:
            raise ValueError("w_dim must be at least 2 for coupling layers")
        self._init_statistics(w_dim, e_dim, dict(
            w_dim=int(w_dim),
            e_dim=int(e_dim),
            layers=int(layers),
            hidden=int(hidden),
            depth=int(depth),
            bins=int(bins),
            context_dim=int(context_dim),
            context_hidden=int(context_hidden),
            mask_seed=int(mask_seed),
        ))
        self.context = ContextNet(e_dim, context_dim, context_hidden)
        g = torch.Generator().manual_seed(int(mask_seed))
        transforms = []
        for i in range(layers):
            # Alternate complementary halves so every feature is transformed every two
            # layers; a fresh random split every other layer mixes the features.
            if i % 2 == 0:
                mask = torch.zeros(w_dim, dtype=torch.bool)
                mask[torch.randperm(w_dim, generator=g)[: w_dim // 2]] = True
            else:
                mask = ~transforms[-1].mask
            transforms.append(
                GeneralCouplingTransform(
                    w_dim,
                    context_dim,
                    mask=mask,
                    univariate=partial(MonotonicRQSTransform, slope=1e-3),
                    shapes=[(bins,), (bins,), (bins - 1,)],
                    hidden_features=(hidden,) * depth,
                    activation=nn.SiLU,
                )
            )
        self.transforms = nn.ModuleList(transforms)

    # -- transforms -------------------------------------------------------------------
    def forward(self, w: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w [N, w_dim], e [N, e_dim] -> (u [N, w_dim] base noise, log|det du/dw| [N])."""
        return self._forward_ctx(w, self._ctx(e))

    def _forward_ctx(self, w: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (w - self.w_mean) / self.w_std
        ladj = (-torch.log(self.w_std).sum()).expand(x.shape[0]).clone()
        for t in self.transforms:
            x, l = t(c).call_and_ladj(x)
            ladj = ladj + l
        return x, ladj

    def inverse(self, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Base noise u [N, w_dim] and e [N, e_dim] -> w [N, w_dim]."""
        return self._inverse_ctx(u, self._ctx(e))

    def _inverse_ctx(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self._inverse_layers(u, c, [_coupling_indices(t) for t in self.transforms])

    def _inverse_layers(self, u: torch.Tensor, c: torch.Tensor, indices: list) -> torch.Tensor:
        """The inverse given each layer's feature indices: tensor arithmetic only, so that
        ``torch.compile`` (``model/accel.py``) captures it as one graph."""
        x = u
        for t, idx in zip(reversed(self.transforms), reversed(indices)):
            x = _coupling_rqs_inverse(t, x, c, idx)
        return x * self.w_std + self.w_mean

    def _inverse_ctx_zuko(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The same inverse through zuko's transform objects (the reference for the tests)."""
        x = u
        for t in reversed(self.transforms):
            x = t(c).inv(x)
        return x * self.w_std + self.w_mean

    def log_prob(self, w: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Exact log p(w | e) in nats, [N]."""
        u, ladj = self.forward(w, e)
        base = -0.5 * (u.square().sum(-1) + self.w_dim * math.log(2 * math.pi))
        return base + ladj

    def sample(
        self,
        e: torch.Tensor,
        n: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` latents per embedding: e [B, e_dim] (or [e_dim]) -> w [B * n, w_dim].

        Rows are grouped by embedding: rows ``b*n .. b*n+n-1`` belong to ``e[b]``.
        The base noise is ``temperature * N(0, I)`` (temperature 0 gives the mode of the
        base pushed through the flow).
        """
        e = _as_batch(e)
        c = self._ctx(e).repeat_interleave(int(n), dim=0)
        u = _noise(c.shape[0], self.w_dim, generator, self.w_mean)
        return self._inverse_ctx(u * float(temperature), c)


def _coupling_rqs_inverse(t: GeneralCouplingTransform, y: torch.Tensor, c: torch.Tensor, indices: tuple) -> torch.Tensor:
    """``t(c).inv(y)`` for a coupling layer with monotonic rational-quadratic splines, computed directly.

    zuko builds a coupling transform, a dependent transform and a spline object per call and
    computes each spline quantity separately; at the sizes of a mapper (16 latents of 128) those
    few hundred small tensor operations cost several times the layer's matrix products. Here the
    same arithmetic, in the same order (so the result is identical to zuko's, bit for bit; see
    tests/test_flow.py), runs on stacked tensors: the width and height parameters together, one
    gather for the six bin quantities, the kept half and the transformed half merged by one
    index. Sampling (``sample``, ``inverse``) goes through here; ``forward`` / ``log_prob`` (training) use zuko.
    ``indices``: the layer's ``_coupling_indices``.
    """
    idx_a, idx_b, inv_perm = indices
    kw = getattr(t.univariate, "keywords", {}) or {}
    bound, log_slope = float(kw.get("bound", 5.0)), math.log(float(kw.get("slope", 1e-3)))
    y_a, y_b = y.index_select(-1, idx_a), y.index_select(-1, idx_b)
    phi = t.hyper(torch.cat((y_a, c.expand(y.shape[0], -1)), dim=-1)).unflatten(-1, (idx_b.numel(), t.total))
    K = int(t.shapes[0][0])
    # zuko's MonotonicRQSTransform.__init__: squashed widths / heights -> softmax -> knots;
    # squashed derivatives -> exp, with slope 1 at both ends.
    wh = phi[..., : 2 * K].unflatten(-1, (2, K))
    wh = wh / (1 + abs(2 * wh / log_slope))
    wh = F.pad(F.softmax(wh, dim=-1), (1, 0), value=0)
    knots = bound * (2 * torch.cumsum(wh, dim=-1) - 1)  # [N, F, 2, K + 1]: horizontal, vertical
    d = phi[..., 2 * K :]
    d = d / (1 + abs(d / log_slope))
    d = torch.exp(F.pad(d, (1, 1), value=0))
    table = torch.cat((knots, d.unsqueeze(-2)), dim=-2)  # [N, F, 3, K + 1]
    # zuko's _inverse: the bin of y among the vertical knots, then the quadratic's stable root.
    # zuko counts the knots below y (sum of a comparison); searchsorted gives the same count.
    k = torch.searchsorted(knots[..., 1, :].contiguous(), y_b.unsqueeze(-1)).squeeze(-1) - 1
    mask = torch.logical_and(0 <= k, k < K)
    k = k % K
    k01 = torch.stack((k, k + 1), dim=-1).unsqueeze(-2).expand(*k.shape, 3, 2)
    x0, x1, y0, y1, d0, d1 = torch.gather(table, -1, k01).flatten(-2).unbind(-1)
    dy = y1 - y0
    s = dy / (x1 - x0)
    y_ = mask * (y_b - y0)
    slope_sum = d0 + d1 - 2 * s
    a = dy * (s - d0) + y_ * slope_sum
    b = dy * d0 - y_ * slope_sum
    cq = -s * y_
    z = 2 * cq / (-b - (b**2 - 4 * a * cq).sqrt())
    x_b = torch.where(mask, x0 + z * (x1 - x0), y_b)
    return torch.cat((y_a, x_b), dim=-1).index_select(-1, inv_perm)


def _coupling_indices(t: GeneralCouplingTransform) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(kept features, transformed features, the permutation that puts [kept, transformed] back in place)."""
    # Cached per mask tensor and version: loading a state dict or moving the module replaces or
    # bumps the mask, which recomputes the indices.
    key = (t.mask.data_ptr(), t.mask._version, t.mask.device)
    cache = getattr(t, "_rqs_index_cache", None)
    if cache is None or cache[0] != key:
        idx_a = t.mask.nonzero().squeeze(-1)
        idx_b = (~t.mask).nonzero().squeeze(-1)
        cache = (key, (idx_a, idx_b, torch.argsort(torch.cat((idx_a, idx_b)))))
        t._rqs_index_cache = cache
    return cache[1]


def _noise(n: int, d: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise [n, d] on ``like``'s device, drawn on the generator's own device if one is given."""
    dev = generator.device if generator is not None else like.device
    return torch.randn(n, d, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def _as_batch(e: torch.Tensor) -> torch.Tensor:
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2:
        raise ValueError(f"expected embeddings [B, D], got {tuple(e.shape)}")
    return e


Flow = ConditionalFlow
