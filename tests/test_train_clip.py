"""Toy CLIP: contrastive loss, the fast text encoder, a few training steps, clip.load round trip."""
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from loss import clip_contrastive_loss

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip

REPO = Path(__file__).resolve().parent.parent
TINY_ARCH = dict(embed_dim=32, vision_layers=1, vision_width=64, transformer_layers=1)


def test_contrastive_loss_known_cases():
    n = 16
    e = torch.eye(n)  # orthogonal unit embeddings
    big = torch.tensor(math.log(100.0))
    assert clip_contrastive_loss(e, e, big).item() < 1e-3  # aligned pairs, confident scale: ~0
    # Scale 1 (logit_scale 0) on aligned orthogonal pairs: logits are 1 on the diagonal, 0 elsewhere.
    expected = -math.log(math.e / (math.e + n - 1))
    assert clip_contrastive_loss(e, e, 0.0).item() == pytest.approx(expected, rel=1e-5)
    # Identical embeddings for every item carry no information: exactly log N.
    same = torch.ones(n, 8)
    assert clip_contrastive_loss(same, same, big).item() == pytest.approx(math.log(n), rel=1e-5)
    # Shuffled pairs with a large scale: far worse than chance.
    perm = torch.roll(torch.arange(n), 1)
    assert clip_contrastive_loss(e, e[perm], big).item() > math.log(n)
    # Symmetric in its two arguments and invariant to the embeddings' norms.
    a, b = torch.randn(8, 5), torch.randn(8, 5)
    assert clip_contrastive_loss(a, b, 1.0).item() == pytest.approx(clip_contrastive_loss(b, a, 1.0).item(), rel=1e-5)
    assert clip_contrastive_loss(3 * a, b, 1.0).item() == pytest.approx(clip_contrastive_loss(a, b, 1.0).item(), rel=1e-5)
    with pytest.raises(ValueError):
        clip_contrastive_loss(a, b[:4], 1.0)


def test_contrastive_loss_hard_negatives():
    """Hard-negative texts are extra columns of the image->text softmax only."""
    n = 6
    e = torch.eye(n)  # orthogonal unit embeddings, scale 1: logits 1 on the diagonal, 0 elsewhere
    neg = torch.eye(n)[[1, 1, 1]]  # three negatives in the direction of image 1
    got = clip_contrastive_loss(e, e, 0.0, neg).item()
    logits = torch.eye(n)
    i2t = torch.cat([logits, logits[:, [1, 1, 1]]], 1)  # image 1 gets three more logits of 1
    ref = 0.5 * (torch.nn.functional.cross_entropy(i2t, torch.arange(n)) + torch.nn.functional.cross_entropy(logits.t(), torch.arange(n)))
    assert got == pytest.approx(ref.item(), rel=1e-6)
    assert got > clip_contrastive_loss(e, e, 0.0).item()
    # No negatives (None or empty) is the plain loss; a negative far from every image changes little.
    a, b = torch.randn(8, 5), torch.randn(8, 5)
    plain = clip_contrastive_loss(a, b, 1.0).item()
    assert clip_contrastive_loss(a, b, 1.0, torch.zeros(0, 5)).item() == plain
    assert clip_contrastive_loss(a, b, 1.0, torch.randn(4, 5)).item() > plain
    with pytest.raises(ValueError):
        clip_contrastive_loss(a, b, 1.0, torch.randn(4, 3))


def test_fast_text_encoder_matches_clip():
    from model.train_clip import build_clip, encode_text_train

    torch.manual_seed(0)
    model = build_clip(TINY_ARCH).eval()
    with torch.no_grad():  # the initial text projection is small; make the comparison meaningful
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tokens = clip.tokenize(["a smiling woman with blond hair", "a man", "a bald man wearing eyeglasses and a hat"])
    with torch.no_grad():
        ref = model.encode_text(tokens)
        fast = encode_text_train(model, tokens)
    assert torch.allclose(ref, fast, atol=1e-5), (ref - fast).abs().max()


