"""Small real-class stand-ins for the text-to-face tests: a tiny clip.model.CLIP saved as a
state dict (what clip.load reads), a tiny flow / CVAE mapper saved as a project checkpoint,
and the NVIDIA-format fixture generator."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip
    import clip.model

FIXTURE_G = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan2" / "ada_tiny32.pkl"
if not FIXTURE_G.is_file():  # the repository may sit elsewhere; the workplace copy
    FIXTURE_G = Path("/work/shared/fixtures/stylegan2/ada_tiny32.pkl")


def make_tiny_clip(path, seed=0, embed_dim=32):
    torch.manual_seed(seed)
    m = clip.model.CLIP(
        embed_dim=embed_dim, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1,
    )
    torch.save(m.state_dict(), path)
    return str(path)


def make_tiny_mapper(path, kind="flow", w_dim=64, e_dim=32, seed=0):
    from model.mapper import FORMAT, build_mapper
    from torch_utils.persistence import save_checkpoint

    torch.manual_seed(seed)
    if kind == "flow":
        arch = dict(w_dim=w_dim, e_dim=e_dim, layers=2, hidden=32, depth=1, bins=4, context_dim=16, context_hidden=32)
    else:
        arch = dict(w_dim=w_dim, e_dim=e_dim)
    m = build_mapper(kind, arch)
    m.set_statistics(torch.zeros(w_dim), torch.ones(w_dim), torch.nn.functional.normalize(torch.randn(e_dim), dim=0))
    cfg = {"format": FORMAT, "kind": kind, "arch": m.config, "w_dim": w_dim, "e_dim": e_dim}
    save_checkpoint(path, m.state_dict(), cfg)
    return str(path)


def make_tiny_baseline(path, kind="cvae", cond="clip", cond_dim=32, clip_identity=None):
    """A randomly initialised image baseline written exactly as `train cvae` / `train gan` write theirs."""
    from dataset.celeba import ATTRIBUTES
    from model.baselines import FORMAT, _sampler, build_networks
    from torch_utils.persistence import save_checkpoint

    torch.manual_seed(0)
    arch = {"z_dim": 8, "ch": 8, "embed_dim": 16}
    nets = build_networks(kind, cond, cond_dim, arch, 32)
    cfg = {"format": FORMAT, "kind": kind, "cond": cond, "cond_dim": cond_dim, "resolution": 32, "arch": arch,
           "train": {}, "step": 0, "dataset": "", "clip_identity": clip_identity if cond == "clip" else None,
           "attr_names": list(ATTRIBUTES), "attr_default": [-1.0] * 40}
    save_checkpoint(path, _sampler(kind, nets).state_dict(), cfg)
    return str(path)
