"""Image baselines (CVAE, conditional GAN): losses, a few training steps, checkpoints, sampling, bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import loss as L
from model.baselines import TrainData, TrainingDiverged, load_baseline, train_baseline
from network.baselines import CondGenerator, ImageCVAE, ProjectionDiscriminator
from torch_utils.misc import UserError

NAMES = [f"Attr{i}" for i in range(40)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_data(n=48, r=16, d=24, k=3, seed=0) -> TrainData:
    """Images whose colour follows attribute 0 and whose centre square follows attribute 1;
    'text' embeddings are noisy unit vectors computed from the attributes (k wordings each)."""
    g = torch.Generator().manual_seed(seed)
    attrs = torch.where(torch.rand(n, 40, generator=g) < 0.5, 1, -1).to(torch.int8)
    img = torch.zeros(n, 3, r, r)
    img[:, 0] = attrs[:, 0, None, None].float() * 0.8
    img[:, 2] = -attrs[:, 0, None, None].float() * 0.8
    img[:, 1, r // 4 : 3 * r // 4, r // 4 : 3 * r // 4] = attrs[:, 1, None, None].float()
    img = img + 0.1 * torch.randn(n, 3, r, r, generator=g)
    u8 = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    basis = F.normalize(torch.randn(40, d, generator=g), dim=1)
    text = F.normalize((attrs.float() @ basis)[:, None] + 0.1 * torch.randn(n, k, d, generator=g), dim=-1)
    return TrainData(u8, attrs, text, attr_names=NAMES, source="tiny")


@pytest.fixture(scope="module")
def data():
    return _tiny_data()


def test_gaussian_kl_matches_closed_form():
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    sigma = torch.tensor([[0.3, 1.0, 2.5]])
    kl = L.gaussian_kl(mu, 2 * sigma.log())
    expected = sum(math.log(1 / s) + (s**2 + m**2) / 2 - 0.5 for m, s in zip(mu[0].tolist(), sigma[0].tolist()))
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(expected, rel=1e-5)
    # Monte Carlo check of the same divergence.
    g = torch.Generator().manual_seed(0)
    x = mu + sigma * torch.randn(200_000, 3, generator=g)
    logq = torch.distributions.Normal(mu, sigma).log_prob(x).sum(1)
    logp = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert (logq - logp).mean().item() == pytest.approx(expected, rel=0.02)
    # The ELBO's KL term is this closed form; the reconstruction term is the Gaussian NLL.
    x_img = torch.zeros(1, 3, 2, 2)
    recon = torch.full_like(x_img, 0.2)
    terms = L.image_elbo(recon, x_img, mu, 2 * sigma.log(), kl_weight=0.5, sigma=0.1)
    assert terms["kl"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["recon"].item() == pytest.approx(12 * 0.04 / (2 * 0.01), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + 0.5 * expected, rel=1e-5)
    assert L.kl_warmup(0, 100) == 0 and L.kl_warmup(50, 100) == 0.5 and L.kl_warmup(500, 100) == 1 and L.kl_warmup(3, 0) == 1


def test_gan_losses_and_r1():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.0])
    assert L.gan_d_loss(real, fake, "hinge").item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert L.gan_g_loss(fake, "hinge").item() == pytest.approx(1.0)
    assert L.gan_d_loss(real, fake, "nonsat").item() == pytest.approx(F.softplus(-real).mean().item() + F.softplus(fake).mean().item())
    # R1 of D(x) = sum(a * x) is ||a||^2.
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    a = torch.randn(3, 2, 2)
    assert L.r1_penalty((x * a).flatten(1).sum(1), x).item() == pytest.approx(a.pow(2).sum().item(), rel=1e-5)
    with pytest.raises(ValueError):
        L.gan_g_loss(fake, "wasserstein")


@pytest.mark.parametrize("cond_kind,cond_dim", [("clip", 24), ("attr", 40)])
def test_network_shapes(cond_kind, cond_dim):
    c = torch.randn(5, cond_dim)
    for res in (32, 64):
        vae = ImageCVAE(cond_dim, cond_kind, ch=8, resolution=res)
        x = torch.rand(5, 3, res, res) * 2 - 1
        recon, mu, logvar = vae(x, c)
        assert recon.shape == x.shape and mu.shape == (5, 64) and logvar.shape == (5, 64)
        assert vae.sample(c).shape == x.shape
        G = CondGenerator(cond_dim, cond_kind, ch=8, resolution=res)
        D = ProjectionDiscriminator(cond_dim, cond_kind, ch=8, resolution=res)
        img = G(torch.randn(5, 64), c)
        assert img.shape == x.shape and img.abs().max() <= 1
        assert D(img, c).shape == (5,)
    with pytest.raises(ValueError):
        vae(x, torch.randn(5, cond_dim + 1))


@pytest.mark.parametrize("kind", ["cvae", "gan"])
@pytest.mark.parametrize("cond", ["clip", "attr"])
def test_train_few_steps_and_sample(tmp_path, data, kind, cond):
    out = tmp_path / f"{kind}.safetensors"
    train_cfg = {"kl_warmup": 0} if kind == "cvae" else {}
    s = train_baseline(kind, data, cond, out, tmp_path / "run", steps=20, batch_size=8, seed=0, progress=False,
                       arch={"ch": 8}, train_cfg=train_cfg, snap_every=10, grid_every=10)
    first, last = s["history"][0], s["history"][-1]
    key = "loss" if kind == "cvae" else "d"
    assert last[key] < first[key], (first, last)
    assert out.is_file() and (tmp_path / "run" / "state.pt").is_file()
    assert (tmp_path / "run" / "grid_000020.png").is_file()
    m = load_baseline(out)
    assert (m.kind, m.cond, m.cond_dim) == (kind, cond, 24 if cond == "clip" else 40)
    c = data.conditions(torch.arange(3), cond, None, wording=0)
    imgs = m.sample(c, n=2, seed=7)
    assert imgs.shape == (6, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    assert torch.equal(imgs, m.sample(c, n=2, seed=7))
    assert not torch.equal(imgs, m.sample(c, n=2, seed=8))


def test_cvae_condition_is_used(tmp_path, data):
    """After a short training the CVAE's colour follows attribute 0 of the condition."""
    out = tmp_path / "cvae.safetensors"
    train_baseline("cvae", data, "attr", out, tmp_path / "run", steps=60, batch_size=16, progress=False,
                   arch={"ch": 8}, train_cfg={"kl_warmup": 20}, snap_every=1000, grid_every=1000)
    m = load_baseline(out)
    on = m.attribute_condition([{"Attr0": 1}])
    off = m.attribute_condition([{"Attr0": -1}])
    red_minus_blue = lambda im: (im[:, 0] - im[:, 2]).mean().item()  # noqa: E731
    assert red_minus_blue(m.sample(on, 8, seed=0)) > red_minus_blue(m.sample(off, 8, seed=0)) + 0.5


