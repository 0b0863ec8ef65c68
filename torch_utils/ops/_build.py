"""Build-on-first-use for the project's CUDA ops.

``get_plugin(name, sources)`` compiles the .cpp/.cu files that sit next to this module
into a Python extension with ``torch.utils.cpp_extension.load`` (ninja), caches it in
torch's extensions directory (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``)
under a name that includes a hash of the sources, so editing a source triggers a rebuild
and an unchanged source is loaded from the cache. If the build fails, a warning is issued
once and ``None`` is returned; the callers then use their reference PyTorch path.

Include paths: the kernels are plain CUDA (no torch headers) and the bindings use only torch's
c10/cuda headers, so the toolkit's runtime headers suffice. Where the toolkit has no headers,
those shipped in the pip ``nvidia`` packages (``site-packages/nvidia/cu*/include``) are used.
The toolkit is $CUDA_HOME, else found as in ``find_cuda_home``.
"""
from __future__ import annotations

import glob
import hashlib
import os
import site
import sys
import threading
import warnings

OPS_DIR = os.path.dirname(os.path.abspath(__file__))

_plugins: dict[str, object] = {}
_lock = threading.Lock()
verbose = bool(int(os.environ.get("TEXT2FACE_OPS_VERBOSE", "0")))


def nvidia_include_dirs() -> list[str]:
    """Header folders of the pip ``nvidia`` packages (cuBLAS, cuSPARSE, ... headers torch includes)."""
    roots = []
    for sp in list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path:
        if sp and os.path.isdir(os.path.join(sp, "nvidia")) and sp not in roots:
            roots.append(sp)
    dirs: list[str] = []
    for root in roots:
        for pattern in ("nvidia/cu*/include", "nvidia/*/include"):
            for d in sorted(glob.glob(os.path.join(root, pattern))):
                if os.path.isdir(d) and d not in dirs:
                    dirs.append(d)
    return dirs


def _fallback_include_dirs(cuda_home) -> list[str]:
    """The sources need only the toolkit's runtime headers (cuda_runtime.h, cuda_fp16.h) and
    torch's c10/cuda headers. Headers from the pip ``nvidia`` packages are added only when the
    toolkit lacks them (or TEXT2FACE_OPS_PIP_CUDA_HEADERS=1): put in front of a toolkit of another
    CUDA version they would shadow its own headers and break the build."""
    have = all(os.path.exists(os.path.join(cuda_home, "include", h)) for h in ("cuda_runtime_api.h", "cuda_fp16.h"))
    if have and os.environ.get("TEXT2FACE_OPS_PIP_CUDA_HEADERS") != "1":
        return []
    return nvidia_include_dirs()


def source_paths(sources) -> list[str]:
    return [s if os.path.isabs(s) else os.path.join(OPS_DIR, s) for s in sources]


def sources_hash(paths) -> str:
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(os.path.basename(p).encode())
        with open(p, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:12]


def extension_name(name: str, sources, headers=()) -> str:
    return f"text2face_{name}_{sources_hash(source_paths(list(sources) + list(headers)))}"


# The project's single CUDA extension: both ops' kernels and their bindings.
OPS_SOURCES = ["ops.cpp", "bias_act.cu", "upfirdn2d.cu"]
OPS_HEADERS = ["ops_common.h", "bias_act.h", "upfirdn2d.h"]


def _is_cuda_home(d) -> bool:
    return bool(d) and os.path.exists(os.path.join(d, "bin", "nvcc")) and os.path.exists(
        os.path.join(d, "include", "cuda_runtime_api.h"))


def find_cuda_home():
    """The CUDA toolkit folder: $CUDA_HOME / $CUDA_PATH, else torch's guess if it holds nvcc and the
    runtime headers (torch guesses from `which nvcc`, wrong when nvcc is a wrapper script), else
    /usr/local/cuda, /usr/local/cuda-*, /opt/cuda. None when there is no toolkit."""
    from torch.utils import cpp_extension

    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if env:
        return env
    candidates = [cpp_extension.CUDA_HOME, "/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True) + ["/opt/cuda"]
    for d in candidates:
        if _is_cuda_home(d):
            return d
    return None


def build(name: str, sources, headers=(), build_directory=None, verbose_build=None):
    """Compile and import the extension (no device needed); raises on failure."""
    from torch.utils import cpp_extension

    home = find_cuda_home()
    if home is None:
        raise RuntimeError("CUDA toolkit (nvcc) not found; set CUDA_HOME")
    # cpp_extension reads its module-level CUDA_HOME when it builds the include/library paths.
    cpp_extension.CUDA_HOME = home
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
    return cpp_extension.load(
        name=extension_name(name, sources, headers),
        sources=source_paths(sources),
        extra_include_paths=[OPS_DIR] + _fallback_include_dirs(home),
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],
        build_directory=build_directory,
        verbose=verbose if verbose_build is None else verbose_build,
    )


def get_ops_plugin():
    """The compiled ops extension (``bias_act``, ``upfirdn2d``), or None (warned once) if it cannot be built."""
    return get_plugin("ops", OPS_SOURCES, OPS_HEADERS)


def get_plugin(name: str, sources, headers=()):
    """Return the compiled extension module ``name``, or None (with one warning) if it cannot be built."""
    with _lock:
        if name in _plugins:
            return _plugins[name]
        plugin = None
        try:
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError("no CUDA device")
            plugin = build(name, sources, headers)
        except Exception as exc:  # any build/load failure -> reference path
            msg = str(exc).strip().splitlines()
            detail = msg[-1] if msg else type(exc).__name__
            warnings.warn(
                f"torch_utils.ops: could not build the CUDA op '{name}' ({type(exc).__name__}: {detail[:300]}); "
                "falling back to the reference PyTorch implementation (set TEXT2FACE_OPS_VERBOSE=1 for the build log)",
                RuntimeWarning,
                stacklevel=3,
            )
            plugin = None
        _plugins[name] = plugin
        return plugin