def test_split_halves_disjoint():
    from model.train_clip import split_indices

    a, b = split_indices(11, "0"), split_indices(11, "1")
    assert len(set(a) & set(b)) == 0 and sorted(np.concatenate([a, b])) == list(range(11))
    assert len(split_indices(11, "all")) == 11


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    r = subprocess.run([sys.executable, "main.py", "data", "synth", "--out", str(d), "--n", "400", "--seed", "3"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(d)


def test_train_clip_few_steps_and_clip_load(toy_data, tmp_path):
    from model.clip_io import encode_images, encode_text
    from model.train_clip import ClipTrainConfig, evaluate_clip, train_clip

    out = str(tmp_path / "clip.pt")
    cfg = ClipTrainConfig(data=toy_data, out=out, seed=0, steps=30, batch_size=64, lr=2e-3, warmup_steps=5,
                          progress=False, arch=dict(TINY_ARCH), checkpoint_every=15)
    s = train_clip(cfg)
    losses = [l for _, l in s["history"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses

    # The very call that loads ViT-B/32 loads the file; weights are stored in float16.
    sd = torch.load(out, map_location="cpu", weights_only=True)
    assert sd["token_embedding.weight"].dtype == torch.float16 and sd["token_embedding.weight"].shape == (49408, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded, preprocess = clip.load(out, device="cpu", jit=False)
    assert isinstance(loaded, clip.model.CLIP) and loaded.visual.input_resolution == 64

    # Same embeddings as the in-memory model (up to the float16 rounding of the file).
    st = torch.load(out + ".state", map_location="cpu", weights_only=True)
    mem = clip.model.CLIP(**s["arch"]).float()
    mem.load_state_dict(st["model"])
    mem.eval()
    loaded = loaded.float().eval()
    imgs = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8)
    prompts = ["a photo of a man wearing eyeglasses", "a woman with blond hair"]
    a, b = encode_images(mem, imgs), encode_images(loaded, imgs)
    assert (a * b).sum(-1).min() > 0.999
    a, b = encode_text(mem, prompts), encode_text(loaded, prompts)
    assert (a * b).sum(-1).min() > 0.999

    # Resume continues from the saved step and finishes at the new total.
    cfg2 = ClipTrainConfig(**{**cfg.__dict__, "steps": 34, "resume": True})
    s2 = train_clip(cfg2)
    assert s2["steps"] == 34 and len(s2["history"]) == 34

    m = evaluate_clip(out, toy_data, n_retrieval=20, progress=False)
    assert 0 <= m["zero_shot_mean_accuracy"] <= 1 and m["retrieval_n"] == 20
    assert 0 <= m["t2i_recall@1"] <= m["t2i_recall@5"] <= 1


def test_train_clip_cli_errors(tmp_path):
    r = subprocess.run([sys.executable, "main.py", "train", "clip", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c.pt")],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "missing" in r.stderr
    r = subprocess.run([sys.executable, "main.py", "train", "clip", "--data", str(tmp_path), "--out", str(tmp_path / "c.pt"), "--resume"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "error: " in r.stderr


def test_augment_shift_is_edge_padded_shift():
    """The one-gather shift equals shifting the edge-replicated padded image, sample by sample."""
    from model.train_clip import augment_uint8

    x = torch.randint(0, 256, (20, 3, 12, 10), dtype=torch.uint8)
    got = augment_uint8(x, torch.Generator().manual_seed(3), flip=True, translate=3)
    gen = torch.Generator().manual_seed(3)
    m = torch.rand(20, generator=gen) < 0.5
    dx = torch.randint(0, 7, (20,), generator=gen)
    dy = torch.randint(0, 7, (20,), generator=gen)
    flipped = torch.where(m.view(-1, 1, 1, 1), x.flip(-1), x)
    pad = torch.nn.functional.pad(flipped.float(), (3, 3, 3, 3), mode="replicate").to(torch.uint8)
    want = torch.stack([pad[i, :, dy[i] : dy[i] + 12, dx[i] : dx[i] + 10] for i in range(20)])
    assert got.dtype == torch.uint8 and torch.equal(got, want)
    assert not torch.equal(got, x)


def test_row_adamw_equals_adamw_on_the_whole_matrix():
    """RowAdamW (rows seen so far) gives AdamW's weights and moments bit for bit."""
    from model.train_clip import RowAdamW

    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(300, 64, generator=g)
    dense = torch.nn.Parameter(w0.clone())
    rowwise = torch.nn.Parameter(w0.clone())
    ref = torch.optim.AdamW([dense], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    opt = RowAdamW(rowwise, betas=(0.9, 0.98), eps=1e-6)
    for step in range(40):
        ids = torch.randint(0, 40 + 4 * step, (25,), generator=g)  # new rows keep appearing, old ones drop out
        grad = torch.zeros(300, 64)
        grad.index_add_(0, ids, torch.randn(25, 64, generator=g))
        lr = 1e-2 * (1 + step % 3)
        for group in ref.param_groups:
            group["lr"] = lr
        dense.grad = grad.clone()
        ref.step()
        rowwise.grad = grad.clone()
        opt.mark(ids)
        opt.step(lr)
        assert rowwise.grad is None
        if step == 20:  # a state round trip in the middle
            st = opt.state_dict()
            opt = RowAdamW(rowwise, betas=(0.9, 0.98), eps=1e-6)
            opt.load_state_dict(st)
    assert torch.equal(dense.detach(), rowwise.detach())
    assert torch.equal(ref.state[dense]["exp_avg"], opt.exp_avg) and torch.equal(ref.state[dense]["exp_avg_sq"], opt.exp_avg_sq)
    assert not torch.equal(dense.detach(), w0) and torch.equal(rowwise.detach()[200:], w0[200:])  # never-seen rows untouched


def test_train_clip_with_hard_negatives(toy_data, tmp_path):
    from model.train_clip import ClipTrainConfig, train_clip
    from torch_utils.misc import UserError

    out = str(tmp_path / "clip_hn.pt")
    cfg = ClipTrainConfig(data=toy_data, out=out, seed=0, steps=30, batch_size=64, lr=2e-3, warmup_steps=5,
                          progress=False, arch=dict(TINY_ARCH), checkpoint_every=10, hard_negatives=1)
    s = train_clip(cfg)
    losses = [l for _, l in s["history"]]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    # The loss has the extra columns: at step 0 it exceeds the plain loss of the same batch (~log 64).
    assert losses[0] > math.log(64)
    with pytest.raises(UserError, match="hard-negatives"):
        train_clip(ClipTrainConfig(**{**cfg.__dict__, "steps": 32, "resume": True, "hard_negatives": 0}))
