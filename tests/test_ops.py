"""Tests of the custom ops (torch_utils/ops): reference paths against explicit constructions,
gradients, the CUDA sources' compilation (where nvcc exists) and CUDA parity (where a GPU exists)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import torch_utils.ops.bias_act as bias_act_mod
from torch_utils.ops import _build
import torch_utils.ops.upfirdn2d as upfirdn2d_mod
from torch_utils.ops.bias_act import bias_act
from torch_utils.ops.conv2d_resample import conv2d_resample
from torch_utils.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d



pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# Explicit constructions


def naive_upfirdn2d(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """Zero insertion, padding/cropping, direct FIR convolution over the taps, striding (numpy, float64)."""
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = pad
    n, c, h, w = x.shape
    # 1. zero insertion: sample i lands at i * up, up - 1 zeros after it
    z = np.zeros([n, c, h * upy, w * upx])
    z[:, :, ::upy, ::upx] = x
    # 2. padding (negative = cropping)
    z = np.pad(z, [(0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))])
    z = z[:, :, max(-py0, 0): z.shape[2] - max(-py1, 0), max(-px0, 0): z.shape[3] - max(-px1, 0)]
    # 3. FIR: true convolution y[i, j] = sum_ab z[i + a, j + b] * f[fh-1-a, fw-1-b] (valid part)
    fh, fw = f.shape
    k = f if flip_filter else f[::-1, ::-1]
    oh, ow = z.shape[2] - fh + 1, z.shape[3] - fw + 1
    y = np.zeros([n, c, oh, ow])
    for a in range(fh):
        for b in range(fw):
            y += z[:, :, a: a + oh, b: b + ow] * k[a, b]
    y *= gain
    # 4. striding
    return y[:, :, ::downy, ::downx]


UPFIRDN_CASES = [
    # (H, W, filter, up, down, padding)
    (5, 7, [1, 3, 3, 1], 1, 1, 0),
    (5, 7, [1, 3, 3, 1], 2, 1, [2, 1, 2, 1]),
    (6, 4, [1, 3, 3, 1], 1, 2, [1, 1, 1, 1]),
    (6, 5, [1, 2, 1], [2, 1], [1, 2], [0, 3, 1, -1]),
    (7, 6, [[1, 2, 0], [0, -1, 3]], 3, 2, [1, -2, 3, 0]),
    (4, 9, [1, 4, 6, 4, 1, 2, 3, 5], 2, 3, [4, 3, 2, 5]),  # 8 taps -> separable
    (8, 8, [1.0], 1, 2, 0),
    (3, 5, [0.5, 1.0, -0.25], [3, 2], 1, [-1, 2]),
]


@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_matches_explicit_construction(case, flip_filter):
    h, w, taps, up, down, padding = UPFIRDN_CASES[case]
    torch.manual_seed(case)
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    f = setup_filter(taps, normalize=False)
    from torch_utils.ops.upfirdn2d import _parse_padding, _parse_scaling

    gain = 1.7
    y = upfirdn2d(x, f.double(), up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl="ref")
    ref = naive_upfirdn2d(x.numpy(), np.asarray(taps, dtype=np.float64), _parse_scaling(up), _parse_scaling(down),
                          _parse_padding(padding), flip_filter, gain)
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
    # float32 path too
    y32 = upfirdn2d(x.float(), f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl="ref")
    np.testing.assert_allclose(y32.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_upfirdn2d_filter_is_a_true_convolution():
    # An impulse through an asymmetric filter reproduces the filter (not its mirror image).
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = 1
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = upfirdn2d(x, f, padding=[1, 0, 1, 0])
    assert torch.equal(y[0, 0, :2, :2], f)
    y = upfirdn2d(x, f, padding=[1, 0, 1, 0], flip_filter=True)
    assert torch.equal(y[0, 0, :2, :2], f.flip([0, 1]))


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    assert setup_filter([1, 3, 3, 1], separable=True).shape == (4,)
    assert setup_filter([1] * 8).shape == (8,)  # long 1-D filters stay separable
    assert math.isclose(setup_filter([1, 2, 1], gain=4).sum().item(), 4.0, rel_tol=1e-6)
    assert math.isclose(setup_filter([1, 2, 1], separable=True, gain=4).sum().item(), 2.0, rel_tol=1e-6)
    assert torch.equal(setup_filter([[1, 2], [3, 4]], normalize=False, flip_filter=True), torch.tensor([[4.0, 3], [2, 1]]))
    assert setup_filter(None).shape == (1, 1)
    # separable and 2-D forms give the same op
    x = torch.randn(1, 2, 6, 7)
    a = upsample2d(x, setup_filter([1, 3, 3, 1]))
    b = upsample2d(x, setup_filter([1, 3, 3, 1], separable=True))
    assert torch.allclose(a, b, atol=1e-5)


def test_resampling_helpers_sizes_and_gain():
    x = torch.randn(2, 3, 8, 10)
    f = setup_filter([1, 3, 3, 1])
    assert upsample2d(x, f).shape == (2, 3, 16, 20)
    assert upsample2d(x, f, up=[2, 1]).shape == (2, 3, 8, 20)
    assert downsample2d(x, f).shape == (2, 3, 4, 5)
    assert filter2d(x, f).shape == (2, 3, 8, 10)
    assert filter2d(x, setup_filter([1, 2, 1])).shape == (2, 3, 8, 10)
    # a constant image stays constant away from the borders (upsample2d compensates zeros with up**2)
    c = torch.ones(1, 1, 8, 8)
    assert torch.allclose(upsample2d(c, f)[..., 3:-3, 3:-3], torch.ones(1, 1, 10, 10))
    assert torch.allclose(downsample2d(c, f)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    # upsample2d == upfirdn2d with the StyleGAN2 padding and gain up**2
    fw = 4
    ref = upfirdn2d(x, f, up=2, padding=[(fw + 1) // 2, (fw - 2) // 2, (fw + 1) // 2, (fw - 2) // 2], gain=4)
    assert torch.allclose(upsample2d(x, f), ref)


def test_upfirdn2d_rejects_bad_arguments():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError):
        upfirdn2d(x, torch.ones(3, 3, 3))
    with pytest.raises(ValueError):
        upfirdn2d(x, torch.ones(3, 3), up=0)
    with pytest.raises(ValueError):
        upfirdn2d(x, torch.ones(3, 3), padding=[1, 2, 3])
    with pytest.raises(ValueError):
        upfirdn2d(x, torch.ones(3, 3), padding=-3)
    with pytest.raises(ValueError):
        upfirdn2d(x[0], torch.ones(3, 3))


# ---------------------------------------------------------------------------------------------
# bias_act


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


FORMULAS = {
    "linear": (lambda v, a: v, None, 1.0),
    "relu": (lambda v, a: np.maximum(v, 0), None, math.sqrt(2)),
    "lrelu": (lambda v, a: np.where(v > 0, v, a * v), 0.2, math.sqrt(2)),
    "tanh": (lambda v, a: np.tanh(v), None, 1.0),
    "sigmoid": (lambda v, a: _sigmoid(v), None, 1.0),
    "elu": (lambda v, a: np.where(v > 0, v, a * (np.exp(v) - 1)), 1.0, 1.0),
    "selu": (lambda v, a: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * (np.exp(v) - 1)), None, 1.0),
    "softplus": (lambda v, a: np.log1p(np.exp(v)), None, 1.0),
    "swish": (lambda v, a: v * _sigmoid(v), None, math.sqrt(2)),
}


@pytest.mark.parametrize("act", list(FORMULAS))
def test_bias_act_matches_formula(act):
    func, def_alpha, def_gain = FORMULAS[act]
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, dtype=torch.float64) * 3
    b = torch.randn(4, dtype=torch.float64)
    v = (x + b[None, :, None]).numpy()
    # defaults
    y = bias_act(x, b, act=act, impl="ref")
    np.testing.assert_allclose(y.numpy(), func(v, def_alpha) * def_gain, rtol=1e-10, atol=1e-12)
    # explicit gain, clamp, alpha, another dim, no bias
    alpha = 0.3 if def_alpha is not None else None
    y = bias_act(x, b, act=act, alpha=alpha, gain=0.7, clamp=1.1, impl="ref")
    np.testing.assert_allclose(y.numpy(), np.clip(func(v, alpha) * 0.7, -1.1, 1.1), rtol=1e-10, atol=1e-12)
    b2 = torch.randn(5, dtype=torch.float64)
    y = bias_act(x, b2, dim=2, act=act, gain=2.0, impl="ref")
    np.testing.assert_allclose(y.numpy(), func((x + b2).numpy(), def_alpha) * 2.0, rtol=1e-10, atol=1e-12)
    y = bias_act(x, None, act=act, impl="ref")
    np.testing.assert_allclose(y.numpy(), func(x.numpy(), def_alpha) * def_gain, rtol=1e-10, atol=1e-12)
    assert bias_act_mod.ACTIVATIONS[act].def_gain == pytest.approx(def_gain)


def test_bias_act_rejects_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError):
        bias_act(x, torch.randn(4))
    with pytest.raises(ValueError):
        bias_act(x, act="gelu-ish")
    with pytest.raises(ValueError):
        bias_act(x, impl="fast")


# ---------------------------------------------------------------------------------------------
# conv2d_resample


def _conv_resample_explicit(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The op spelled out: FIR up-sampling, a plain convolution, FIR down-sampling."""
    if not flip_weight:
        w = w.flip([2, 3])
    from torch_utils.ops.upfirdn2d import _parse_padding

    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = f.shape[-1], f.shape[0]
    if up > 1:
        x = upsample2d(x, f, up=up, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl="ref")
        return F.conv2d(x, w, groups=groups)
    if down > 1:
        p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
        x = upfirdn2d(x, f, padding=p, flip_filter=flip_filter, impl="ref")
        return F.conv2d(x, w, groups=groups)[:, :, ::down, ::down]
    x = F.pad(x, [px0, px1, py0, py1])
    return F.conv2d(x, w, groups=groups)


