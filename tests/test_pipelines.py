"""Text-to-face pipelines on real-class stand-ins: the NVIDIA-format fixture generator, a tiny
clip.model.CLIP and tiny flow / CVAE mappers written as project checkpoints."""
import pytest
import torch

from t2f_standins import FIXTURE_G, make_tiny_clip, make_tiny_mapper
from model.pipelines import MODELS, ModelCache, build_pipeline, check_prompts
from torch_utils.misc import UserError

pytestmark = pytest.mark.skipif(not FIXTURE_G.is_file(), reason="fixture generator not found")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("t2f")
    return {
        "clip": make_tiny_clip(d / "clip.pt"),
        "flow": make_tiny_mapper(d / "flow.safetensors", "flow"),
        "cvae": make_tiny_mapper(d / "cvae.safetensors", "cvae-mapper"),
        "bad_e": make_tiny_mapper(d / "bad_e.safetensors", "flow", e_dim=16),
        "bad_w": make_tiny_mapper(d / "bad_w.safetensors", "flow", w_dim=32),
        "G": str(FIXTURE_G),
        "cache": ModelCache("cpu"),
    }


def _pipe(parts, kind, mapper=None):
    return build_pipeline(kind, clip=parts["clip"], generator=parts["G"], mapper=mapper, cache=parts["cache"])


@pytest.mark.parametrize("kind", ["flow", "cvae-mapper"])
def test_mapper_pipeline_shape_range_determinism(parts, kind):
    p = _pipe(parts, kind, parts["flow" if kind == "flow" else "cvae"])
    x = p.generate(["a smiling woman", "a man wearing a hat"], 2, seed=3)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.equal(x, p.generate(["a smiling woman", "a man wearing a hat"], 2, seed=3))
    assert not torch.equal(x, p.generate(["a smiling woman", "a man wearing a hat"], 2, seed=4))
    assert set(p.last_info["stages"]) >= {"text", "mapper", "G"} and p.last_info["ms_per_image"] > 0


def test_trunc_zero_gives_average_face(parts):
    p = _pipe(parts, "flow", parts["flow"])
    x = p.generate(["a", "b"], 2, seed=0, trunc=0.0)
    assert torch.allclose(x, x[:1].expand_as(x), atol=1e-5)
    G = parts["cache"].generator(parts["G"])[1]
    ref = G.synthesis(G.w_avg[None, None].repeat(1, G.num_ws, 1), noise_mode="const").clamp(-1, 1)
    assert torch.allclose(x[0], ref[0], atol=1e-4)


def test_image_mix_blends_embeddings(parts, tmp_path):
    from PIL import Image
    import numpy as np

    img = tmp_path / "ref.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype("uint8")).save(img)
    p = _pipe(parts, "flow", parts["flow"])
    e_text = p.embed(["a smiling woman"])
    e_img = p.embed([], image=str(img))
    assert torch.allclose(p.embed(["a smiling woman"], image=str(img), mix=0.0), e_text, atol=1e-6)
    assert torch.allclose(p.embed(["a smiling woman"], image=str(img), mix=1.0), e_img, atol=1e-6)
    half = p.embed(["a smiling woman"], image=str(img), mix=0.5)
    assert torch.allclose(half, torch.nn.functional.normalize(e_text + e_img, dim=-1), atol=1e-6)
    assert p.generate([], 2, seed=0, image=str(img)).shape == (2, 3, 32, 32)
    with pytest.raises(UserError, match="--mix"):
        p.embed(["x"], image=str(img), mix=1.5)


def test_modality_shift_changes_embedding(parts, monkeypatch):
    import model.pipelines as P

    monkeypatch.setattr(P, "caption_set", lambda n=256, seed=0: ["a man", "a woman", "a smiling face", "a bald man"])
    p = _pipe(parts, "flow", parts["flow"])
    e0 = p.embed(["a smiling woman"], modality_shift=False)
    e1 = p.embed(["a smiling woman"], modality_shift=True)
    assert abs(float(e1.norm()) - 1) < 1e-5 and not torch.allclose(e0, e1)


def test_unconditional_ignores_prompt(parts):
    p = _pipe(parts, "unconditional")
    assert torch.equal(p.generate(["a", "b"], 2, seed=1), p.generate(["c", "d"], 2, seed=1))


def test_bad_inputs(parts):
    with pytest.raises(UserError, match="empty"):
        check_prompts(["a man", "  "])
    with pytest.raises(UserError) as e:
        build_pipeline("stylegan-nada")
    for m in MODELS:
        assert m in str(e.value)
    with pytest.raises(UserError, match="embeddings of size 16"):
        _pipe(parts, "flow", parts["bad_e"])
    with pytest.raises(UserError, match="w_dim is 64"):
        _pipe(parts, "flow", parts["bad_w"])
    with pytest.raises(UserError, match="'flow' mapper checkpoint"):
        _pipe(parts, "cvae-mapper", parts["flow"])
    p = _pipe(parts, "flow", parts["flow"])
    with pytest.raises(UserError, match="longer than the CLIP context"):
        p.generate(["a face " * 80], 1, seed=0)


def test_baseline_pipelines(parts, tmp_path):
    from t2f_standins import make_tiny_baseline

    cv = make_tiny_baseline(tmp_path / "cvae.safetensors", "cvae", "clip")
    p = build_pipeline("cvae", clip=parts["clip"], mapper=cv, cache=parts["cache"])
    x = p.generate(["a smiling woman", "a bald man"], 2, seed=0)
    assert x.shape == (4, 3, 32, 32) and torch.equal(x, p.generate(["a smiling woman", "a bald man"], 2, seed=0))
    ga = make_tiny_baseline(tmp_path / "gan.safetensors", "gan", "attr", cond_dim=40)
    g = build_pipeline("gan", clip=parts["clip"], mapper=ga, cache=parts["cache"])
    assert g.generate(["a smiling woman"], 2, seed=0, attributes=[{"Smiling": 1, "Male": -1}]).shape == (2, 3, 32, 32)
    with pytest.raises(UserError, match="not on text"):
        g.generate(["a smiling woman"], 2, seed=0)
    with pytest.raises(UserError, match="does not apply"):
        build_pipeline("gan", generator=parts["G"], mapper=ga, cache=parts["cache"])


def test_clip_opt_pipeline(parts):
    p = _pipe(parts, "clip-opt")
    x = p.generate(["a smiling woman"], 1, seed=0, steps=1, restarts=1)
    assert x.shape == (1, 3, 32, 32) and p.last_info["ms_per_image"] > 0
