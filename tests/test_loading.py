"""load_generator: both external formats for generators of other sizes, refusal of unsafe pickles,
broken files, the project format, URLs, and the `sample` command's errors."""
from __future__ import annotations

import collections
import functools
import http.server
import math
import os
import pickle
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import main as cli_main
import torch_utils.persistence
from model import load_generator, save_generator
from model.generator import download
from network.stylegan2 import Generator
from torch_utils.misc import UserError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "stylegan2"


def fixture(name: str) -> Path:
    p = FIXTURES / name
    if not p.is_file():
        pytest.skip(f"StyleGAN2 fixture {p} is absent (it lives in ../shared/fixtures/stylegan2 beside the repository)")
    return p


def perturbed(G: Generator, seed: int = 0) -> Generator:
    """Move every weight away from its initial value, so a mis-mapped tensor changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=g))
    return G.eval()


def outputs(G: Generator, n: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=g)
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else None
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=0.6)
        return ws, G.synthesis(ws, noise_mode="const")


# ---------------------------------------------------------------------------
# Test-only exporters into the two external layouts
# ---------------------------------------------------------------------------

MARKER_ENV = "T2F_TEST_MARKER"
EVIL_SRC = "import os\nopen(os.environ['T2F_TEST_MARKER'], 'w').write('source was executed')\n"


class _NVPersistent:
    """Pickles as NVIDIA's persistent objects do: torch_utils.persistence._reconstruct_persistent_obj(meta)."""

    def __init__(self, class_name: str, state: dict):
        self.meta = dict(type="class", version=6, module_src=EVIL_SRC, class_name=class_name, state=state)

    def __reduce__(self):
        return (_fake_reconstruct, (self.meta,))


def _fake_reconstruct(meta):  # only its name matters; it is never called by the loader
    raise AssertionError("never called")


_fake_reconstruct.__module__ = "torch_utils.persistence"
_fake_reconstruct.__qualname__ = _fake_reconstruct.__name__ = "_reconstruct_persistent_obj"


class _EasyDict(dict):
    pass


_EasyDict.__module__ = "dnnlib.util"
_EasyDict.__qualname__ = _EasyDict.__name__ = "EasyDict"


def _nv_module_state(m: torch.nn.Module, init_kwargs: dict) -> dict:
    params = collections.OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
                                     for k, v in m._parameters.items() if v is not None)
    buffers = collections.OrderedDict((k, v.clone()) for k, v in m._buffers.items() if v is not None)
    children = collections.OrderedDict((k, _nv_export_module(c)) for k, c in m._modules.items())
    state = dict(training=False, _parameters=params, _buffers=buffers, _non_persistent_buffers_set=set(),
                 _modules=children, _init_args=(), _init_kwargs=init_kwargs)
    if hasattr(m, "weight_gain"):
        state["weight_gain"] = np.float64(m.weight_gain)  # numpy scalars appear in real pickles
    return state


def _nv_export_module(m: torch.nn.Module) -> _NVPersistent:
    return _NVPersistent(type(m).__name__, _nv_module_state(m, {}))


