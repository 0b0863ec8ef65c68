"""Shared toy data for the mapper tests: a conditional Gaussian with a known density."""
from __future__ import annotations

import torch
import torch.nn.functional as F

E_DIM, W_DIM = 8, 4


def _params():
    g = torch.Generator().manual_seed(1234)
    M = torch.randn(W_DIM, E_DIM, generator=g) * 2.0
    L = torch.tril(torch.randn(W_DIM, W_DIM, generator=g) * 0.3) + torch.diag(torch.tensor([1.0, 0.5, 0.8, 1.5]))
    return M, L


def conditional_gaussian(n: int, seed: int):
    """(w, e, s): e uniform on the sphere S^7, w | e ~ N(M e, s(e)^2 L L^T) with s(e) = 1 + e_0 / 2."""
    M, L = _params()
    g = torch.Generator().manual_seed(seed)
    e = F.normalize(torch.randn(n, E_DIM, generator=g), dim=-1)
    s = 1.0 + 0.5 * e[:, :1]
    w = e @ M.T + s * (torch.randn(n, W_DIM, generator=g) @ L.T)
    return w, e, s


def true_nll(w, e, s) -> torch.Tensor:
    M, L = _params()
    cov = (s[:, :, None] ** 2) * (L @ L.T)
    return -torch.distributions.MultivariateNormal(e @ M.T, covariance_matrix=cov).log_prob(w)


def write_pairs(root, n: int = 600, shard_size: int = 256, seed: int = 0) -> None:
    """A pairs directory of the toy (z is a placeholder copy of w)."""
    from dataset import pairs as pairs_ds

    w, e, _ = conditional_gaussian(n, seed)
    meta = {"format": "text2face-pairs-v1", "generator": "toy-gaussian", "clip": "toy-sphere", "seed": seed,
            "shard_size": shard_size, "z_dim": W_DIM, "w_dim": W_DIM, "e_dim": E_DIM, "n": n, "count": n}
    for k, start in enumerate(range(0, n, shard_size)):
        sl = slice(start, start + shard_size)
        pairs_ds.write_shard(root, k, {"z": w[sl], "w": w[sl], "e": e[sl]})
    pairs_ds.write_meta(root, meta)


def one_thread():
    """Generator for a pytest fixture: small-op CPU work runs far faster on one thread when
    the cores are shared (no oversubscription)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