@pytest.mark.parametrize("up,down,k,groups,padding", [
    (2, 1, 3, 1, 1), (2, 1, 3, 2, 1), (2, 1, 1, 1, 0), (1, 2, 3, 1, 1), (1, 2, 1, 2, 0),
    (1, 1, 3, 1, 1), (1, 1, 3, 2, [1, 0, 2, 1]), (2, 1, 3, 1, [1, 2, 0, 1]), (4, 1, 3, 1, 1), (1, 2, 3, 2, [0, 1, 1, 2]),
])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_matches_explicit(up, down, k, groups, padding, flip_weight):
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 7, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    for flip_filter in (False, True):
        ff = f if not flip_filter else f * torch.arange(16, dtype=torch.float64).reshape(4, 4)  # asymmetric
        y = conv2d_resample(x, w, ff, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight,
                            flip_filter=flip_filter)
        ref = _conv_resample_explicit(x, w, ff, up, down, padding, groups, flip_weight, flip_filter)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)


def test_conv2d_resample_natural_sizes():
    x = torch.randn(1, 3, 8, 8)
    w = torch.randn(5, 3, 3, 3)
    f = setup_filter([1, 3, 3, 1])
    assert conv2d_resample(x, w, f, up=2, padding=1).shape == (1, 5, 16, 16)
    assert conv2d_resample(x, w, f, down=2, padding=1).shape == (1, 5, 4, 4)
    assert conv2d_resample(x, w, padding=1).shape == (1, 5, 8, 8)