def export_nvidia_pickle(G: Generator, path: Path) -> None:
    """A network-snapshot-like pickle: {'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}."""
    k = G.init_kwargs
    init_kwargs = dict(z_dim=k["z_dim"], c_dim=k["c_dim"], w_dim=k["w_dim"], img_resolution=k["img_resolution"],
                       img_channels=k["img_channels"],
                       mapping_kwargs=_EasyDict(num_layers=k["mapping_layers"]),
                       synthesis_kwargs=_EasyDict(channel_base=k["channel_base"], channel_max=k["channel_max"],
                                                  num_fp16_res=k["num_fp16_res"], conv_clamp=k["conv_clamp"],
                                                  fp16_channels_last=False))
    state = _nv_module_state(G, init_kwargs)
    # NVIDIA stores the resampling filters as persistent buffers.
    for name, sub in G.named_modules():
        if "resample_filter" in sub._buffers:
            owner = state
            for part in [p for p in name.split(".") if p]:
                owner = owner["_modules"][part].meta["state"]
            owner["_buffers"]["resample_filter"] = sub.resample_filter.clone()
    aug = _NVPersistent("AugmentPipe", dict(_parameters={}, _buffers={}, _modules={}, xflip=np.array([1.0, 0.0]),
                                            _init_kwargs=_EasyDict(xflip=1)))
    data = dict(G=_NVPersistent("Generator", state), D=None, G_ema=_NVPersistent("Generator", state),
                training_set_kwargs=_EasyDict(path="ffhq.zip", resolution=k["img_resolution"]), augment_pipe=aug)
    saved = {}
    fake_dnnlib = types.ModuleType("dnnlib")
    fake_util = types.ModuleType("dnnlib.util")
    fake_util.EasyDict = _EasyDict
    fake_dnnlib.util = fake_util
    saved_mods = {m: sys.modules.get(m) for m in ("dnnlib", "dnnlib.util")}
    saved["attr"] = getattr(torch_utils.persistence, "_reconstruct_persistent_obj", None)
    try:
        sys.modules["dnnlib"], sys.modules["dnnlib.util"] = fake_dnnlib, fake_util
        torch_utils.persistence._reconstruct_persistent_obj = _fake_reconstruct
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=4)
    finally:
        for m, v in saved_mods.items():
            if v is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = v
        if saved["attr"] is None:
            del torch_utils.persistence._reconstruct_persistent_obj
        else:
            torch_utils.persistence._reconstruct_persistent_obj = saved["attr"]


def export_rosinality(G: Generator, path: Path) -> None:
    """{'g_ema': rosinality state dict, 'latent_avg': w_avg} for a skip-architecture, clamp-free generator."""
    sd = {}
    k = G.init_kwargs
    for i in range(k["mapping_layers"]):
        fc = getattr(G.mapping, f"fc{i}")
        sd[f"style.{i + 1}.weight"] = fc.weight.detach().clone()
        sd[f"style.{i + 1}.bias"] = fc.bias.detach().clone()
    syn = G.synthesis
    sd["input.input"] = syn.b4.const.detach()[None].clone()
    taps = torch.tensor(k["resample_filter"], dtype=torch.float32)
    kernel = torch.outer(taps, taps)
    kernel = kernel / kernel.sum() * 4
    noises = []

    def styled(layer, dst):
        w = layer.weight.detach()
        sd[f"{dst}.conv.weight"] = (w * math.sqrt(w[0].numel()))[None].clone()  # rosinality scales at run time
        if layer.up == 2:
            sd[f"{dst}.conv.blur.kernel"] = kernel * 4
        sd[f"{dst}.conv.modulation.weight"] = layer.affine.weight.detach().clone()
        sd[f"{dst}.conv.modulation.bias"] = layer.affine.bias.detach().clone()
        sd[f"{dst}.noise.weight"] = layer.noise_strength.detach().reshape(1).clone()
        sd[f"{dst}.activate.bias"] = layer.bias.detach().clone()
        noises.append(layer.noise_const.detach()[None, None].clone())

    def torgb(layer, dst, up):
        sd[f"{dst}.conv.weight"] = layer.weight.detach()[None].clone()
        sd[f"{dst}.conv.modulation.weight"] = layer.affine.weight.detach().clone()
        sd[f"{dst}.conv.modulation.bias"] = layer.affine.bias.detach().clone()
        sd[f"{dst}.bias"] = layer.bias.detach().reshape(1, -1, 1, 1).clone()
        if up:
            sd[f"{dst}.upsample.kernel"] = kernel.clone()

    styled(syn.b4.conv1, "conv1")
    torgb(syn.b4.torgb, "to_rgb1", False)
    for i, block in enumerate(syn.blocks()[1:]):
        styled(block.conv0, f"convs.{2 * i}")
        styled(block.conv1, f"convs.{2 * i + 1}")
        torgb(block.torgb, f"to_rgbs.{i}", True)
    for i, n in enumerate(noises):
        sd[f"noises.noise_{i}"] = n
    torch.save({"g_ema": sd, "latent_avg": G.w_avg.detach().clone()}, path)


# ---------------------------------------------------------------------------
# Other sizes through both external formats
# ---------------------------------------------------------------------------

NV_CONFIGS = [
    dict(z_dim=24, w_dim=40, c_dim=3, img_resolution=64, mapping_layers=3, channel_base=512, channel_max=32,
         num_fp16_res=2, conv_clamp=128),
    dict(z_dim=8, w_dim=16, c_dim=0, img_resolution=8, mapping_layers=1, channel_base=64, channel_max=16,
         num_fp16_res=0, conv_clamp=None),
]


