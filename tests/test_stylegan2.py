"""StyleGAN2 generator: exactness against the reference outputs of real checkpoint formats, and properties."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_generator
from network.stylegan2 import Generator, modulated_conv2d

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "stylegan2"


def fixture(name: str) -> Path:
    p = FIXTURES / name
    if not p.is_file():
        pytest.skip(f"StyleGAN2 fixture {p} is absent (it lives in ../shared/fixtures/stylegan2 beside the repository)")
    return p


def maxdiff(a, b) -> float:
    return float((torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max())


@pytest.fixture(scope="module")
def ada():
    G = load_generator(fixture("ada_tiny32.pkl"))
    ref = {k: torch.from_numpy(v) for k, v in np.load(fixture("ada_tiny32_ref.npz")).items()}
    return G, ref


@pytest.fixture(scope="module")
def ros():
    G = load_generator(fixture("rosinality_tiny32.pt"))
    ref = {k: torch.from_numpy(v) for k, v in np.load(fixture("rosinality_tiny32_ref.npz")).items()}
    return G, ref


# ---------------------------------------------------------------------------
# NVIDIA pickle fixture
# ---------------------------------------------------------------------------


def test_nvidia_pickle_hyperparameters(ada):
    G, ref = ada
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 64, 0, 8, 32, 3)
    assert G.synthesis.channels == {4: 128, 8: 128, 16: 128, 32: 64}
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, False, True, True]
    assert G.init_kwargs["conv_clamp"] == 256 and G.init_kwargs["mapping_layers"] == 2
    assert maxdiff(G.w_avg, ref["w_avg"]) == 0


def test_nvidia_pickle_mapping(ada):
    G, ref = ada
    with torch.no_grad():
        assert maxdiff(G.mapping(ref["z"]), ref["ws"]) < 1e-4
        assert maxdiff(G.mapping(ref["z"], truncation_psi=0.7), ref["ws_psi07"]) < 1e-4


@pytest.mark.parametrize("fused", [True, False])
def test_nvidia_pickle_synthesis_fp32(ada, fused):
    G, ref = ada
    with torch.no_grad():
        img = G.synthesis(ref["ws"], noise_mode="const", fused_modconv=fused)
        img07 = G.synthesis(ref["ws_psi07"], noise_mode="const", fused_modconv=fused)
    assert img.shape == (4, 3, 32, 32) and img.dtype == torch.float32
    assert maxdiff(img, ref["img_fp32"]) < 1e-3
    assert maxdiff(img07, ref["img_psi07_fp32"]) < 1e-3
    # The images are not trivially small: a wrong layer would show.
    assert float(ref["img_fp32"].abs().max()) > 1


def test_nvidia_pickle_forward_end_to_end(ada):
    G, ref = ada
    with torch.no_grad():
        img = G(ref["z"], truncation_psi=0.7, noise_mode="const")
    assert maxdiff(img, ref["img_psi07_fp32"]) < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 synthesis needs a CUDA device")
def test_nvidia_pickle_cuda_fp16(ada):
    G, ref = ada
    Gc = load_generator(fixture("ada_tiny32.pkl"), device="cuda")
    with torch.no_grad():
        img16 = Gc.synthesis(ref["ws"].cuda()).cpu()
        img32 = Gc.synthesis(ref["ws"].cuda(), force_fp32=True).cpu()
    assert maxdiff(img32, ref["img_fp32"]) < 1e-3
    assert maxdiff(img16, ref["img"]) < 2e-2  # float16 rounding; the reference differs from fp32 by ~7e-3


# ---------------------------------------------------------------------------
# rosinality fixture
# ---------------------------------------------------------------------------


def test_rosinality_sizes_from_shapes(ros):
    G, ref = ros
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution) == (64, 64, 8, 32)
    assert G.synthesis.channels == {4: 128, 8: 128, 16: 96, 32: 64}
    assert G.init_kwargs["mapping_layers"] == 2 and G.init_kwargs["conv_clamp"] is None
    assert maxdiff(G.w_avg, ref["latent_avg"]) == 0


@pytest.mark.parametrize("fused", [True, False])
def test_rosinality_outputs(ros, fused):
    G, ref = ros
    with torch.no_grad():
        ws = G.mapping(ref["z"])
        assert maxdiff(ws[:, 0], ref["w"]) < 1e-4
        assert maxdiff(ws, ref["w"][:, None].expand_as(ws)) < 1e-4
        img = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
        img07 = G.synthesis(G.mapping(ref["z"], truncation_psi=0.7), noise_mode="const", fused_modconv=fused)
    assert maxdiff(img, ref["img"]) < 1e-3
    assert maxdiff(img07, ref["img_psi07"]) < 1e-3
    assert float(ref["img"].abs().max()) > 0.5


# ---------------------------------------------------------------------------
# Properties of the network (no fixtures needed)
# ---------------------------------------------------------------------------


def small_g(**kw) -> Generator:
    cfg = dict(z_dim=16, w_dim=24, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32,
               num_fp16_res=1, conv_clamp=256)
    cfg.update(kw)
    torch.manual_seed(0)
    G = Generator(**cfg).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.normal_()
    return G


@pytest.mark.parametrize("res,expected_ws", [(4, 2), (8, 4), (64, 10)])
def test_any_resolution(res, expected_ws):
    G = small_g(img_resolution=res, channel_base=128, channel_max=16)
    assert G.num_ws == expected_ws == 2 * int(np.log2(res)) - 2
    with torch.no_grad():
        img = G(torch.randn(2, 16))
    assert img.shape == (2, 3, res, res) and torch.isfinite(img).all()


def test_config_roundtrip_builds_same_architecture():
    G = small_g(channels=[20, 12, 8], c_dim=3, img_channels=1, architecture="orig", conv_clamp=None)
    G2 = Generator(**G.init_kwargs)
    assert {k: v.shape for k, v in G.state_dict().items()} == {k: v.shape for k, v in G2.state_dict().items()}
    with torch.no_grad():
        img = G(torch.randn(2, 16), c=torch.eye(3)[:2])
    assert img.shape == (2, 1, 16, 16)


def test_truncation_and_cutoff():
    G = small_g()
    z = torch.randn(3, 16)
    with torch.no_grad():
        ws = G.mapping(z)
        full = G.mapping(z, truncation_psi=0.5)
        cut = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(full, G.w_avg + 0.5 * (ws - G.w_avg), atol=1e-6)
    assert torch.allclose(cut[:, :2], full[:, :2]) and torch.equal(cut[:, 2:], ws[:, 2:])
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.w_avg.expand_as(ws))


def test_normalised_z_and_w_avg_tracking():
    G = small_g()
    z = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.allclose(G.mapping(z), G.mapping(z * 7.0), atol=1e-5)  # 2nd-moment normalisation
        before = G.w_avg.clone()
        G.mapping(z)  # eval: no update
        assert torch.equal(G.w_avg, before)
        G.train()
        w = G.mapping(z)[:, 0]
        G.eval()
    assert torch.allclose(G.w_avg, w.mean(0).lerp(before, 0.995), atol=1e-6)


def test_noise_modes():
    G = small_g()
    ws = G.mapping(torch.randn(2, 16)).detach()
    with torch.no_grad():
        a, b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
        r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
        n = G.synthesis(ws, noise_mode="none")
    assert torch.equal(a, b)
    assert maxdiff(r1, r2) > 1e-3 and maxdiff(n, a) > 1e-3
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="bogus")


def test_fused_and_unfused_modconv_agree():
    torch.manual_seed(1)
    x, w, s = torch.randn(3, 6, 8, 8), torch.randn(5, 6, 3, 3), torch.randn(3, 6)
    noise = torch.randn(1, 1, 16, 16)
    from torch_utils.ops.upfirdn2d import setup_filter

    f = setup_filter([1, 3, 3, 1])
    for up in (1, 2):
        nz = noise if up == 2 else noise[..., :8, :8]
        a = modulated_conv2d(x, w, s, noise=nz, up=up, padding=1, resample_filter=f, flip_weight=(up == 1), fused_modconv=True)
        b = modulated_conv2d(x, w, s, noise=nz, up=up, padding=1, resample_filter=f, flip_weight=(up == 1), fused_modconv=False)
        assert torch.allclose(a, b, atol=1e-4)
    # Demodulation: without noise every output channel of a 1x1-input-free check has unit weight norm,
    # so scaling the styles of a sample does not change its output.
    a = modulated_conv2d(x, w, s, padding=1)
    b = modulated_conv2d(x, w, s * 3.0, padding=1)
    assert torch.allclose(a, b, atol=1e-4)


def test_gradients_flow_to_ws_and_weights():
    G = small_g().train()
    G.requires_grad_(True)
    ws = G.mapping(torch.randn(2, 16)).detach().requires_grad_(True)
    G.synthesis(ws, noise_mode="random").square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in G.synthesis.named_parameters()), "every synthesis parameter gets a gradient"


def test_cpu_runs_float32_even_with_fp16_blocks():
    G = small_g(num_fp16_res=3)
    assert any(b.use_fp16 for b in G.synthesis.blocks())
    with torch.no_grad():
        img = G(torch.randn(1, 16))
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
