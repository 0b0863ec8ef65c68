"""Losses: flow NLL, ELBO, GAN losses and regularisers, the contrastive CLIP loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------
# Mappers p(w | e): conditional flow NLL, CVAE-mapper ELBO
# ---------------------------------------------------------------------------

_LOG_2PI = 1.8378770664093453  # log(2 pi)


def flow_nll(flow, w: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood -log p(w | e) of a conditional flow, nats per sample."""
    return -flow.log_prob(w, e).mean()


def elbo(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
         kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO of the CVAE mapper with a unit-variance Gaussian decoder.

    Returns batch means in nats per sample: ``recon`` = -log N(target; recon, I)
    (including the constant 0.5 * D * log(2 pi), so with ``kl_weight=1`` ``loss`` is an
    upper bound on -log p(target | e)), ``kl`` = KL(q(u | w, e) || N(0, I)) in closed form
    (:func:`gaussian_kl`), and ``loss`` = recon + kl_weight * kl, the quantity to minimise.
    """
    d = target.shape[-1]
    rec = 0.5 * (recon - target).pow(2).flatten(1).sum(dim=1) + 0.5 * d * _LOG_2PI
    kl = gaussian_kl(mu, logvar)
    return {"loss": (rec + kl_weight * kl).mean(), "recon": rec.mean(), "kl": kl.mean()}