@pytest.mark.parametrize("cfg", NV_CONFIGS, ids=["64px-cond-fp16", "8px-noclamp"])
def test_nvidia_pickle_of_other_sizes(tmp_path, monkeypatch, cfg):
    marker = tmp_path / "executed"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    torch.manual_seed(3)
    G = perturbed(Generator(**cfg))
    path = tmp_path / "network-snapshot-000123.pkl"
    export_nvidia_pickle(G, path)
    G2 = load_generator(path)
    assert not marker.exists(), "the embedded source code must never run"
    for key in ("z_dim", "w_dim", "c_dim", "img_resolution", "mapping_layers", "channel_base", "channel_max",
                "num_fp16_res"):
        assert G2.init_kwargs[key] == G.init_kwargs[key]
    assert G2.num_ws == G.num_ws and G2.synthesis.channels == G.synthesis.channels
    (ws, img), (ws2, img2) = outputs(G), outputs(G2)
    assert torch.allclose(ws, ws2, atol=1e-6) and torch.allclose(img, img2, atol=1e-5)


@pytest.mark.parametrize("res,style_dim,n_mlp,channels", [(64, 40, 3, [48, 40, 32, 24, 16]), (16, 24, 5, [8, 16, 12])])
def test_rosinality_of_other_sizes(tmp_path, res, style_dim, n_mlp, channels):
    torch.manual_seed(4)
    G = perturbed(Generator(z_dim=style_dim, w_dim=style_dim, img_resolution=res, mapping_layers=n_mlp,
                            channels=channels, num_fp16_res=0, conv_clamp=None))
    path = tmp_path / "stylegan2-custom.pt"
    export_rosinality(G, path)
    G2 = load_generator(path)
    assert (G2.z_dim, G2.w_dim, G2.img_resolution, G2.num_ws) == (style_dim, style_dim, res, G.num_ws)
    assert list(G2.synthesis.channels.values()) == channels
    assert G2.init_kwargs["mapping_layers"] == n_mlp
    (ws, img), (ws2, img2) = outputs(G), outputs(G2)
    assert torch.allclose(ws, ws2, atol=1e-6) and torch.allclose(img, img2, atol=1e-4)


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    torch.manual_seed(5)
    G = perturbed(Generator(z_dim=16, w_dim=16, img_resolution=8, mapping_layers=2, channels=[8, 8],
                            num_fp16_res=0, conv_clamp=None))
    path = tmp_path / "g.pt"
    export_rosinality(G, path)
    data = torch.load(path, weights_only=True)
    torch.save(data["g_ema"], path)  # a bare state dict
    G2 = load_generator(path)
    with torch.no_grad():
        w = G.mapping(torch.randn(20000, 16))[:, 0].mean(0)
    assert torch.allclose(G2.w_avg, w, atol=0.15 * float(w.abs().max()) + 1e-3)


# ---------------------------------------------------------------------------
# Unsafe and broken files
# ---------------------------------------------------------------------------


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def test_pickle_asking_for_os_system_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    # Hand-written opcodes: GLOBAL 'os system', then a call.
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UserError) as e:
        load_generator(path)
    msg = str(e.value)
    assert str(path) in msg and "os.system" in msg and "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("fn,arg", [(eval, "1+1"), (os.system, "true"), (getattr, "x")])
def test_reduce_objects_inside_a_snapshot_are_refused(tmp_path, fn, arg):
    path = tmp_path / "snap.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(fn, arg), "D": None}, protocol=4))
    with pytest.raises(UserError) as e:
        load_generator(path)
    assert str(path) in str(e.value) and fn.__name__ in str(e.value) and "refus" in str(e.value)


def test_torch_file_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(os.system, "true")}, path)
    with pytest.raises(UserError) as e:
        load_generator(path)
    assert str(path) in str(e.value)


def _run_sample(args, capsys):
    rc = cli_main.main(["sample", *args])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("make", ["truncated_pkl", "truncated_pt", "random", "empty", "not_generator"])
