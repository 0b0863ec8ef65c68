"""Conditional normalizing flow: invertibility, exact log-determinant, density accuracy,
checkpoints, and the `train flow` command (resume, NaN guard)."""
from __future__ import annotations

import json
import math

import pytest
import torch

import loss
from network.flow import ConditionalFlow, Flow
from mapper_toys import E_DIM, W_DIM, conditional_gaussian, one_thread, true_nll, write_pairs
from torch_utils.misc import UserError
from torch_utils.persistence import load_checkpoint, save_checkpoint


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_thread()


def _random_flow(w_dim=16, e_dim=8, **kw):
    torch.manual_seed(0)
    f = ConditionalFlow(w_dim, e_dim, layers=4, hidden=32, context_dim=16, context_hidden=32, **kw)
    f.set_statistics(torch.randn(w_dim), torch.rand(w_dim) + 0.5, torch.randn(e_dim))
    with torch.no_grad():  # move the transforms away from their initialisation
        for p in f.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return f.eval()


def test_invertible():
    f = _random_flow()
    w = torch.randn(64, 16) * 2 + f.w_mean
    e = torch.randn(64, 8)
    with torch.no_grad():
        u, _ = f(w, e)
        w2 = f.inverse(u, e)
        assert (w2 - w).abs().max() < 1e-4
        u2 = torch.randn(64, 16)
        assert (f(f.inverse(u2, e), e)[0] - u2).abs().max() < 1e-4
        assert (u - (w - f.w_mean) / f.w_std).abs().max() > 0.1  # not the identity


@pytest.mark.parametrize("w_dim,bins", [(16, 8), (7, 5)])
def test_direct_spline_inverse_equals_zuko(w_dim, bins):
    """Sampling's direct coupling-spline inverse gives zuko's result bit for bit, including
    noise outside the spline's [-5, 5] interval (identity there), odd splits and other bin counts."""
    torch.manual_seed(1)
    f = ConditionalFlow(w_dim, 8, layers=3, hidden=32, bins=bins, context_dim=16, context_hidden=32, mask_seed=3)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        e = torch.randn(40, 8)
        u = torch.randn(40, w_dim) * torch.tensor([0.5, 2.0, 4.0, 8.0]).repeat_interleave(10)[:, None]
        c = f._ctx(e)
        ours, ref = f._inverse_ctx(u, c), f._inverse_ctx_zuko(u, c)
        assert torch.equal(ours, ref)
        assert (u.abs() > 5).any() and (ours - u * f.w_std - f.w_mean).abs().max() > 0.1  # both regimes, not the identity
        assert torch.equal(f.inverse(u, e), ref)
        # Masks loaded after a first call (another mask seed) are used, not the cached indices.
        other = ConditionalFlow(w_dim, 8, layers=3, hidden=32, bins=bins, context_dim=16, context_hidden=32, mask_seed=4).state_dict()
        assert sum(k.endswith("mask") for k in other) >= 3
        f.load_state_dict({k: (other[k] if k.endswith("mask") else v) for k, v in f.state_dict().items()})
        assert torch.equal(f._inverse_ctx(u, c), f._inverse_ctx_zuko(u, c))
        assert not torch.equal(f._inverse_ctx(u, c), ref)
        assert torch.equal(f.sample(e[:2], 3, 0.7, generator=torch.Generator().manual_seed(0)),
                           f._inverse_ctx_zuko(0.7 * torch.randn(6, w_dim, generator=torch.Generator().manual_seed(0)),
                                               f._ctx(e[:2]).repeat_interleave(3, dim=0)))


def test_log_det_matches_autograd_jacobian():
    f = _random_flow(w_dim=5, e_dim=3).double()
    e = torch.randn(3, 3, dtype=torch.float64)
    w = torch.randn(3, 5, dtype=torch.float64) * 1.5 + f.w_mean
    _, ladj = f(w, e)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda x: f(x[None], e[i : i + 1])[0][0], w[i])
        assert J.shape == (5, 5)
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(J)[1], atol=1e-6, rtol=1e-6)
    # log_prob is the base log-density plus that log-determinant
    u, _ = f(w, e)
    base = -0.5 * (u.pow(2).sum(-1) + 5 * math.log(2 * math.pi))
    torch.testing.assert_close(f.log_prob(w, e), base + ladj)