def test_resume_continues_exactly(tmp_path, data):
    kw = dict(batch_size=8, seed=1, progress=False, arch={"ch": 8}, snap_every=3, grid_every=100)
    train_baseline("gan", data, "clip", tmp_path / "a.safetensors", tmp_path / "a", steps=6, **kw)
    train_baseline("gan", data, "clip", tmp_path / "b.safetensors", tmp_path / "b", steps=3, **kw)
    s = train_baseline("gan", data, "clip", tmp_path / "b.safetensors", tmp_path / "b", steps=6, resume=True, **kw)
    assert s["steps"] == 6
    a, b = load_baseline(tmp_path / "a.safetensors"), load_baseline(tmp_path / "b.safetensors")
    assert b.config["step"] == 6
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-5), k
    with pytest.raises(UserError, match="--cond clip"):
        train_baseline("gan", data, "attr", tmp_path / "b.safetensors", tmp_path / "b", steps=12, resume=True, **kw)
    with pytest.raises(UserError, match="no training state"):
        train_baseline("cvae", data, "attr", tmp_path / "c.safetensors", tmp_path / "c", steps=12, resume=True, **kw)


def test_nan_guard_keeps_last_good_checkpoint(tmp_path, data):
    out = tmp_path / "cvae.safetensors"
    kw = dict(batch_size=8, progress=False, arch={"ch": 8}, snap_every=5, grid_every=100)
    train_baseline("cvae", data, "attr", out, tmp_path / "run", steps=5, **kw)
    good = out.read_bytes()
    bad = TrainData(data.images, data.attrs.float() * float("nan"), data.text_emb, attr_names=NAMES)
    with pytest.raises(TrainingDiverged, match="last good checkpoint kept"):
        train_baseline("cvae", bad, "attr", out, tmp_path / "run", steps=10, resume=True, **kw)
    assert out.read_bytes() == good


def test_bad_conditions(tmp_path, data):
    kw = dict(steps=2, batch_size=8, progress=False, arch={"ch": 8})
    train_baseline("cvae", data, "attr", tmp_path / "attr.safetensors", tmp_path / "r1", **kw)
    train_baseline("gan", data, "clip", tmp_path / "clip.safetensors", tmp_path / "r2", **kw)
    attr_model = load_baseline(tmp_path / "attr.safetensors")
    clip_model = load_baseline(tmp_path / "clip.safetensors")
    # Wrong condition size.
    with pytest.raises(UserError, match=r"expected \[P, 40\]"):
        attr_model.sample(torch.randn(2, 24), n=1)
    with pytest.raises(UserError, match=r"expected \[P, 24\]"):
        clip_model.sample(torch.randn(2, 40), n=1)
    # A text prompt for an attribute-conditioned checkpoint: the message names its conditioning.
    with pytest.raises(UserError, match=r"conditioned on the 40 CelebA attributes \(--cond attr\), not on text"):
        attr_model.text_condition(None, ["a smiling woman"])
    with pytest.raises(UserError, match="not on attribute vectors"):
        clip_model.attribute_condition([{"Attr0": 1}])
    with pytest.raises(UserError, match="unknown attribute"):
        attr_model.attribute_condition([{"Smiling_a_lot": 1}])
    # Unnamed attributes take the training set's majority value.
    v = attr_model.attribute_condition([{"Attr3": 1}])
    assert v.shape == (1, 40) and set(v.unique().tolist()) <= {-1.0, 1.0} and v[0, 3] == 1
    with pytest.raises(UserError, match="is a 'gan' checkpoint"):
        load_baseline(tmp_path / "clip.safetensors", expect_kind="cvae")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_baseline(tmp_path / "missing.safetensors")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    import main

    d = tmp_path_factory.mktemp("toy")
    assert main.main(["data", "synth", "--out", str(d), "--n", "40", "--seed", "5"]) == 0
    return d


