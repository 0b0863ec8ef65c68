"""StyleGAN2 training: discriminator, losses and regularisers, a few training steps, exact resume, NaN stop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import loss as losses
from model import load_generator
from model.train_stylegan import STATE_FILE, NonFiniteLoss, StyleGANTrainConfig, train_stylegan
from network.stylegan2_d import Discriminator, MinibatchStdLayer
from torch_utils.persistence import load_training_state

TINY = dict(res=16, batch_size=4, cbase=128, cmax=16, map_layers=2, z_dim=16, w_dim=16, grid_size=8, progress=False)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Twelve 24x24 pictures (resized to 16x16 by the loader): coloured squares on noise."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(12):
        a = rng.integers(0, 80, (24, 24, 3), dtype=np.uint8)
        a[6:18, 6:18] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(a).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one thread is faster than two on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(data, out, **kw) -> StyleGANTrainConfig:
    args = dict(TINY)
    args.update(kw)
    return StyleGANTrainConfig(data=str(data), out=str(out), **args)


# ---------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------


def test_discriminator_any_resolution_and_conditioning():
    torch.manual_seed(0)
    for res in (4, 8, 32):
        D = Discriminator(img_resolution=res, channel_base=256, channel_max=32)
        out = D(torch.randn(4, 3, res, res))
        assert out.shape == (4, 1) and torch.isfinite(out).all()
        assert Discriminator(**D.init_kwargs).state_dict().keys() == D.state_dict().keys()
    D = Discriminator(img_resolution=16, c_dim=5, channel_base=256, channel_max=32)
    c = torch.eye(5)[:4]
    assert D(torch.randn(4, 3, 16, 16), c).shape == (4, 1)
    with pytest.raises(ValueError):
        D(torch.randn(4, 3, 16, 16))
    with pytest.raises(ValueError):
        D(torch.randn(4, 3, 8, 8), c)
    names = set(dict(Discriminator(img_resolution=16, channel_base=256, channel_max=32).named_parameters()))
    assert {"b16.fromrgb.weight", "b16.conv0.weight", "b16.conv1.weight", "b16.skip.weight", "b8.conv1.bias",
            "b4.conv.weight", "b4.fc.weight", "b4.out.weight"} <= names


def test_minibatch_std_sees_variety():
    mb = MinibatchStdLayer(group_size=2, num_channels=1)
    same = torch.ones(4, 3, 2, 2)
    out = mb(same)
    assert out.shape == (4, 4, 2, 2) and torch.allclose(out[:, 3], torch.full((4, 2, 2), 1e-4), atol=1e-6)
    x = torch.randn(4, 3, 2, 2)
    # Groups are samples {0, 2} and {1, 3}; the statistic is the mean over features of the std.
    expect = torch.stack([x[[0, 2]], x[[1, 3]]]).std(dim=1, unbiased=False).mean(dim=[1, 2, 3])
    assert torch.allclose(mb(x)[:, 3, 0, 0], expect.repeat(2), atol=1e-4)


# ---------------------------------------------------------------------------
# Losses and regularisers
# ---------------------------------------------------------------------------


def test_logistic_losses():
    big = torch.full((3, 1), 20.0)
    assert losses.stylegan2_d_loss(big, -big) < 1e-6  # confident and right
    assert losses.stylegan2_g_loss(big) < 1e-6
    zero = torch.zeros(3, 1)
    assert torch.isclose(losses.stylegan2_d_loss(zero, zero), torch.tensor(2 * np.log(2.0), dtype=torch.float32))


def test_r1_zero_for_constant_discriminator_positive_otherwise():
    torch.manual_seed(0)
    D = Discriminator(img_resolution=8, channel_base=64, channel_max=8)
    x = torch.randn(4, 3, 8, 8)
    pen, logits = losses.stylegan2_r1(D, x)
    assert pen.shape == (4,) and (pen > 0).all() and logits.shape == (4, 1)
    pen.mean().backward()  # differentiable: R1 trains D
    assert D.b8.conv0.weight.grad is not None and D.b8.conv0.weight.grad.abs().sum() > 0
    with torch.no_grad():
        D.b4.out.weight.zero_()
        D.b4.out.bias.fill_(0.7)  # D(x) = 0.7 for every x
    pen, logits = losses.stylegan2_r1(D, x)
    assert torch.equal(pen, torch.zeros(4)) and torch.allclose(logits, torch.full((4, 1), 0.7))

    class Const(torch.nn.Module):  # ignores its input entirely
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.ones(1))

        def forward(self, img):
            return self.b.expand(len(img), 1)

    pen, _ = losses.stylegan2_r1(Const(), x)
    assert torch.equal(pen, torch.zeros(4))


def test_path_length_regulariser_on_a_linear_map():
    torch.manual_seed(0)
    n, num_ws, w_dim, c, h, w = 3, 4, 8, 2, 4, 4
    q, _ = torch.linalg.qr(torch.randn(c * h * w, w_dim))  # orthonormal columns
    A = q.t()  # [w_dim, CHW], A A^T = I

    def synth(scale):
        return lambda ws, noise_mode="random": (ws.mean(dim=1) @ (scale * A)).reshape(-1, c, h, w)

    ws = torch.randn(n, num_ws, w_dim)
    torch.manual_seed(1)
    pen, mean, lengths = losses.path_length_penalty(synth(1.0), ws, torch.zeros([]), decay=0.01)
    torch.manual_seed(1)
    y = torch.randn(n, c, h, w) / (h * w) ** 0.5
    expect = (y.flatten(1) @ A.t()).norm(dim=1) / num_ws  # ||J^T y|| with J = A / num_ws per copy
    assert torch.allclose(lengths, expect, atol=1e-6)
    assert torch.allclose(mean, 0.01 * lengths.mean(), atol=1e-7)
    assert torch.allclose(pen, (lengths - mean) ** 2, atol=1e-7)
    torch.manual_seed(1)
    _, _, lengths2 = losses.path_length_penalty(synth(2.0), ws, torch.zeros([]))
    assert torch.allclose(lengths2, 2 * lengths, atol=1e-6)  # lengths measure the Jacobian's scale
    # Once pl_mean has converged to a constant Jacobian norm, the penalty only sees the noise's spread.
    torch.manual_seed(1)
    pen_conv, _, _ = losses.path_length_penalty(synth(1.0), ws, lengths.mean(), decay=0.0)
    assert pen_conv.mean() < pen.mean()


# ---------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------


def test_few_steps_finite_losses_ema_changes_and_snapshot_loads(image_folder, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(image_folder, run, kimg=0.024, snap_kimg=0.012, pl_weight=1.0, pl_interval=2, r1_interval=2)
    s = train_stylegan(cfg)
    assert s["step"] == 6 and s["kimg"] == pytest.approx(0.024)
    assert set(s["stats"]) == {"G", "D", "r1", "pl"} and all(np.isfinite(v) for v in s["stats"].values())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6]
    assert (run / "reals.png").is_file() and (run / "fakes-000000.png").is_file()
    state = load_training_state(run / STATE_FILE)
    assert state["cur_nimg"] == 24 and state["step"] == 6
    # The EMA generator moved away from the initial weights (the snapshot written at step 0 is overwritten,
    # so compare against a fresh initialisation with the same seed).
    from model.train_stylegan import build_networks

    torch.manual_seed(cfg.seed)
    G0, _ = build_networks(cfg)
    G = load_generator(s["snapshot"])
    diff = max((a - b).abs().max().item() for a, b in zip(G.parameters(), G0.parameters()))
    assert diff > 1e-5
    assert G.img_resolution == 16 and G.z_dim == 16
    from model.generator import sample_images

    imgs = sample_images(G, [0, 1], progress=False)
    assert imgs.shape == (2, 3, 16, 16) and torch.isfinite(imgs).all()


def _kill_at(step_to_die):
    def hook(step, nimg):
        if step == step_to_die:
            raise KeyboardInterrupt  # stands in for the process being killed
    return hook


def test_killed_and_resumed_run_matches_uninterrupted(image_folder, tmp_path):
    kw = dict(kimg=0.032, snap_kimg=0.012, pl_weight=1.0, pl_interval=2, r1_interval=2, seed=3)
    full = train_stylegan(_cfg(image_folder, tmp_path / "a", **kw))
    with pytest.raises(KeyboardInterrupt):
        train_stylegan(_cfg(image_folder, tmp_path / "b", **kw), _hook=_kill_at(5))
    st = load_training_state(tmp_path / "b" / STATE_FILE)
    assert st["step"] == 3  # the last snapshot before the kill
    with pytest.raises(Exception, match="already holds a training run"):
        train_stylegan(_cfg(image_folder, tmp_path / "b", **kw))
    steps_seen = []
    resumed = train_stylegan(_cfg(image_folder, tmp_path / "b", resume=True, **kw),
                             _hook=lambda step, nimg: steps_seen.append(step))
    assert steps_seen == [4, 5, 6, 7, 8] and resumed["step"] == full["step"] == 8
    a = load_training_state(tmp_path / "a" / STATE_FILE)
    b = load_training_state(tmp_path / "b" / STATE_FILE)
    for key in ("G", "D", "G_ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    assert torch.equal(a["pl_mean"], b["pl_mean"])
    # --resume with a target already reached only re-exports.
    again = train_stylegan(_cfg(image_folder, tmp_path / "b", resume=True, export=str(tmp_path / "g.safetensors"), **kw))
    assert again["step"] == 8
    G = load_generator(tmp_path / "g.safetensors")
    G_ref = load_generator(tmp_path / "a" / Path(full["snapshot"]).name)
    for (k, p), q in zip(G.named_parameters(), G_ref.parameters()):
        assert torch.allclose(p, q, atol=2e-3 * (1 + q.abs().max().item())), k  # float16 export


def test_nan_loss_stops_and_keeps_last_good_snapshot(image_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    calls = []
    g_loss = losses.stylegan2_g_loss

    def poisoned(logits):
        calls.append(1)
        out = g_loss(logits)
        return out * float("nan") if len(calls) == 5 else out  # iteration 5, after the snapshot at 3

    monkeypatch.setattr(losses, "stylegan2_g_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match="G loss became nan at kimg 0.016.*last good snapshot"):
        train_stylegan(_cfg(image_folder, run, kimg=0.04, snap_kimg=0.012))
    st = load_training_state(run / STATE_FILE)
    assert st["step"] == 3
    G = load_generator(run / st["snapshot"])
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_cli_errors(tmp_path, capsys):
    import main

    assert main.main(["train", "stylegan", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main.main(["train", "stylegan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 1
    assert "neither a CelebA-format dataset" in capsys.readouterr().err
    assert main.main(["train", "stylegan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--resume"]) == 1
    assert "--resume" in capsys.readouterr().err