def test_sample_shapes_and_temperature():
    f = _random_flow()
    e = torch.randn(3, 8)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        w = f.sample(e, 5, generator=g)
        assert w.shape == (15, 16)
        w0 = f.sample(e, 4, temperature=0.0)
        assert torch.allclose(w0[0], w0[3]) and not torch.allclose(w0[0], w0[4])
        # rows are grouped per embedding: sampling e[1] alone reproduces rows 5..9
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        a = f.sample(e[1:2].repeat(3, 1), 1, generator=g1)
        b = f.sample(e[1], 3, generator=g2)
        torch.testing.assert_close(a, b)
        # the base noise of temperature-0.5 samples has standard deviation 0.5
        ws = f.sample(e[:1], 4000, temperature=0.5, generator=g)
        u, _ = f(ws, e[:1].expand(4000, -1))
        assert abs(u.std().item() - 0.5) < 0.02
    # e is L2-normalised inside: a rescaled embedding gives the same density
    w = torch.randn(4, 16)
    torch.testing.assert_close(f.log_prob(w, e[:1].expand(4, -1)), f.log_prob(w, 3 * e[:1].expand(4, -1)))


def test_checkpoint_roundtrip(tmp_path):
    f = _random_flow()
    cfg = json.loads(json.dumps(f.config))
    save_checkpoint(tmp_path / "f.safetensors", f.state_dict(), {"arch": cfg})
    state, config = load_checkpoint(tmp_path / "f.safetensors")
    g = Flow(**config["arch"])
    g.load_state_dict(state)
    w, e = torch.randn(5, 16), torch.randn(5, 8)
    torch.testing.assert_close(f.log_prob(w, e), g.eval().log_prob(w, e))


@pytest.fixture(scope="module")
def trained_flow():
    torch.manual_seed(0)
    w_tr, e_tr, _ = conditional_gaussian(20000, seed=1)
    f = ConditionalFlow(W_DIM, E_DIM, layers=4, hidden=32, context_dim=16, context_hidden=32)
    f.set_statistics(w_tr.mean(0), w_tr.std(0))
    opt = torch.optim.Adam(f.parameters(), lr=3e-3)
    steps = 300
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * i / steps))
        idx = torch.randint(len(w_tr), (256,))
        nll = loss.flow_nll(f, w_tr[idx], e_tr[idx])
        opt.zero_grad()
        nll.backward()
        opt.step()
    return f.eval()


def test_trained_flow_invertible(trained_flow):
    w, e, _ = conditional_gaussian(2000, seed=3)
    with torch.no_grad():
        u, _ = trained_flow(w, e)
        assert (trained_flow.inverse(u, e) - w).abs().max() < 1e-4
        assert abs(u.std().item() - 1.0) < 0.1  # data map to roughly standard normal noise


def test_fits_conditional_gaussian(trained_flow):
    """On a conditional Gaussian with known density, test NLL within 5% of the true NLL."""
    f = trained_flow
    w_te, e_te, s_te = conditional_gaussian(4000, seed=2)
    with torch.no_grad():
        flow_nll = loss.flow_nll(f, w_te, e_te).item()
        ref = true_nll(w_te, e_te, s_te).mean().item()
        shuffled = loss.flow_nll(f, w_te, e_te[torch.randperm(len(e_te))]).item()
    assert abs(flow_nll - ref) / abs(ref) < 0.05, (flow_nll, ref)
    assert shuffled > ref + 1.0  # the fit depends on the condition


# ---------------------------------------------------------------------------
# `python main.py train flow`
# ---------------------------------------------------------------------------

SMALL = ["--layers", "2", "--hidden", "16", "--context-dim", "8", "--batch-size", "64", "--eval-every", "20"]


def _train(pairs, out, steps, *extra):
    from main import main

    return main(["train", "flow", "--pairs", str(pairs), "--out", str(out), "--steps", str(steps), *SMALL, *extra])


