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