def test_train_commands_on_toy_faces(tmp_path, toy_dir, capsys):
    import warnings

    import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip

    torch.manual_seed(0)
    tiny = clip.model.CLIP(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
                           context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1)
    clip_path = tmp_path / "tiny_clip.pt"
    torch.save(tiny.state_dict(), clip_path)
    out = tmp_path / "cvae.safetensors"
    common = ["--data", str(toy_dir), "--steps", "2", "--batch-size", "4", "--ch", "8", "--threads", "1", "--run-dir", str(tmp_path / "run")]
    assert main.main(["train", "cvae", "--cond", "clip", "--clip", str(clip_path), "--out", str(out), *common]) == 0
    m = load_baseline(out)
    assert (m.kind, m.cond, m.cond_dim, m.resolution) == ("cvae", "clip", 32, 64)
    assert m.config["clip_identity"].startswith("sha256-")
    e = m.text_condition(tiny.float().eval(), ["a smiling woman", "a man with a beard"])
    assert m.sample(e, n=3, seed=0).shape == (6, 3, 64, 64)
    # --resume continues the same run; the wrong --cond for that run is a one-line error.
    args = ["train", "cvae", "--cond", "clip", "--clip", str(clip_path), "--out", str(out), *common]
    args[args.index("--steps") + 1] = "3"
    assert main.main([*args, "--resume"]) == 0
    assert load_baseline(out).config["step"] == 3
    capsys.readouterr()
    assert main.main(["train", "cvae", "--cond", "attr", "--out", str(out), *common, "--resume"]) == 1
    assert "--cond clip" in capsys.readouterr().err
    # --max-images: the first N images, with the same caption embeddings the cache holds.
    from model.baselines import load_train_data

    full = load_train_data(toy_dir, "clip", str(clip_path), progress=False)
    part = load_train_data(toy_dir, "clip", str(clip_path), progress=False, max_images=6, captions_per_image=full.text_emb.shape[1])
    assert part.images.shape[0] == 6 and torch.equal(part.images, full.images[:6])
    assert [list(c) for c in part.captions] == [list(c) for c in full.captions[:6]]
    assert torch.allclose(part.text_emb, full.text_emb[:6], atol=1e-4)
    assert part.clip_identity == full.clip_identity
    gan_out = tmp_path / "gan.safetensors"
    assert main.main(["train", "gan", "--cond", "attr", "--out", str(gan_out), *common[:-2], "--run-dir", str(tmp_path / "g")]) == 0
    g = load_baseline(gan_out)
    assert (g.kind, g.cond, g.cond_dim) == ("gan", "attr", 40)
    assert g.sample(g.attribute_condition([{"Smiling": 1}]), n=2).shape == (2, 3, 64, 64)
    capsys.readouterr()
    assert main.main(["train", "gan", "--data", str(tmp_path / "nowhere"), "--cond", "attr", "--out", str(gan_out)]) == 1
    assert "error:" in capsys.readouterr().err


def test_init_from_other_conditioning(tmp_path, data):
    kw = dict(batch_size=8, progress=False, arch={"ch": 8}, grid_every=100)
    train_baseline("gan", data, "attr", tmp_path / "a.safetensors", tmp_path / "a", steps=2, **kw)
    train_baseline("gan", data, "clip", tmp_path / "b.safetensors", tmp_path / "b", steps=1, init_from=tmp_path / "a" / "state.pt", **kw)
    info = load_baseline(tmp_path / "b.safetensors").config["train"]["init_from"]
    assert info["cond"] == "attr" and info["step"] == 2
    # Only the condition's input layers (40 -> 24 inputs) start fresh.
    assert sorted(info["not_loaded"]) == ["D.embed.net.0.weight", "G.embed.net.0.weight", "G_ema.embed.net.0.weight"]
    with pytest.raises(UserError, match="not a training state of a 'cvae' run"):
        train_baseline("cvae", data, "clip", tmp_path / "c.safetensors", tmp_path / "c", steps=1, init_from=tmp_path / "a" / "state.pt", **kw)