# ---------------------------------------------------------------------------------------------
# Gradients (reference path)


def test_gradcheck_upfirdn2d_ref():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    f = torch.randn(3, 2, dtype=torch.float64)
    for kw in [dict(up=2, padding=[1, 2, 0, 1]), dict(down=2, padding=[2, 1, 1, 0]), dict(up=[2, 1], down=[1, 2], padding=[-1, -1, 1, 0])]:
        assert torch.autograd.gradcheck(lambda x: upfirdn2d(x, f, impl="ref", **kw), (x,))
        assert torch.autograd.gradgradcheck(lambda x: upfirdn2d(x, f, impl="ref", **kw), (x,))


@pytest.mark.parametrize("act", list(FORMULAS))
def test_gradcheck_bias_act_ref(act):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=1.5, impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_gradcheck_conv2d_resample():
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    for up, down in [(2, 1), (1, 2), (1, 1)]:
        fn = lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=1)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w))
    # second order, as R1 regularisation of a discriminator needs it
    fn = lambda x, w: conv2d_resample(x, w, f, down=2, padding=1)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, w))


@pytest.mark.parametrize("seed", range(6))
def test_upfirdn2d_adjoint_used_by_cuda_backward(seed):
    # The CUDA path's backward is the same op with up/down swapped, the filter flipped and the
    # padding from _grad_args; check that formula against autograd of the reference path (CPU).
    rng = np.random.default_rng(seed)
    for _ in range(10):
        h, w = rng.integers(2, 7, size=2)
        fh, fw = rng.integers(1, 5, size=2)
        upx, upy, downx, downy = (int(v) for v in rng.integers(1, 4, size=4))
        pad = [int(v) for v in rng.integers(-2, 5, size=4)]
        if w * upx + pad[0] + pad[1] - fw < 0 or h * upy + pad[2] + pad[3] - fh < 0:
            continue
        x = torch.randn(2, 3, int(h), int(w), dtype=torch.float64, requires_grad=True)
        f = torch.randn(int(fh), int(fw), dtype=torch.float64)
        flip = bool(rng.integers(0, 2))
        y = upfirdn2d(x, f, up=[upx, upy], down=[downx, downy], padding=pad, flip_filter=flip, gain=1.3, impl="ref")
        dy = torch.randn_like(y)
        (dx,) = torch.autograd.grad(y, x, dy)
        args = upfirdn2d_mod._grad_args(x.shape, y.shape, f, upx, upy, downx, downy, *pad, flip, 1.3)
        dx2 = upfirdn2d_mod._upfirdn2d_ref(dy, f, *args)
        assert dx2.shape == dx.shape
        torch.testing.assert_close(dx2, dx, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# CUDA sources: compiled with nvcc where it exists (once per test session, cached by source hash)


def _nvcc_available():
    return _build.find_cuda_home() is not None


@pytest.fixture(scope="session")
def cuda_ops_extension():
    """The compiled ops extension. With a GPU: the one the ops use at run time. Without one:
    compiled for TORCH_CUDA_ARCH_LIST (default 9.0) into its own cache folder, so a test
    build never stands in for the run-time build; rebuilt when a source changes (the name
    holds a hash of the sources), or every session with TEXT2FACE_OPS_FRESH_BUILD=1."""
    if torch.cuda.is_available():
        plugin = _build.get_ops_plugin()
        assert plugin is not None, "the CUDA ops failed to build on a machine with a GPU (see the warning)"
        yield plugin
        return
    if not _nvcc_available():
        pytest.skip("nvcc not found (set CUDA_HOME): the CUDA sources are not compiled on this machine")
    import tempfile

    from torch.utils import cpp_extension

    old_arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    arch = old_arch or "9.0"
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # no device to ask: compile for this architecture
    fresh = os.environ.get("TEXT2FACE_OPS_FRESH_BUILD") == "1"
    if fresh:
        build_dir = tempfile.mkdtemp(prefix="text2face_ops_build_")
    else:  # <torch extensions dir>/text2face_nvcc_test/arch_X
        build_dir = os.path.join(cpp_extension._get_build_directory("text2face_nvcc_test", False),
                                 "arch_" + arch.replace(" ", "_").replace(";", "_"))
    try:
        module = _build.build("ops", _build.OPS_SOURCES, _build.OPS_HEADERS, build_directory=build_dir)
    finally:
        if old_arch is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
    yield module
    if fresh:
        import shutil

        shutil.rmtree(build_dir, ignore_errors=True)


def test_cuda_sources_compile(cuda_ops_extension):
    m = cuda_ops_extension
    assert callable(m.bias_act) and callable(m.upfirdn2d)
    if not torch.cuda.is_available():
        # The bindings run and check their arguments even without a device.
        with pytest.raises(RuntimeError, match="CUDA tensor"):
            m.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2), 1, 1, 1, 1, 0, 0, 0, 0, False)
        with pytest.raises(RuntimeError, match="CUDA tensor"):
            m.bias_act(torch.zeros(2, 3), torch.zeros(3), None, 1, 2, 0, 0.2, 1.4, -1.0)