def test_train_flow_cli_resume(tmp_path, monkeypatch):
    from model.mapper import load_mapper, check_mapper, state_path

    write_pairs(tmp_path / "pairs")
    ref = tmp_path / "ref.safetensors"
    assert _train(tmp_path / "pairs", ref, 40) == 0
    mapper = load_mapper(ref)
    cfg = mapper.checkpoint_config
    assert cfg["kind"] == "flow" and cfg["step"] == 40 and cfg["e_dim"] == E_DIM and cfg["w_dim"] == W_DIM
    assert cfg["clip"] == "toy-sphere" and math.isfinite(cfg["val"]["nll"])
    assert state_path(ref).is_file()
    assert mapper.sample(torch.randn(2, E_DIM), 3).shape == (6, W_DIM)

    # A run interrupted at step 30 keeps its step-20 checkpoint; --resume finishes it
    # and reproduces the uninterrupted run.
    out = tmp_path / "run.safetensors"
    real = loss.flow_nll
    calls = {"n": 0}

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 31:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loss, "flow_nll", interrupting)
    assert _train(tmp_path / "pairs", out, 40) == 130
    monkeypatch.setattr(loss, "flow_nll", real)
    assert load_mapper(out).checkpoint_config["step"] == 20
    assert _train(tmp_path / "pairs", out, 40, "--resume") == 0
    resumed = load_mapper(out)
    assert resumed.checkpoint_config["step"] == 40
    w, e = torch.randn(8, W_DIM), torch.randn(8, E_DIM)
    with torch.no_grad():
        torch.testing.assert_close(resumed.log_prob(w, e), mapper.log_prob(w, e), atol=1e-4, rtol=1e-4)
    # --resume beyond the end, or without state, is a clear error
    assert _train(tmp_path / "pairs", out, 40, "--resume") == 1
    assert _train(tmp_path / "pairs", tmp_path / "none.safetensors", 40, "--resume") == 1

    # size checks used by the pipelines
    check_mapper(mapper, e_dim=E_DIM, w_dim=W_DIM)
    with pytest.raises(UserError, match="CLIP embeddings of size 8 .* gives 512"):
        check_mapper(mapper, e_dim=512, path=ref)
    with pytest.raises(UserError, match="w_dim is 512"):
        check_mapper(mapper, w_dim=512, path=ref)


def test_train_flow_nan_stops_and_keeps_last_good(tmp_path, monkeypatch, capsys):
    from model.mapper import load_mapper

    write_pairs(tmp_path / "pairs")
    out = tmp_path / "f.safetensors"
    real = loss.flow_nll
    calls = {"n": 0}

    def nan_after_25(*a, **k):
        calls["n"] += 1
        v = real(*a, **k)
        return v * float("nan") if calls["n"] > 25 else v

    monkeypatch.setattr(loss, "flow_nll", nan_after_25)
    assert _train(tmp_path / "pairs", out, 60) == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 25" in err and "last good checkpoint" in err and "(step 20)" in err
    m = load_mapper(out)
    assert m.checkpoint_config["step"] == 20
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_train_bad_input(tmp_path):
    from main import main

    assert main(["train", "flow", "--pairs", str(tmp_path / "nope"), "--out", str(tmp_path / "f.safetensors")]) == 1
    write_pairs(tmp_path / "pairs")
    assert _train(tmp_path / "pairs", tmp_path / "f.safetensors", 10, "--noise-scale", "-1") == 1
    from model.mapper import load_mapper

    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        load_mapper(tmp_path / "junk.safetensors")


def test_modality_gap_helpers():
    from model.mapper import augment_embeddings, broadcast_w, modality_shift

    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(2000, 64, generator=g), dim=-1)
    torch.testing.assert_close(augment_embeddings(e, 0.0), e)
    a = augment_embeddings(e, 0.5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2000))
    # perturbation of norm ~0.5 before re-normalisation: cos(e, a) = 1 / sqrt(1 + 0.25) on average
    assert abs((a * e).sum(-1).mean().item() - 1 / math.sqrt(1.25)) < 0.02
    # the shift moves a cluster of text embeddings onto the image embeddings' mean direction
    img_mean = torch.nn.functional.normalize(torch.randn(64, generator=g), dim=0) * 0.8
    txt = torch.nn.functional.normalize(torch.randn(500, 64, generator=g) * 0.3 + 3 * torch.randn(64, generator=g), dim=-1)
    shifted = modality_shift(txt, txt.mean(0), img_mean)
    torch.testing.assert_close(shifted.norm(dim=-1), torch.ones(500))
    cos = torch.nn.functional.cosine_similarity(shifted.mean(0), img_mean, dim=0)
    assert cos > 0.99 and torch.nn.functional.cosine_similarity(txt.mean(0), img_mean, dim=0) < 0.5
    assert broadcast_w(torch.randn(3, 5), 7).shape == (3, 7, 5)
