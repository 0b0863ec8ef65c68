"""Latent-pair sampling: shards, determinism, resuming after an interruption, CLI errors."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip  # noqa: F401
    from clip.model import CLIP

from dataset import pairs as pairs_ds
from dataset.pairs import LatentPairs
from model import pairs as model_pairs
from mapper_toys import one_thread
from torch_utils.misc import UserError

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan2" / "ada_tiny32.pkl"


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_thread()


def tiny_clip(seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    return CLIP(
        embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1,
    ).float().eval()


class StandInGenerator(nn.Module):
    """A small generator with the StyleGAN2 interface (used when the fixture cannot be loaded)."""

    def __init__(self, z_dim=8, w_dim=16, num_ws=4, res=16):
        super().__init__()
        torch.manual_seed(1)
        self.z_dim, self.w_dim, self.num_ws, self.img_resolution = z_dim, w_dim, num_ws, res
        self.map = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
        self.syn = nn.Linear(w_dim, 3 * res * res)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def mapping(self, z, truncation_psi=1.0):
        w = self.map(z)
        w = self.w_avg + truncation_psi * (w - self.w_avg)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const"):
        return torch.tanh(self.syn(ws[:, 0])).view(-1, 3, self.img_resolution, self.img_resolution)


@pytest.fixture(scope="module")
def generator():
    if FIXTURE.is_file():
        try:
            from model import load_generator
        except ImportError:
            load_generator = None
        if load_generator is not None:
            return load_generator(str(FIXTURE)).eval()
    return StandInGenerator().eval()


@pytest.fixture(scope="module")
def clip_model():
    return tiny_clip()


def _run(G, C, out, n=10, shard_size=4, batch_size=3, seed=0):
    return model_pairs.sample_pairs(G, C, out, n, generator_id="G-test", clip_id="C-test",
                                    batch_size=batch_size, seed=seed, shard_size=shard_size, progress=False)


def test_shards_shapes_and_content(tmp_path, generator, clip_model):
    s = _run(generator, clip_model, tmp_path / "p")
    assert s["new"] == 10
    files = sorted(p.name for p in (tmp_path / "p").glob("shard_*.safetensors"))
    assert files == ["shard_00000.safetensors", "shard_00001.safetensors", "shard_00002.safetensors"]
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["count"] == 10 and meta["e_dim"] == 32 and meta["w_dim"] == generator.w_dim
    assert (tmp_path / "p" / "thumbnails.png").is_file()
    data = LatentPairs(tmp_path / "p")
    assert len(data) == 10 and data.complete
    t = data.load(("z", "w", "e"))
    assert t["z"].shape == (10, generator.z_dim)
    assert t["w"].shape == (10, generator.w_dim)
    assert t["e"].shape == (10, 32)
    torch.testing.assert_close(t["e"].norm(dim=-1), torch.ones(10), atol=1e-5, rtol=0)
    # w is the generator's mapping of the stored z (no truncation).
    with torch.no_grad():
        w_ref = generator.mapping(t["z"], truncation_psi=1.0)[:, 0]
    torch.testing.assert_close(t["w"], w_ref, atol=1e-4, rtol=1e-4)
    # e is the CLIP image embedding of the rendered image.
    from model.clip_io import encode_images

    with torch.no_grad():
        img = generator.synthesis(generator.mapping(t["z"][:3]), noise_mode="const")
    torch.testing.assert_close(t["e"][:3], encode_images(clip_model, img, progress=False), atol=1e-4, rtol=1e-4)
    # Train/val split is deterministic and disjoint.
    tr, va = data.split(0.2)
    tr2, va2 = data.split(0.2)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert len(va) == 2 and len(set(tr.tolist()) | set(va.tolist())) == 10


def test_interrupted_run_resumes_without_duplication(tmp_path, generator, clip_model, monkeypatch):
    out = tmp_path / "p"
    real_write = pairs_ds.write_shard
    calls = {"n": 0}

    def failing_write(root, index, tensors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while the second shard is being written
        return real_write(root, index, tensors)

    monkeypatch.setattr(pairs_ds, "write_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        _run(generator, clip_model, out)
    monkeypatch.setattr(pairs_ds, "write_shard", real_write)
    assert [p.name for p in out.glob("shard_*")] == ["shard_00000.safetensors"]
    first = (out / "shard_00000.safetensors").stat().st_mtime_ns
    assert len(LatentPairs(out)) == 4

    s = _run(generator, clip_model, out)
    assert s["new"] == 6  # only the missing shards were made
    assert (out / "shard_00000.safetensors").stat().st_mtime_ns == first
    resumed = LatentPairs(out).load(("z", "w", "e"))
    assert len(resumed["z"]) == 10
    assert len({tuple(r.tolist()) for r in resumed["z"]}) == 10  # no duplicated samples

    # Same result as an uninterrupted run with another batch size; a rerun of a complete dir does nothing.
    _run(generator, clip_model, tmp_path / "q", batch_size=5)
    fresh = LatentPairs(tmp_path / "q").load(("z", "w", "e"))
    assert torch.equal(resumed["z"], fresh["z"])
    torch.testing.assert_close(resumed["w"], fresh["w"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(resumed["e"], fresh["e"], atol=1e-5, rtol=1e-5)
    assert _run(generator, clip_model, out)["new"] == 0


def test_parts_fill_one_directory_like_a_single_run(tmp_path, generator, clip_model):
    out = tmp_path / "p"
    kw = dict(generator_id="G-test", clip_id="C-test", batch_size=3, seed=0, shard_size=4, progress=False)
    a = model_pairs.sample_pairs(generator, clip_model, out, 10, part=(1, 2), **kw)
    assert a["new"] == 4  # shard 1 only (shards 0 and 2 belong to part 0/2)
    assert [p.name for p in out.glob("shard_*")] == ["shard_00001.safetensors"]
    with pytest.raises(UserError, match="no complete shard"):
        LatentPairs(out)  # shard 0 is not there yet
    assert model_pairs.sample_pairs(generator, clip_model, out, 10, part=(0, 2), **kw)["new"] == 6
    assert model_pairs.sample_pairs(generator, clip_model, out, 10, **kw)["new"] == 0  # the final run only records
    joined = LatentPairs(out)
    assert len(joined) == 10 and joined.complete
    _run(generator, clip_model, tmp_path / "q")
    single = LatentPairs(tmp_path / "q").load(("z", "w", "e"))
    both = joined.load(("z", "w", "e"))
    assert torch.equal(both["z"], single["z"])
    torch.testing.assert_close(both["e"], single["e"], atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="--part"):
        model_pairs.sample_pairs(generator, clip_model, out, 10, part=(2, 2), **kw)
    with pytest.raises(UserError, match="--part"):
        model_pairs.parse_part("1of2")


def test_rerun_with_other_settings_is_refused(tmp_path, generator, clip_model):
    out = tmp_path / "p"
    _run(generator, clip_model, out, n=4)
    with pytest.raises(UserError, match="seed"):
        _run(generator, clip_model, out, n=4, seed=1)
    with pytest.raises(UserError, match="not a pairs directory"):
        LatentPairs(tmp_path)


def test_pairs_cli(tmp_path, clip_model):
    from main import main

    # Bundled defaults are reported clearly while they are missing.
    from model.bundled import bundled_path

    if bundled_path("generator", required=False) is None:
        assert main(["pairs", "--n", "4", "--out", str(tmp_path / "x")]) == 1
    try:
        from model import load_generator  # noqa: F401
    except ImportError:
        pytest.skip("no StyleGAN2 loader yet")
    if not FIXTURE.is_file():
        pytest.skip("fixture generator missing")
    clip_file = tmp_path / "clip_tiny.pt"
    torch.save(clip_model.state_dict(), clip_file)  # the format clip.load reads
    out = tmp_path / "cli"
    args = ["pairs", "--generator", str(FIXTURE), "--clip", str(clip_file), "--n", "6", "--out", str(out),
            "--batch-size", "4", "--shard-size", "4"]
    assert main(args) == 0
    data = LatentPairs(out)
    assert len(data) == 6 and data.meta["clip"].startswith("sha256-")
    assert main(args) == 0  # complete: nothing to do
    assert main(["pairs", "--generator", str(FIXTURE), "--clip", str(clip_file), "--n", "0", "--out", str(out)]) == 1
