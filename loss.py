"""Losses: flow NLL, ELBO, GAN losses and regularisers, the contrastive CLIP loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------
# Baselines: image CVAE (ELBO) and conditional GAN (hinge / non-saturating, R1)
# ---------------------------------------------------------------------------


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per sample, summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def kl_warmup(step: int, warmup_steps: int) -> float:
    """Linear KL warm-up factor in [0, 1]: 0 at step 0, 1 from ``warmup_steps`` on."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def image_elbo(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
               kl_weight: float = 1.0, sigma: float = 0.1) -> dict[str, torch.Tensor]:
    """Negative ELBO of an image VAE with a Gaussian likelihood of fixed std ``sigma``.

    Returns per-batch means (nats per image): ``recon`` = -log p(x | z) up to the
    constant ``D * log(sigma * sqrt(2 pi))``, ``kl``, and ``loss`` = recon + kl_weight * kl
    (the quantity to minimise; kl_weight < 1 during warm-up or for a beta-VAE).
    """
    rec = (recon - x).pow(2).flatten(1).sum(dim=1) / (2 * sigma**2)
    kl = gaussian_kl(mu, logvar)
    return {"loss": (rec + kl_weight * kl).mean(), "recon": rec.mean(), "kl": kl.mean()}


def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Discriminator loss: ``hinge`` (mean relu(1 - D(real)) + relu(1 + D(fake))) or ``nonsat`` (logistic)."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "nonsat":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def gan_g_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Generator loss: ``hinge`` (-mean D(fake)) or ``nonsat`` (mean softplus(-D(fake)))."""
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nonsat":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 regulariser: mean over the batch of ||d D(x) / d x||^2 on real images.

    ``real_images`` must have ``requires_grad=True`` when the logits were computed.
    Multiply by gamma / 2 in the caller.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


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


# ---------------------------------------------------------------------------
# Contrastive CLIP loss (toy CLIP training)
# ---------------------------------------------------------------------------


def clip_contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float,
                          negative_text_emb: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE loss of CLIP over a batch of matching (image, text) pairs.

    ``image_emb`` and ``text_emb`` are [N, D] (normalised here); pair i is (image i, text i)
    and every other text / image in the batch is a negative. ``logit_scale`` is the
    log-temperature parameter (the similarity is multiplied by ``exp(logit_scale)``).
    ``negative_text_emb`` [M, D], optional: texts that describe no image of the batch (hard
    negatives, e.g. captions naming an attribute their face lacks); they are extra columns of
    every image's image->text softmax and have no text->image term.
    Returns the mean of the image->text and text->image cross-entropies (nats).
    """
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"expected two [N, D] embeddings of the same shape, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    if negative_text_emb is not None and (negative_text_emb.ndim != 2 or negative_text_emb.shape[1] != text_emb.shape[1]):
        raise ValueError(f"expected negative texts [M, {text_emb.shape[1]}], got {tuple(negative_text_emb.shape)}")
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(text_emb.float(), dim=-1)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=img.device).exp()
    logits = scale * img @ txt.t()
    target = torch.arange(len(img), device=img.device)
    i2t = logits
    if negative_text_emb is not None and len(negative_text_emb):
        neg = F.normalize(negative_text_emb.float(), dim=-1)
        i2t = torch.cat([logits, scale * img @ neg.t()], dim=1)
    return 0.5 * (F.cross_entropy(i2t, target) + F.cross_entropy(logits.t(), target))


# ---------------------------------------------------------------------------
# StyleGAN2 training: non-saturating logistic loss, lazy R1, path-length regulariser
# ---------------------------------------------------------------------------


def stylegan2_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic generator loss: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits.float()).mean()


def stylegan2_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss: mean softplus(D(G(z))) + mean softplus(-D(x))."""
    return F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()


def stylegan2_r1(D, real_images: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """R1 penalty per real image, ||d D(x) / d x||^2, and the logits D(x).

    Differentiable (``create_graph``), so ``(gamma / 2 * penalty.mean() * interval).backward()``
    trains D; a discriminator whose output does not depend on its input gets exactly 0.
    """
    x = real_images.detach().requires_grad_(True)
    logits = D(x) if c is None else D(x, c)
    (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True, allow_unused=True)
    if grad is None:
        return torch.zeros(len(x), device=x.device), logits
    return grad.float().square().flatten(1).sum(dim=1), logits


def path_length_penalty(synthesis, ws: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01,
                        noise_mode: str = "random") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regulariser.

    For a random image-space direction y ~ N(0, I / (H W)), the length ``a = ||J_w^T y||``
    (J_w: Jacobian of the image with respect to w, averaged over the num_ws copies) should be
    the same for every w. Returns ``(penalty, new_pl_mean, lengths)``: per-sample
    ``(a - pl_mean')^2`` where ``pl_mean'`` is the running mean of ``a`` moved by ``decay``
    toward this batch's mean (detached; keep it for the next call).
    ``synthesis(ws, noise_mode=...)`` maps ws [N, num_ws, w_dim] to images [N, C, H, W].
    """
    if not ws.requires_grad:
        ws = ws.detach().requires_grad_(True)
    img = synthesis(ws, noise_mode=noise_mode)
    h, w = img.shape[2], img.shape[3]
    y = torch.randn_like(img) / float(h * w) ** 0.5
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = grad.float().square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    return (lengths - new_mean).square(), new_mean, lengths