# ---------------------------------------------------------------------------------------------
# CUDA parity (skipped without a GPU)

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CUDA parity tests skipped")


def _close(a, b, rtol=1e-3):
    scale = b.detach().abs().max().item() if b.numel() else 1.0
    torch.testing.assert_close(a.detach().cpu().to(b.dtype), b.detach().cpu(), rtol=rtol, atol=rtol * max(scale, 1e-6))


@needs_gpu
@pytest.mark.parametrize("act", list(FORMULAS))
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_cuda_bias_act_parity(cuda_ops_extension, act, clamp):
    torch.manual_seed(0)
    x = torch.randn(4, 16, 5, 7, device="cuda") * 2
    b = torch.randn(16, device="cuda")
    dy = torch.randn_like(x)
    outs = {}
    for impl in ("ref", "cuda"):
        xx = x.clone().requires_grad_()
        bb = b.clone().requires_grad_()
        y = bias_act(xx, bb, act=act, clamp=clamp, impl=impl)
        gx, gb = torch.autograd.grad(y, [xx, bb], dy, create_graph=True)
        # second order, as a gradient penalty needs it
        ggx, ggb = torch.autograd.grad((gx ** 2).sum() + gb.sum(), [xx, bb], allow_unused=True)
        outs[impl] = [y, gx, gb] + [t if t is not None else torch.zeros_like(u) for t, u in ((ggx, x), (ggb, b))]
    for a, r in zip(outs["cuda"], outs["ref"]):
        _close(a, r)
    # half precision forward
    yh = bias_act(x.half(), b.half(), act=act, clamp=clamp, impl="cuda")
    assert yh.dtype == torch.float16
    _close(yh.float(), bias_act(x, b, act=act, clamp=clamp, impl="ref"), rtol=1e-2)