def test_broken_files_give_one_line_and_exit_1(tmp_path, capsys, make):
    path = tmp_path / "bad.bin"
    if make == "truncated_pkl":
        path.write_bytes(fixture("ada_tiny32.pkl").read_bytes()[:50_000])
    elif make == "truncated_pt":
        path.write_bytes(fixture("rosinality_tiny32.pt").read_bytes()[:100_000])
    elif make == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif make == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(pickle.dumps({"hello": [1, 2, 3]}))
    rc, err = _run_sample(["--generator", str(path), "--seeds", "0", "--out", str(tmp_path / "g.png")], capsys)
    assert rc == 1
    assert err.startswith("error: ") and str(path) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.png").exists()


def test_cli_exit_status_in_a_subprocess(tmp_path):
    bad = tmp_path / "random.pkl"
    bad.write_bytes(b"\x80\x04" + np.random.default_rng(1).bytes(1000))
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "sample", "--generator", str(bad), "--out",
                        str(tmp_path / "g.png")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_missing_file_and_default_generator(tmp_path, capsys, monkeypatch):
    rc, err = _run_sample(["--generator", str(tmp_path / "nope.pkl")], capsys)
    assert rc == 1 and "no such" in err
    import model.bundled

    monkeypatch.setattr(model.bundled, "PRETRAINED_DIR", tmp_path / "pretrained")
    rc, err = _run_sample(["--out", str(tmp_path / "g.png")], capsys)
    assert rc == 1 and "--generator" in err


def test_sample_writes_a_labelled_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc, err = _run_sample(["--generator", str(fixture("ada_tiny32.pkl")), "--seeds", "0-4", "--trunc", "0.7",
                           "--out", str(out)], capsys)
    assert rc == 0, err
    from PIL import Image

    im = np.asarray(Image.open(out))
    assert im.shape[0] > 3 * 32 and im.shape[1] > 3 * 32  # 3 columns x 2 rows + labels
    assert im.std() > 10


# ---------------------------------------------------------------------------
# Project format and URLs
# ---------------------------------------------------------------------------


def test_project_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(6)
    G = perturbed(Generator(z_dim=12, w_dim=20, c_dim=2, img_resolution=16, mapping_layers=2, channels=[16, 12, 8],
                            num_fp16_res=1, conv_clamp=64, architecture="orig"))
    path = tmp_path / "g.safetensors"
    save_generator(G, path, note="unit test")
    G2 = load_generator(path)
    assert G2.init_kwargs == G.init_kwargs
    (ws, img), (ws2, img2) = outputs(G), outputs(G2)
    assert torch.equal(ws, ws2) and torch.equal(img, img2)


def test_project_checkpoint_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    torch_utils.persistence.save_checkpoint(path, {"w": torch.zeros(2)}, {"network": "flow"})
    with pytest.raises(UserError, match="not a StyleGAN2 generator"):
        load_generator(path)


class _Server:
    """A loopback HTTP server for one directory, in a thread; stops itself after ``limit_s`` at the latest."""

    def __init__(self, directory: Path, limit_s: float = 60):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
        self.timer = threading.Timer(limit_s, self.httpd.shutdown)

    def __enter__(self):
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def test_http_url_downloaded_once_into_cache(tmp_path, monkeypatch):
    src = fixture("rosinality_tiny32.pt")
    served = tmp_path / "www"
    served.mkdir()
    (served / "stylegan2-tiny.pt").write_bytes(src.read_bytes())
    cache = tmp_path / "cache"
    monkeypatch.setenv("TEXT2FACE_CACHE", str(cache))
    with _Server(served) as srv:
        url = f"{srv.url}/stylegan2-tiny.pt"
        G1 = load_generator(url)
        G2 = load_generator(url)
        assert srv.requests == 1, "the second load must come from the cache"
        with pytest.raises(UserError, match="download failed"):
            load_generator(f"{srv.url}/missing.pt")
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.endswith("stylegan2-tiny.pt")
    assert files[0].read_bytes() == src.read_bytes()
    assert torch.equal(G1.w_avg, G2.w_avg)


def test_file_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXT2FACE_CACHE", str(tmp_path / "cache"))
    G = load_generator(fixture("ada_tiny32.pkl").as_uri())
    assert G.img_resolution == 32
    assert download(fixture("ada_tiny32.pkl").as_uri()).is_file()
