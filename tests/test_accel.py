"""``--compile`` (model/accel.py): torch.compile of the inference paths gives the eager results
(to float rounding), on the real-class stand-ins of tests/test_pipelines.py."""
import shutil

import pytest
import torch

from t2f_standins import FIXTURE_G, make_tiny_clip, make_tiny_mapper
from model.pipelines import ModelCache, build_pipeline
from torch_utils.misc import UserError

needs_compiler = pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "clang++", "c++")),
                                    reason="torch.compile on the CPU needs a C++ compiler")


@needs_compiler
def test_compiled_fully_connected_layer_matches_eager():
    """A mapping-network layer (matrix product, then bias and leaky ReLU with gain and a 0.01
    learning-rate multiplier): inductor mis-computes ``add(..., alpha=)`` fused after a matrix
    product, so bias_act takes a plain form under compilation. Without it the outputs differ by
    about 1.5 here."""
    from network.stylegan2 import FullyConnectedLayer

    torch.manual_seed(0)
    fc = FullyConnectedLayer(64, 64, activation="lrelu", lr_multiplier=0.01).requires_grad_(False)
    fc.bias.normal_()
    x = torch.randn(32, 64)
    with torch.no_grad():
        ref = fc(x)
        out = torch.compile(fc)(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@needs_compiler
@pytest.mark.skipif(not FIXTURE_G.is_file(), reason="fixture generator not found")
def test_compiled_pipeline_matches_eager(tmp_path):
    clip_path = make_tiny_clip(tmp_path / "clip.pt")
    flow_path = make_tiny_mapper(tmp_path / "flow.safetensors", "flow")
    kw = dict(clip=clip_path, generator=str(FIXTURE_G), mapper=flow_path)
    eager = build_pipeline("flow", cache=ModelCache("cpu"), **kw)
    fast = build_pipeline("flow", cache=ModelCache("cpu", compile=True), **kw)
    prompts = ["a smiling woman", "a man wearing a hat with eyeglasses"]
    with torch.no_grad():
        torch.testing.assert_close(fast.embed(prompts), eager.embed(prompts), atol=1e-5, rtol=1e-5)
        ref = eager.generate(prompts, 3, seed=1)
        out = fast.generate(prompts, 3, seed=1)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
        # the compiled parts really are the ones called
        assert fast.G._text2face_compiled and fast.clip._text2face_compiled and fast.mapper._text2face_compiled
        assert fast.G.synthesis._compiled_call_impl is not None
        # the image tower (pairs, --image): compiled CLIP image embedding = eager
        from model.clip_io import encode_images

        torch.testing.assert_close(encode_images(fast.clip, out, progress=False), encode_images(eager.clip, ref, progress=False),
                                   atol=1e-4, rtol=1e-4)


def test_compile_without_a_compiler_is_one_clear_error(monkeypatch, tmp_path, capsys):
    import main
    from model import accel

    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="C\\+\\+ compiler"):
        ModelCache("cpu", compile=True)
    out = tmp_path / "g.png"
    assert main.main(["generate", "a smiling woman", "-n", "1", "--compile", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --compile on the CPU needs a C++ compiler")
    assert not out.exists()
