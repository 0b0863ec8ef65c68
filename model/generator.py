"""Load StyleGAN2 generators from the formats they are published in.

``load_generator(path_or_url)`` reads

(a) NVIDIA pickles (``network-snapshot-*.pkl`` and the official models of
    stylegan2-ada-pytorch / stylegan3): a pickled dict whose ``G_ema`` is a
    "persistent object" that carries the source code of its class next to its
    state. The file is read by :class:`RestrictedUnpickler`, which resolves only a
    fixed set of globals, each to a stand-in written here (tensor / storage
    rebuilding, ``collections.OrderedDict``, numpy scalars and arrays, the
    persistent-object constructor and ``dnnlib.EasyDict``). The embedded source is
    dropped unread, nothing from the pickle's modules is imported, and any other
    global (``os.system``, ``builtins.eval``, ...) is refused with a
    :class:`UserError`. The generator is then rebuilt from the stored constructor
    arguments, parameters and buffers.
(b) rosinality ``.pt`` files (``{'g_ema': state_dict, 'latent_avg': w}``), read with
    ``torch.load(weights_only=True)``; sizes, channel counts and mapping depth come
    from the tensor shapes.
(c) the project's own checkpoint (safetensors + JSON config, see
    :func:`save_generator`).
(d) ``http(s)://`` and ``file://`` URLs of any of these: downloaded once into the
    cache directory (``$TEXT2FACE_CACHE`` or ``~/.cache/text2face``), atomically.
"""
from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import pickle
import re
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from network.stylegan2 import Generator
from torch_utils import persistence
from torch_utils.misc import UserError

GENERATOR_NETWORK = "stylegan2.Generator"

# ---------------------------------------------------------------------------
# Download cache
# ---------------------------------------------------------------------------

_URL_RE = re.compile(r"^(https?|file)://", re.IGNORECASE)


def is_url(s: str | os.PathLike) -> bool:
    return isinstance(s, str) and bool(_URL_RE.match(s))


def cache_dir() -> Path:
    env = os.environ.get("TEXT2FACE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "text2face"


def download(url: str, timeout: float = 60.0, progress: bool = True) -> Path:
    """Return the cached copy of ``url``, downloading it first if needed (atomically, with a progress bar)."""
    from tqdm import tqdm

    name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:]
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    dest = cache_dir() / f"{key}_{name}"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - user-given URL
            except Exception as e:  # noqa: BLE001
                raise UserError(f"{url}: download failed ({e.__class__.__name__}: {e})") from None
            with resp:
                total = resp.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}",
                          disable=not progress, leave=False) as bar:
                    received = 0
                    while True:
                        try:
                            chunk = resp.read(1 << 20)
                        except Exception as e:  # noqa: BLE001
                            raise UserError(f"{url}: download failed ({e.__class__.__name__}: {e})") from None
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and received != total:
                    raise UserError(f"{url}: download incomplete ({received} of {total} bytes)")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


# ---------------------------------------------------------------------------
# (a) NVIDIA pickles: restricted unpickler and stand-ins
# ---------------------------------------------------------------------------


class PersistentObject:
    """Stand-in for an NVIDIA persistent object: its class name and state, never its source code."""

    def __init__(self, class_name: str, state: dict, version: Any = None):
        self.class_name = class_name
        self.state = state
        self.version = version

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name})"


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object with an unexpected description")
    state = meta.get("state")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("persistent object without a class name or state")
    # meta['module_src'] (the class's source code) is deliberately ignored.
    return PersistentObject(class_name, state, meta.get("version"))


class EasyDict(dict):
    """Stand-in for ``dnnlib.EasyDict``: a plain dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state):  # attributes set via BUILD, if any, become items
        if isinstance(state, dict):
            self.update(state)


def _load_storage_from_bytes(b):
    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not bytes")
    obj = torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    if not isinstance(obj, (torch.UntypedStorage, torch.TypedStorage)):
        raise pickle.UnpicklingError("storage payload is not a storage")
    return obj


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise pickle.UnpicklingError("tensor without a storage")
    # Hooks and metadata are dropped: they cannot be meaningful for weights.
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False,
                                           collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *args):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter without tensor data")
    return torch.nn.Parameter(data, requires_grad=False)


def _np_dtype(spec, align=False, copy=True):
    if not isinstance(spec, str):
        raise pickle.UnpicklingError("numpy dtype with a non-string description")
    return np.dtype(spec, bool(align), bool(copy))


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("numpy scalar of an unsupported type")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _np_reconstruct(cls, shape, dtype):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("numpy reconstruction of a non-array class")
    return np.ndarray.__new__(np.ndarray, shape, np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype)


_NP_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")

# (module, name) -> stand-in. Nothing outside this table is ever resolved.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): _np_dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(m, "scalar"): _np_scalar for m in _NP_MULTIARRAY},
    **{(m, "_reconstruct"): _np_reconstruct for m in _NP_MULTIARRAY},
}


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.global_name = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS`, by name, to our stand-ins."""

    def find_class(self, module: str, name: str):
        fn = ALLOWED_GLOBALS.get((module, name))
        if fn is None:
            raise RefusedGlobal(module, name)
        return fn

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not supported in this format")


