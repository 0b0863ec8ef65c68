"""Evaluation metrics for text-to-face methods (pure functions on tensors / arrays).

- ``frechet_distance``: Fréchet distance between two feature sets modelled as Gaussians,
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``, with ``scipy.linalg.sqrtm`` (float64).
- ``clip_score``: 100 x mean cosine of each image embedding and its prompt's text embedding.
- ``r_precision``: how often an image's own prompt ranks first among it and ``k`` other prompts.
- ``diversity``: mean pairwise L2 distance among the (unit-norm) features of one prompt's samples.
- ``attribute_accuracy``: fraction of prompted attributes (present or absent as asked) found
  by the classifier, overall and per attribute.
- ``unprompted_entropy``: for attributes a prompt did not mention, the binary entropy of the
  classifier's positive rate on the generated images, relative to the data's.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _np64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    f = _np64(feats)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance_from_stats(mu1, s1, mu2, s2) -> float:
    """Fréchet distance between N(mu1, s1) and N(mu2, s2)."""
    from scipy import linalg

    mu1, mu2, s1, s2 = _np64(mu1), _np64(mu2), np.atleast_2d(_np64(s1)), np.atleast_2d(_np64(s2))
    diff = mu1 - mu2
    with np.errstate(all="ignore"):
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # Singular product (few samples): regularise both covariances slightly.
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean), 0.0))


def frechet_distance(feats1, feats2) -> float:
    """Fréchet distance between two feature sets [N1, D] and [N2, D]."""
    mu1, s1 = feature_stats(feats1)
    mu2, s2 = feature_stats(feats2)
    return frechet_distance_from_stats(mu1, s1, mu2, s2)


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """100 x mean cosine of row-paired image and text embeddings [N, D]."""
    cos = (F.normalize(image_emb.float(), dim=-1) * F.normalize(text_emb.float(), dim=-1)).sum(-1)
    return float(100.0 * cos.mean())


def r_precision(
    image_emb: torch.Tensor,
    prompt_index: Sequence[int] | torch.Tensor,
    prompt_emb: torch.Tensor,
    k: int = 99,
    seed: int = 0,
    prompt_texts: Sequence[str] | None = None,
) -> float:
    """Fraction of images whose own prompt scores highest among it and ``k`` other prompts.

    ``image_emb`` [N, D]; ``prompt_index`` [N]: row of each image's prompt in ``prompt_emb``
    [P, D]. The ``k`` distractors are drawn (seeded) from the other prompts; prompts with the
    same text as the image's own are never distractors. With fewer than ``k`` others, all are used.
    Ties count as failures.
    """
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(prompt_emb.float(), dim=-1)
    idx = torch.as_tensor(prompt_index, dtype=torch.long)
    P = txt.shape[0]
    rng = np.random.default_rng(seed)
    sims = img @ txt.T  # [N, P]
    hits = 0
    for i in range(len(img)):
        own = int(idx[i])
        others = np.array([j for j in range(P) if j != own and (prompt_texts is None or prompt_texts[j] != prompt_texts[own])])
        if len(others) > k:
            others = rng.choice(others, size=k, replace=False)
        s_own = sims[i, own]
        if len(others) == 0 or bool((sims[i, torch.from_numpy(others)] < s_own).all()):
            hits += 1
    return hits / max(len(img), 1)


def diversity(features: torch.Tensor, groups: Sequence[int] | torch.Tensor) -> float:
    """Mean over groups (prompts) of the mean pairwise L2 distance between unit-norm features."""
    f = F.normalize(features.float(), dim=-1)
    g = torch.as_tensor(groups)
    vals = []
    for gid in torch.unique(g):
        x = f[g == gid]
        if len(x) < 2:
            continue
        d = torch.cdist(x[None].double(), x[None].double())[0]
        m = len(x)
        vals.append(float(d.sum() / (m * (m - 1))))
    return float(np.mean(vals)) if vals else float("nan")


def attribute_accuracy(
    probs: torch.Tensor,
    prompted: Sequence[dict[str, int]],
    attr_names: Sequence[str],
    mask: Sequence[bool] | torch.Tensor | None = None,
    threshold: float = 0.5,
) -> dict:
    """Fraction of prompted attributes that the classifier finds (present or absent as asked).

    ``probs`` [N, 40] classifier probabilities of the N images; ``prompted`` [N] the attribute
    dict of each image's prompt. Attributes outside ``mask`` (the ones the classifier was not
    trained on) are not scored and are counted in ``unscored``.
    Returns ``{"accuracy", "per_attribute": {name: acc}, "counts": {name: n}, "scored", "unscored"}``.
    """
    names = list(attr_names)
    mask_t = torch.ones(len(names), dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    pred = probs > threshold
    correct: dict[str, int] = {}
    count: dict[str, int] = {}
    unscored = 0
    for i, attrs in enumerate(prompted):
        for k, v in attrs.items():
            j = names.index(k)
            if not bool(mask_t[j]):
                unscored += 1
                continue
            ok = bool(pred[i, j]) == (v > 0)
            correct[k] = correct.get(k, 0) + int(ok)
            count[k] = count.get(k, 0) + 1
    scored = sum(count.values())
    return {
        "accuracy": sum(correct.values()) / scored if scored else float("nan"),
        "per_attribute": {k: correct[k] / count[k] for k in sorted(count)},
        "counts": {k: count[k] for k in sorted(count)},
        "scored": scored,
        "unscored": unscored,
    }


def binary_entropy(p: float) -> float:
    p = min(max(float(p), 0.0), 1.0)
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def unprompted_entropy(
    probs: torch.Tensor,
    prompted: Sequence[dict[str, int]],
    attr_names: Sequence[str],
    data_rates: dict[str, float],
    threshold: float = 0.5,
) -> dict:
    """How much the attributes a prompt did not mention keep varying.

    For each attribute in ``data_rates`` (its positive rate in real data), over the images whose
    prompt does not name it: H(positive rate of the classifier's decisions) / H(data rate).
    1 = varies as in the data; 0 = collapsed to one value. Returns the per-attribute ratios and
    their mean (attributes whose data entropy is ~0 are left out).
    """
    names = list(attr_names)
    pred = (probs > threshold).float()
    ratios: dict[str, float] = {}
    for name, rate in data_rates.items():
        h_data = binary_entropy(rate)
        if h_data < 1e-3:
            continue
        j = names.index(name)
        rows = [i for i, a in enumerate(prompted) if name not in a]
        if not rows:
            continue
        p = float(pred[rows, j].mean())
        ratios[name] = binary_entropy(p) / h_data
    return {"mean": float(np.mean(list(ratios.values()))) if ratios else float("nan"), "per_attribute": ratios}
