"""CLIP-guided latent optimisation (StyleCLIP-style "optimise w per prompt"): the slow reference.

For every requested image, several starting latents near ``w_avg`` are
optimised with Adam to maximise the cosine similarity between the CLIP
embedding of the rendered image and the CLIP embedding of the prompt, with an
L2 pull toward ``w_avg`` that keeps the latent in the region where the
generator makes faces. The start that ends with the best objective is kept.

    images = clip_opt_generate(G, clip_model, ["a smiling man"], n=4, seed=0, steps=100)
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Sequence

import torch
import torch.nn.functional as F

from model.clip_io import encode_text, preprocess_tensor
from torch_utils.misc import UserError


@contextmanager
def _frozen(*modules: torch.nn.Module):
    """Turn off parameter gradients for the duration, then restore the previous flags."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _clip_image_embed(clip_model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    x = preprocess_tensor(images, int(clip_model.visual.input_resolution))
    return F.normalize(clip_model.encode_image(x).float(), dim=-1)


def clip_opt_generate(
    G,
    clip_model: torch.nn.Module,
    prompts: Sequence[str] | None,
    n: int,
    seed: int = 0,
    steps: int = 100,
    lr: float = 0.03,
    l2_weight: float = 0.02,
    restarts: int = 2,
    init_psi: float = 0.7,
    wplus: bool = False,
    batch_size: int = 16,
    text_embeddings: torch.Tensor | None = None,
    progress: bool = True,
    return_info: bool = False,
):
    """Optimise StyleGAN2 latents so that CLIP finds the prompt in the rendered image.

    Args:
        G: a generator from ``model.load_generator`` (``mapping``, ``synthesis``, ``w_avg``).
        clip_model: a ``clip.model.CLIP`` (e.g. from ``model.clip_io.load_clip``).
        prompts: P prompts (or None when ``text_embeddings`` [P, D] is given).
        n: images per prompt.
        seed: seeds the random starts (start j of image i is the same for every prompt).
        steps: Adam steps per image.
        l2_weight: weight of mean((w - w_avg)^2), the pull toward the average latent.
        restarts: random starts per image; the one with the lowest final objective is kept.
        init_psi: starts are ``w_avg + init_psi * (mapping(z) - w_avg)``.
        wplus: optimise one w per synthesis layer (W+) instead of a single w (W).

    Returns images [P * n, 3, H, W] in [-1, 1], prompt-major; with ``return_info`` also a
    dict with ``sim_history`` (mean cosine similarity of the kept starts at every step,
    length steps + 1), ``final_similarity`` [P * n] and ``seconds_per_image``.
    """
    if n < 1:
        raise UserError("-n must be at least 1")
    if steps < 0:
        raise UserError("--steps must be >= 0")
    if restarts < 1:
        raise UserError("--restarts must be >= 1")
    device = G.w_avg.device
    if text_embeddings is None:
        if not prompts:
            raise UserError("clip-opt needs at least one prompt")
        t = encode_text(clip_model, list(prompts)).to(device)
    else:
        t = F.normalize(text_embeddings.float(), dim=-1).to(device)
    clip_dim = int(clip_model.text_projection.shape[1])
    if t.ndim != 2 or t.shape[1] != clip_dim:
        raise UserError(f"text embeddings must be [P, {clip_dim}] for this CLIP model, got {list(t.shape)}")
    P = t.shape[0]
    w_avg = G.w_avg.detach().float().to(device)

    # Starting latents: the same z for image i / restart r of every prompt.
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n * restarts, G.z_dim, generator=gen).to(device)
    with torch.no_grad():
        w0 = G.mapping(z, truncation_psi=1.0)[:, 0].float()
    w0 = w_avg + init_psi * (w0 - w_avg)  # [n*R, w_dim]
    # Jobs: (prompt p, image i, restart r), prompt-major.
    job_t = t.repeat_interleave(n * restarts, dim=0)  # [P*n*R, D]
    job_w = w0.repeat(P, 1)  # [P*n*R, w_dim]

    total = job_w.shape[0]
    final_w = torch.empty(total, G.num_ws, G.w_dim, device=device)
    final_obj = torch.empty(total, device=device)
    final_sim = torch.empty(total, device=device)
    hist = torch.zeros(steps + 1, total)
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=steps * ((total + batch_size - 1) // batch_size), desc="clip-opt", unit="step", disable=not progress, leave=False)
    with _frozen(G, clip_model):
        for s in range(0, total, batch_size):
            tt = job_t[s : s + batch_size]
            base = job_w[s : s + batch_size]
            if wplus:
                w = base[:, None, :].repeat(1, G.num_ws, 1).clone().requires_grad_(True)
            else:
                w = base.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)

            def objective():
                ws = w if wplus else w[:, None, :].expand(-1, G.num_ws, -1)
                img = G.synthesis(ws, noise_mode="const")
                sim = (_clip_image_embed(clip_model, img) * tt).sum(dim=1)
                pull = (ws - w_avg).pow(2).mean(dim=(1, 2))
                return -sim + l2_weight * pull, sim

            for k in range(steps + 1):
                obj, sim = objective()
                hist[k, s : s + len(tt)] = sim.detach().cpu()
                if k == steps:
                    break
                opt.zero_grad(set_to_none=True)
                obj.sum().backward()
                opt.step()
                bar.update(1)
            with torch.no_grad():
                final_w[s : s + len(tt)] = w if wplus else w[:, None, :].expand(-1, G.num_ws, -1)
                final_obj[s : s + len(tt)] = obj.detach()
                final_sim[s : s + len(tt)] = sim.detach()
    bar.close()

    # Keep the best restart per (prompt, image).
    best = final_obj.view(P * n, restarts).argmin(dim=1)
    idx = torch.arange(P * n, device=device) * restarts + best
    with torch.no_grad():
        images = torch.cat([G.synthesis(final_w[idx[i : i + batch_size]], noise_mode="const") for i in range(0, len(idx), batch_size)])
    images = images.float().clamp(-1, 1)
    elapsed = time.perf_counter() - t0
    if not return_info:
        return images
    info = {
        "sim_history": hist[:, idx.cpu()].mean(dim=1).tolist(),
        "final_similarity": final_sim[idx].cpu(),
        "seconds_per_image": elapsed / (P * n),
        "steps": steps,
        "restarts": restarts,
        "wplus": wplus,
    }
    return images, info
