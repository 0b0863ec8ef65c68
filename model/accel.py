"""Optional ``torch.compile`` of the inference paths (``--compile`` on generate, pairs and serve).

At the toy sizes most of a forward pass is per-operation overhead (hundreds of small tensor
operations: modulation, demodulation, bias and activation of every StyleGAN2 layer; the spline
arithmetic of every coupling layer), which inductor fuses into a few generated kernels. What is
compiled, in place on the given models:

- the generator's ``synthesis`` and ``mapping`` networks;
- CLIP's image tower (``visual``) and the project's text route (``clip_io._text_tower``);
- the flow mapper's inverse (``ConditionalFlow._inverse_layers``); other mappers are left as they are.

The first call of each compiled part costs its compilation (22-74 s for generator, CLIP and flow
together on two CPU cores, benchmarks/RESULTS.md; inductor caches the result on disk, so a later
process compiles faster). Results match the eager ones to float rounding (about 1e-5), not bit for
bit; runs that must be bit-identical (``reproduce``) leave compilation off. ``benchmarks/generate.py --compile`` measures the gain.
"""
from __future__ import annotations

import logging
import os
import shutil

import torch

from torch_utils.misc import UserError

__all__ = ["compile_generator", "compile_clip", "compile_mapper", "check_compile_available"]


def check_compile_available(device: str | torch.device = "cpu") -> None:
    """Raise a one-line UserError when ``torch.compile`` cannot build kernels for ``device``."""
    dev = torch.device(device)
    if dev.type == "cpu":
        # Compiling imports torch.utils.cpp_extension, which warns that it found no CUDA runtime:
        # expected here, and not the user's concern.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        cxx = os.environ.get("CXX") or "g++"
        if not any(shutil.which(c) for c in (cxx, "g++", "clang++", "c++")):
            raise UserError("--compile on the CPU needs a C++ compiler (g++ or clang++; or set CXX); none was found")
    elif dev.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise UserError("--compile on CUDA needs the triton package (pip install triton)") from None


def compile_generator(G) -> None:
    """Compile ``G.synthesis`` and ``G.mapping`` in place (their calls go through the compiled code)."""
    if not getattr(G, "_text2face_compiled", False):
        G.synthesis.compile(dynamic=True)
        G.mapping.compile(dynamic=True)
        G._text2face_compiled = True


def compile_clip(clip_model) -> None:
    """Compile CLIP's image tower and the text route of ``model.clip_io`` in place."""
    from model.clip_io import _text_tower

    if not getattr(clip_model, "_text2face_compiled", False):
        clip_model.visual.compile(dynamic=True)
        # Token prefixes change length with the prompts: compiled with a symbolic length.
        clip_model._compiled_text_tower = torch.compile(_text_tower, dynamic=True)
        clip_model._text2face_compiled = True


def compile_mapper(mapper) -> None:
    """Compile a flow mapper's inverse (sampling) in place; other mappers are left eager."""
    from network.flow import ConditionalFlow

    if isinstance(mapper, ConditionalFlow) and not getattr(mapper, "_text2face_compiled", False):
        mapper._inverse_layers = torch.compile(mapper._inverse_layers, dynamic=True)
        mapper._text2face_compiled = True