@needs_gpu
def test_cuda_bias_act_gradcheck(cuda_ops_extension):
    x = torch.randn(2, 3, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, device="cuda", requires_grad=True)
    for act in ("lrelu", "tanh", "swish"):
        fn = lambda x, b: bias_act(x, b, act=act, clamp=1.5, impl="cuda")  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


@needs_gpu
@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
def test_cuda_upfirdn2d_parity(cuda_ops_extension, case):
    h, w, taps, up, down, padding = UPFIRDN_CASES[case]
    torch.manual_seed(case)
    f = setup_filter(taps, device="cuda")
    x = torch.randn(3, 5, h * 3, w * 2, device="cuda")
    dy = None
    outs = {}
    for impl in ("ref", "cuda"):
        for flip in (False, True):
            xx = x.clone().requires_grad_()
            y = upfirdn2d(xx, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.5, impl=impl)
            dy = torch.randn_like(y) if dy is None or dy.shape != y.shape else dy
            (gx,) = torch.autograd.grad(y, xx, dy)
            outs[(impl, flip)] = (y, gx)
    for flip in (False, True):
        for a, r in zip(outs[("cuda", flip)], outs[("ref", flip)]):
            _close(a, r)
    yh = upfirdn2d(x.half(), f, up=up, down=down, padding=padding, impl="cuda")
    assert yh.dtype == torch.float16
    _close(yh.float(), upfirdn2d(x, f, up=up, down=down, padding=padding, impl="ref"), rtol=1e-2)


