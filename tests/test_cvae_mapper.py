"""CVAE mapper: closed-form KL, ELBO, training improves the ELBO on the toy, the CLI."""
from __future__ import annotations

import math

import pytest
import torch

import loss
from mapper_toys import E_DIM, W_DIM, conditional_gaussian, one_thread, true_nll, write_pairs
from network.cvae_mapper import CVAEMapper


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_thread()


def test_gaussian_kl_closed_form():
    mu = torch.tensor([[1.0, 2.0]])
    logvar = torch.log(torch.tensor([[4.0, 0.25]]))
    # 0.5 * sum(sigma^2 + mu^2 - 1 - log sigma^2) = 0.5 * ((4 + 1 - 1 - log 4) + (0.25 + 4 - 1 + log 4)) = 3.625
    torch.testing.assert_close(loss.gaussian_kl(mu, logvar), torch.tensor([3.625]))
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    torch.testing.assert_close(loss.gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(-1))
    assert loss.gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max() == 0


def test_elbo_terms():
    recon, target = torch.zeros(2, 3), torch.ones(2, 3)
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    t = loss.elbo(recon, target, mu, logvar, kl_weight=0.5)
    torch.testing.assert_close(t["recon"], torch.tensor(1.5 + 1.5 * math.log(2 * math.pi)))
    assert float(t["kl"]) == 0.0
    mu = torch.ones(2, 4)
    t = loss.elbo(recon, target, mu, logvar, kl_weight=0.5)
    torch.testing.assert_close(t["loss"], t["recon"] + 0.5 * t["kl"])
    torch.testing.assert_close(t["kl"], torch.tensor(2.0))


def _val_nelbo(m, w, e):
    from model.mapper import evaluate

    return evaluate("cvae-mapper", m, w, e)["nelbo"]


def test_cvae_mapper_elbo_improves_on_toy():
    torch.manual_seed(0)
    w_tr, e_tr, _ = conditional_gaussian(20000, seed=1)
    w_te, e_te, s_te = conditional_gaussian(2000, seed=2)
    m = CVAEMapper(W_DIM, E_DIM, latent_dim=4, hidden=64, depth=2, context_dim=16, context_hidden=32)
    m.set_statistics(w_tr.mean(0), w_tr.std(0), e_tr.mean(0))
    before = _val_nelbo(m, w_te, e_te)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    for i in range(300):
        idx = torch.randint(len(w_tr), (256,))
        out = m(w_tr[idx], e_tr[idx])
        t = loss.elbo(out["recon"], out["target"], out["mu"], out["logvar"], kl_weight=min(1.0, (i + 1) / 100))
        opt.zero_grad()
        t["loss"].backward()
        opt.step()
    after = _val_nelbo(m, w_te, e_te)
    ref = true_nll(w_te, e_te, s_te).mean().item()
    shuffled = _val_nelbo(m, w_te, e_te[torch.randperm(len(e_te))])
    assert after < before - 1.0, (before, after)
    assert after > ref - 0.05  # a bound: never (meaningfully) below the true NLL
    assert shuffled > after + 1.0  # uses the condition
    with torch.no_grad():
        ws = m.sample(e_te[:2], 5)
        assert ws.shape == (10, W_DIM)
        w0 = m.sample(e_te[:2], 3, temperature=0.0)
        assert torch.allclose(w0[0], w0[2]) and not torch.allclose(w0[0], w0[3])
        # samples follow the conditional mean
        many = m.sample(e_te[:1], 4000)
    mean_err = (many.mean(0) - conditional_gaussian_mean(e_te[:1])).abs().max().item()
    assert mean_err < 0.5


def conditional_gaussian_mean(e):
    from mapper_toys import _params

    M, _ = _params()
    return (e @ M.T)[0]


def test_train_cvae_mapper_cli(tmp_path):
    from main import main
    from model.mapper import load_mapper

    write_pairs(tmp_path / "pairs")
    out = tmp_path / "c.safetensors"
    args = ["train", "cvae-mapper", "--pairs", str(tmp_path / "pairs"), "--out", str(out), "--latent-dim", "4",
            "--hidden", "32", "--batch-size", "64", "--eval-every", "20", "--noise-scale", "0.2", "--modality-shift"]
    assert main(args + ["--steps", "20"]) == 0
    m = load_mapper(out)
    assert m.kind == "cvae-mapper" and m.checkpoint_config["step"] == 20
    assert m.checkpoint_config["train"]["noise_scale"] == 0.2
    assert m.checkpoint_config["inference"]["modality_shift"] is True
    assert main(args + ["--steps", "40", "--resume"]) == 0
    m = load_mapper(out)
    assert m.checkpoint_config["step"] == 40 and math.isfinite(m.checkpoint_config["val"]["nelbo"])
    assert m.sample(torch.randn(E_DIM), 2).shape == (2, W_DIM)
    # e_image_mean is the mean training image embedding, for the modality shift
    assert m.e_image_mean.shape == (E_DIM,) and 0 < m.e_image_mean.norm() < 1
