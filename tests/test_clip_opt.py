"""CLIP-guided latent optimisation: the objective improves over its steps."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip

from model.clip_opt import clip_opt_generate
from torch_utils.misc import UserError

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan2" / "ada_tiny32.pkl"
if not FIXTURE.is_file():  # the repository may sit elsewhere; the workplace copy
    FIXTURE = Path("/work/shared/fixtures/stylegan2/ada_tiny32.pkl")


pytestmark = pytest.mark.usefixtures("one_thread")


def _load_generator(path):
    try:
        from model import load_generator
    except ImportError:
        from model.generator import load_generator
    return load_generator(path)


def _tiny_clip(seed=0):
    torch.manual_seed(seed)
    m = clip.model.CLIP(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
                        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1)
    return m.float().eval()


@pytest.fixture(scope="module")
def G():
    if not FIXTURE.is_file():
        pytest.skip(f"fixture generator missing: {FIXTURE}")
    return _load_generator(FIXTURE)


@pytest.mark.parametrize("wplus", [False, True])
def test_clip_opt_increases_similarity(G, wplus):
    m = _tiny_clip()
    g_before = {k: v.clone() for k, v in G.state_dict().items()}
    imgs, info = clip_opt_generate(G, m, ["a smiling man with eyeglasses"], n=1, seed=0, steps=12, restarts=1,
                                   lr=0.05, wplus=wplus, progress=False, return_info=True)
    assert imgs.shape == (1, 3, G.img_resolution, G.img_resolution)
    assert imgs.min() >= -1 and imgs.max() <= 1
    hist = info["sim_history"]
    assert len(hist) == 13
    assert hist[-1] > hist[0] + 0.01, hist
    assert info["seconds_per_image"] > 0
    # The generator and CLIP are not modified, and their gradient flags are restored.
    for k, v in G.state_dict().items():
        assert torch.equal(v, g_before[k])
    assert all(p.requires_grad for p in m.parameters())


def test_clip_opt_keeps_best_restart_and_is_deterministic(G):
    m = _tiny_clip()
    a, ia = clip_opt_generate(G, m, ["a", "b"], n=2, seed=3, steps=2, restarts=2, progress=False, return_info=True)
    b = clip_opt_generate(G, m, ["a", "b"], n=2, seed=3, steps=2, restarts=2, progress=False)
    assert a.shape == (4, 3, G.img_resolution, G.img_resolution)
    assert torch.allclose(a, b, atol=1e-5)
    assert ia["final_similarity"].shape == (4,)


def test_clip_opt_bad_input(G):
    m = _tiny_clip()
    with pytest.raises(UserError):
        clip_opt_generate(G, m, ["x"], n=0, steps=1, progress=False)
    with pytest.raises(UserError, match=r"\[P, 32\]"):
        clip_opt_generate(G, m, None, n=1, steps=1, text_embeddings=torch.randn(1, 16), progress=False)