def read_nvidia_pickle(path: str | os.PathLike) -> Any:
    """Unpickle an NVIDIA network pickle safely; raises UserError naming the file on any problem."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except RefusedGlobal as e:
        raise UserError(f"{path}: refusing to load pickle: it asks for the global '{e.global_name}', "
                        "which is not allowed in a network pickle") from None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated / corrupt data
        raise UserError(f"{path}: not a readable network pickle (truncated or corrupt: {e.__class__.__name__})") from None


def _flat_state(obj: PersistentObject, path: str, prefix: str = "") -> dict[str, torch.Tensor]:
    state = obj.state
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if v is None:
                continue
            if not isinstance(v, torch.Tensor):
                raise UserError(f"{path}: '{prefix}{k}' is not a tensor")
            out[prefix + k] = v.detach()
    for k, m in (state.get("_modules") or {}).items():
        if m is None:
            continue
        if not isinstance(m, PersistentObject):
            raise UserError(f"{path}: submodule '{prefix}{k}' is not a network object")
        out.update(_flat_state(m, path, prefix + k + "."))
    return out


_NV_GEN_ARGS = ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"]
_NV_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
               "embed_features": "embed_features", "layer_features": "layer_features", "w_avg_beta": "w_avg_beta"}
_NV_SYNTHESIS = {"channel_base": "channel_base", "channel_max": "channel_max", "num_fp16_res": "num_fp16_res",
                 "conv_clamp": "conv_clamp", "architecture": "architecture", "resample_filter": "resample_filter",
                 "use_noise": "use_noise"}
# Options that change speed or memory layout only.
_NV_IGNORED = {"fp16_channels_last", "fused_modconv_default", "channels_last", "num_ws"}


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def nvidia_generator_kwargs(obj: PersistentObject, path: str) -> dict[str, Any]:
    """Our ``Generator`` kwargs from an NVIDIA Generator's stored constructor arguments."""
    state = obj.state
    args = list(state.get("_init_args") or ())
    kwargs = dict(state.get("_init_kwargs") or {})
    if len(args) > len(_NV_GEN_ARGS):
        raise UserError(f"{path}: unexpected constructor arguments for Generator")
    kwargs.update(zip(_NV_GEN_ARGS, args))
    kwargs = _plain(kwargs)
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if key not in kwargs:
            raise UserError(f"{path}: G_ema has no '{key}' constructor argument; not a StyleGAN2 generator")
    # NVIDIA's defaults where an argument was not given.
    out = dict(z_dim=kwargs["z_dim"], c_dim=kwargs["c_dim"], w_dim=kwargs["w_dim"],
               img_resolution=kwargs["img_resolution"], img_channels=kwargs["img_channels"],
               mapping_layers=8, mapping_lr_multiplier=0.01, w_avg_beta=0.995,
               channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None)
    extra = set(kwargs) - set(_NV_GEN_ARGS)
    mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})
    synthesis_kwargs = dict(kwargs.get("synthesis_kwargs") or {})
    # Older snapshots pass the synthesis options as plain keyword arguments of Generator.
    for k in list(extra):
        if k in _NV_SYNTHESIS or k in _NV_IGNORED:
            synthesis_kwargs.setdefault(k, kwargs[k])
            extra.discard(k)
    if extra:
        raise UserError(f"{path}: unsupported Generator options {sorted(extra)}")
    act = mapping_kwargs.pop("activation", "lrelu")
    if act != "lrelu":
        raise UserError(f"{path}: unsupported mapping activation '{act}'")
    for k, v in mapping_kwargs.items():
        if k not in _NV_MAPPING:
            raise UserError(f"{path}: unsupported mapping option '{k}'")
        out[_NV_MAPPING[k]] = v
    for k, v in synthesis_kwargs.items():
        if k in _NV_IGNORED:
            continue
        if k not in _NV_SYNTHESIS:
            raise UserError(f"{path}: unsupported synthesis option '{k}'")
        out[_NV_SYNTHESIS[k]] = v
    return out