@needs_gpu
def test_cuda_upfirdn2d_gradcheck(cuda_ops_extension):
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    f = torch.randn(3, 2, dtype=torch.float64, device="cuda")
    for kw in [dict(up=2, padding=[1, 2, 0, 1]), dict(down=2, padding=[2, 1, 1, 0]), dict(up=[2, 1], down=[1, 2], padding=[-1, -1, 1, 0])]:
        fn = lambda x: upfirdn2d(x, f, impl="cuda", **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


@needs_gpu
@pytest.mark.parametrize("up,down,groups", [(2, 1, 1), (1, 2, 1), (2, 1, 4), (1, 1, 2)])
def test_cuda_conv2d_resample_parity(cuda_ops_extension, up, down, groups):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 9, 10)
    w = torch.randn(12, 8 // groups, 3, 3)
    f = setup_filter([1, 3, 3, 1])
    outs = []
    for dev in ("cpu", "cuda"):
        xx = x.to(dev).requires_grad_()
        ww = w.to(dev).requires_grad_()
        y = conv2d_resample(xx, ww, f.to(dev), up=up, down=down, padding=1, groups=groups, flip_weight=(up == 1))
        gx, gw = torch.autograd.grad(y.square().sum(), [xx, ww])
        outs.append((y, gx, gw))
    for a, r in zip(outs[1], outs[0]):
        _close(a, r)


@pytest.mark.parametrize("act", list(FORMULAS))
def test_bias_act_inference_path_matches_and_leaves_input_alone(act):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    b = torch.randn(3)
    x0 = x.clone()
    for kw in (dict(b=b), dict(b=None), dict(b=b, gain=0.5, clamp=0.7), dict(b=None, gain=3.0, clamp=1.0)):
        with torch.no_grad():
            y = bias_act(x, act=act, impl="ref", **kw)
        ref = bias_act(x.clone().requires_grad_(), act=act, impl="ref", **kw).detach()
        torch.testing.assert_close(y, ref)
        assert torch.equal(x, x0)


# ---------------------------------------------------------------------------------------------
# The CUDA path's autograd wiring, run on the CPU with a stand-in for the compiled kernels
# (the kernels' own arithmetic is covered by the parity tests on a GPU).


class _StandInKernels:
    """Same calls and semantics as the compiled extension, computed with the reference ops."""

    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter):
        assert f.ndim == 2 and x.is_contiguous() and not torch.is_grad_enabled()
        y = upfirdn2d_mod._upfirdn2d_ref(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, 1.0)
        return y.contiguous()  # like the kernel's fresh output

    @staticmethod
    def bias_act(x, b, g, dim, act, order, alpha, gain, clamp):
        assert x.is_contiguous() and (g is None or g.is_contiguous())
        spec = next(s for s in bias_act_mod.ACTIVATIONS.values() if s.index == act)
        shape = [1] * x.ndim
        shape[dim] = -1
        with torch.enable_grad():
            v = (x + (b.reshape(shape) if b.numel() else 0)).detach().requires_grad_()
            u = spec.func(v, alpha) * gain
            if order == 0:
                return (u.clamp(-clamp, clamp) if clamp >= 0 else u).detach()
            (d1,) = torch.autograd.grad(u.sum(), v, create_graph=True)
            d = d1
            if order == 2:
                d = torch.autograd.grad(d1.sum(), v)[0] if d1.requires_grad else torch.zeros_like(v)
        mask = (u.abs() <= clamp) if clamp >= 0 else torch.ones_like(u, dtype=torch.bool)
        return (g * d * mask).detach()


@pytest.fixture
def stand_in_kernels(monkeypatch):
    monkeypatch.setattr(bias_act_mod, "_plugin", lambda: _StandInKernels)
    monkeypatch.setattr(upfirdn2d_mod, "_plugin", lambda: _StandInKernels)


@pytest.mark.parametrize("act", list(FORMULAS))
def test_cuda_path_bias_act_autograd_wiring(stand_in_kernels, act):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    spec, alpha, gain, clamp = bias_act_mod._resolve(act, None, None, 1.5)
    fn = lambda x, b: bias_act_mod._bias_act_cuda(x, b, 1, spec, alpha, gain, clamp)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
    torch.testing.assert_close(fn(x, b), bias_act(x, b, act=act, clamp=1.5, impl="ref"))
    fn_nob = lambda x: bias_act_mod._bias_act_cuda(x, None, 2, spec, alpha, gain, -1.0)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn_nob, (x,))


def test_cuda_path_upfirdn2d_autograd_wiring(stand_in_kernels):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    for f in (torch.randn(3, 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)):
        for kw in [dict(up=2, padding=[1, 2, 0, 1]), dict(down=2, padding=[2, 1, 1, 0], flip_filter=True),
                   dict(up=[2, 1], down=[1, 2], padding=[-1, -1, 1, 0], gain=2.0)]:
            args = (_parse(kw.get("up", 1)) + _parse(kw.get("down", 1)) + upfirdn2d_mod._parse_padding(kw["padding"])
                    + [kw.get("flip_filter", False), kw.get("gain", 1.0)])
            fn = lambda x: upfirdn2d_mod._upfirdn2d_cuda(x, f, *args)  # noqa: E731
            torch.testing.assert_close(fn(x), upfirdn2d(x, f, impl="ref", **kw))
            assert torch.autograd.gradcheck(fn, (x,))
            assert torch.autograd.gradgradcheck(fn, (x,))


def _parse(s):
    return upfirdn2d_mod._parse_scaling(s)