def generator_from_nvidia(obj: Any, path: str) -> Generator:
    """Build our Generator from the unpickled NVIDIA data (the file's dict, or G_ema itself)."""
    if isinstance(obj, dict):
        if "G_ema" not in obj:
            raise UserError(f"{path}: pickle has no 'G_ema' entry; not a StyleGAN2 network pickle")
        obj = obj["G_ema"]
    if not isinstance(obj, PersistentObject) or obj.class_name != "Generator":
        raise UserError(f"{path}: 'G_ema' is not a StyleGAN2 Generator")
    modules = obj.state.get("_modules") or {}
    synthesis = modules.get("synthesis")
    if not isinstance(synthesis, PersistentObject) or synthesis.class_name != "SynthesisNetwork":
        raise UserError(f"{path}: G_ema has no StyleGAN2 synthesis network")
    sub = set((synthesis.state.get("_modules") or {}).keys())
    if "input" in sub or not any(re.fullmatch(r"b\d+", k) for k in sub):
        raise UserError(f"{path}: this is not a StyleGAN2 synthesis network (StyleGAN3 generators are not supported)")
    kwargs = nvidia_generator_kwargs(obj, path)
    state = _flat_state(obj, path)
    try:
        G = Generator(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot build the generator from its stored options ({e})") from None
    _check_filters(G, state, path)
    _load_state(G, {k: v for k, v in state.items() if not k.endswith("resample_filter")}, path)
    return G


def _check_filters(G: Generator, state: dict[str, torch.Tensor], path: str) -> None:
    ours = dict(G.named_buffers())
    for k, v in state.items():
        if k.endswith("resample_filter") and k in ours:
            mine = ours[k]
            if mine.shape != v.shape or not torch.allclose(mine, v.to(mine.dtype), atol=1e-6):
                raise UserError(f"{path}: '{k}' does not match the stored resample_filter option")


def _load_state(G: torch.nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    own = G.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
        raise UserError(f"{path}: checkpoint does not match the StyleGAN2 generator layout ({'; '.join(parts)})")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise UserError(f"{path}: '{k}' has shape {list(v.shape)}, expected {list(own[k].shape)}")
    G.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)


# ---------------------------------------------------------------------------
# (b) rosinality state dicts
# ---------------------------------------------------------------------------


def _filter_taps_from_kernel(kernel: torch.Tensor) -> list[float]:
    """1-D taps of a separable, normalised 2-D kernel (up to scale, which the filter setup removes)."""
    k = kernel.to(torch.float64)
    taps = k.sum(dim=0)
    taps = taps / taps.sum()
    if not torch.allclose(torch.outer(taps, taps) * k.sum(), k, atol=1e-6 * float(k.abs().max())):
        raise ValueError("blur kernel is not separable")
    return [float(t) for t in taps]


def generator_from_rosinality(sd: dict[str, torch.Tensor], latent_avg: torch.Tensor | None, path: str,
                              lr_mlp: float = 0.01) -> Generator:
    """Convert a rosinality ``g_ema`` state dict. Sizes come from the tensor shapes."""
    try:
        n_mlp = 0
        while f"style.{n_mlp + 1}.weight" in sd:
            n_mlp += 1
        if n_mlp == 0 or "input.input" not in sd or "conv1.conv.weight" not in sd:
            raise UserError(f"{path}: state dict is not a rosinality StyleGAN2 generator (no style.*/input/conv1 keys)")
        z_dim = sd["style.1.weight"].shape[1]
        w_dim = sd[f"style.{n_mlp}.weight"].shape[0]
        n_convs = 0
        while f"convs.{n_convs}.conv.weight" in sd:
            n_convs += 1
        if n_convs % 2:
            raise UserError(f"{path}: odd number of synthesis convolutions ({n_convs})")
        n_blocks = n_convs // 2 + 1
        resolution = 2 ** (n_blocks + 1)
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
        channels = [sd["input.input"].shape[1]] + [sd[f"convs.{2 * i}.conv.weight"].shape[1] for i in range(n_blocks - 1)]
        taps = [1.0, 3.0, 3.0, 1.0]
        if "to_rgbs.0.upsample.kernel" in sd:
            taps = _filter_taps_from_kernel(sd["to_rgbs.0.upsample.kernel"])
        G = Generator(z_dim=z_dim, w_dim=w_dim, c_dim=0, img_resolution=resolution, img_channels=img_channels,
                      mapping_layers=n_mlp, mapping_lr_multiplier=lr_mlp, channels=channels, num_fp16_res=0,
                      conv_clamp=None, resample_filter=taps)
        out: dict[str, torch.Tensor] = {}
        for i in range(n_mlp):
            out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
            out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
        out["mapping.w_avg"] = (latent_avg if latent_avg is not None else torch.zeros([w_dim])).reshape(w_dim)
        out["synthesis.b4.const"] = sd["input.input"][0]

        def styled(src: str, dst: str, noise: str):
            wt = sd[f"{src}.conv.weight"][0]  # [O, I, k, k]
            fan_in = wt.shape[1] * wt.shape[2] * wt.shape[3]
            # rosinality scales the weight by 1/sqrt(fan_in) before demodulating; bake the scale in
            # so that the demodulation epsilon acts on the same numbers.
            out[f"{dst}.weight"] = wt / math.sqrt(fan_in)
            out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
            out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
            out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
            out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
            out[f"{dst}.noise_const"] = sd[noise].reshape(sd[noise].shape[-2:])

        def torgb(src: str, dst: str):
            out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
            out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
            out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
            out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

        styled("conv1", "synthesis.b4.conv1", "noises.noise_0")
        torgb("to_rgb1", "synthesis.b4.torgb")
        for i in range(n_blocks - 1):
            res = 2 ** (i + 3)
            styled(f"convs.{2 * i}", f"synthesis.b{res}.conv0", f"noises.noise_{2 * i + 1}")
            styled(f"convs.{2 * i + 1}", f"synthesis.b{res}.conv1", f"noises.noise_{2 * i + 2}")
            torgb(f"to_rgbs.{i}", f"synthesis.b{res}.torgb")
    except KeyError as e:
        raise UserError(f"{path}: rosinality state dict lacks {e}; truncated or not a StyleGAN2 generator") from None
    except (ValueError, IndexError) as e:
        raise UserError(f"{path}: cannot convert rosinality state dict ({e})") from None
    _load_state(G, out, path)
    if latent_avg is None:
        with torch.no_grad():
            z = torch.randn([4096, z_dim], generator=torch.Generator().manual_seed(0))
            G.mapping.w_avg.copy_(G.mapping(z, update_w_avg=False)[:, 0].mean(0))
    return G


def read_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with a one-line UserError on failure."""
    import argparse

    safe = [argparse.Namespace]
    try:
        ctx = torch.serialization.safe_globals(safe) if hasattr(torch.serialization, "safe_globals") else None
        if ctx is None:
            return torch.load(path, map_location="cpu", weights_only=True)
        with ctx:
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        if "Unsupported global" in str(e) or "weights_only" in str(e):
            raise UserError(f"{path}: refusing to load: the file needs objects that are not plain tensors ({msg[:200]})") from None
        raise UserError(f"{path}: not a readable torch checkpoint (truncated or corrupt: {e.__class__.__name__})") from None


# ---------------------------------------------------------------------------
# (c) the project's own format
# ---------------------------------------------------------------------------


def save_generator(G: Generator, path: str | os.PathLike, **extra: Any) -> None:
    """Write ``G`` as a project checkpoint (safetensors + JSON config). ``extra`` goes into the config."""
    config = dict(extra)
    config.update(network=GENERATOR_NETWORK, init_kwargs=G.init_kwargs)
    persistence.save_checkpoint(path, G.state_dict(), config)


def generator_from_project(path: str | os.PathLike) -> Generator:
    state, config = persistence.load_checkpoint(path)
    if config.get("network") != GENERATOR_NETWORK or not isinstance(config.get("init_kwargs"), dict):
        raise UserError(f"{path}: project checkpoint holds '{config.get('network')}', not a StyleGAN2 generator")
    try:
        G = Generator(**config["init_kwargs"])
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: bad generator config ({e})") from None
    _load_state(G, state, str(path))
    return G


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

_ZIP_MAGIC = b"PK\x03\x04"
# First opcodes of protocol 0/1 pickles of a dict or a global (mark, empty dict, global, ...).
_PICKLE_V0_STARTS = set("(}]ci")
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def detect_format(path: str | os.PathLike) -> str:
    """'project' | 'torch' | 'pickle', from the file's first bytes (not its name)."""
    with open(path, "rb") as f:
        head = f.read(32)
    if not head:
        raise UserError(f"{path}: empty file; not a generator checkpoint")
    if persistence.is_project_checkpoint(path):
        return "project"
    if head.startswith(_ZIP_MAGIC) or head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    if (head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5) or head[:1].decode("latin-1") in _PICKLE_V0_STARTS:
        return "pickle"  # protocol 2+ (PROTO opcode), or an old protocol 0/1 pickle
    raise UserError(f"{path}: not a generator checkpoint (expected an NVIDIA .pkl, a rosinality .pt "
                    "or a project .safetensors file)")


def load_generator(path_or_url: str | os.PathLike, device: str | torch.device = "cpu",
                   requires_grad: bool = False) -> Generator:
    """Load a StyleGAN2 generator from an NVIDIA pickle, a rosinality .pt, a project checkpoint or a URL.

    Returns our :class:`network.stylegan2.Generator` in eval mode on ``device``.
    """
    src = str(path_or_url)
    path = download(src) if is_url(src) else Path(src).expanduser()
    if not Path(path).is_file():
        raise UserError(f"{src}: no such generator file")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    fmt = detect_format(path)
    if fmt == "project":
        G = generator_from_project(path)
    elif fmt == "torch":
        data = read_torch_file(path)
        if isinstance(data, dict) and "g_ema" in data:
            G = generator_from_rosinality(data["g_ema"], data.get("latent_avg"), src)
        elif isinstance(data, dict) and "style.1.weight" in data:
            G = generator_from_rosinality(data, None, src)
        else:
            raise UserError(f"{src}: torch file has no 'g_ema' generator state (not a rosinality StyleGAN2 checkpoint)")
    else:
        G = generator_from_nvidia(read_nvidia_pickle(path), src)
    G.eval().requires_grad_(requires_grad)
    return G.to(dev)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def seed_latent(seed: int, z_dim: int) -> torch.Tensor:
    """z for a seed, drawn as NVIDIA's generate.py does (numpy RandomState), so seeds name the same images."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).to(torch.float32)


def default_generator_path() -> str:
    from model.bundled import bundled_path

    p = bundled_path("generator", required=False)
    if p is None:
        raise UserError("--generator is required: the bundled toy generator is not built yet "
                        "(give an NVIDIA .pkl, a rosinality .pt, a project checkpoint or a URL)")
    return str(p)


def sample_images(G: Generator, seeds: list[int], truncation_psi: float = 1.0, noise_mode: str = "const",
                  class_idx: int | None = None, batch_size: int = 8, progress: bool = True) -> torch.Tensor:
    """Images [N, C, H, W] (float32, CPU, nominal [-1, 1]) for the given seeds."""
    from tqdm import tqdm

    device = next(G.parameters()).device
    c = None
    if G.c_dim > 0:
        if class_idx is None:
            raise UserError(f"this generator is conditional (c_dim={G.c_dim}); give --class")
        if not 0 <= class_idx < G.c_dim:
            raise UserError(f"--class {class_idx}: out of range 0..{G.c_dim - 1}")
        c = torch.zeros([1, G.c_dim], device=device)
        c[0, class_idx] = 1
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(seeds), batch_size), desc="sampling", disable=not progress or len(seeds) <= batch_size,
                      leave=False):
            chunk = seeds[i:i + batch_size]
            z = torch.cat([seed_latent(s, G.z_dim) for s in chunk]).to(device)
            cc = c.expand(len(chunk), -1) if c is not None else None
            ws = G.mapping(z, cc, truncation_psi=truncation_psi)
            out.append(G.synthesis(ws, noise_mode=noise_mode).float().cpu())
    return torch.cat(out)


def sample_grid(generator: str | None, seeds: list[int], out: str | os.PathLike, truncation_psi: float = 1.0,
                noise_mode: str = "const", device: str = "cpu", class_idx: int | None = None) -> Path:
    """Load a generator, render one image per seed and write a grid with the seeds as row labels."""
    from torch_utils.misc import image_grid
    from torch_utils.persistence import atomic_write

    G = load_generator(generator or default_generator_path(), device=device)
    imgs = sample_images(G, seeds, truncation_psi, noise_mode, class_idx)
    ncols = max(1, min(len(seeds), math.ceil(math.sqrt(len(seeds)))))
    rows = [seeds[i:i + ncols] for i in range(0, len(seeds), ncols)]
    labels = ["seeds " + ", ".join(str(s) for s in row) for row in rows]
    grid = image_grid(imgs, ncols, row_labels=labels, cell_scale=max(1, 128 // G.img_resolution))
    out = Path(out)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower(), "PNG")
    atomic_write(out, lambda tmp: grid.save(tmp, format=fmt))
    return out
