"""Loading CLIP models and embedding text and image batches with them.

Real users pass an OpenAI model name (``"ViT-B/32"``, downloaded by the ``clip``
package itself); the project's own toy CLIP models are state-dict files that the
very same ``clip.load`` call reads. Everything here returns float32,
L2-normalised embeddings.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.misc import UserError

with warnings.catch_warnings():  # clip imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import clip

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _is_model_name(name: str) -> bool:
    return name in clip.available_models()


def load_clip(name_or_path: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a CLIP model (OpenAI name or a state-dict file) in eval mode, float32, on ``device``."""
    name_or_path = str(name_or_path)
    if not _is_model_name(name_or_path) and not os.path.isfile(name_or_path):
        raise UserError(
            f"CLIP model '{name_or_path}' not found: not a file and not one of {', '.join(clip.available_models())}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = clip.load(name_or_path, device=device, jit=False)
    except UserError:
        raise
    except Exception as e:  # corrupt file, wrong format, failed download
        raise UserError(f"cannot load CLIP model '{name_or_path}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    return model.float().eval()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: str) -> str:
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def clip_identity(name_or_path: str) -> str:
    """A stable, path-safe key naming a CLIP model, for embedding caches.

    OpenAI names map to themselves with ``/`` and ``@`` made path-safe (``ViT-B-32``);
    a file maps to ``sha256-<hex digest of its bytes>``, so a renamed copy shares its
    cache and a retrained file never reuses a stale one.
    """
    name_or_path = str(name_or_path)
    if _is_model_name(name_or_path):
        return name_or_path.replace("/", "-").replace("@", "-")
    if os.path.isfile(name_or_path):
        return "sha256-" + _file_sha256(name_or_path)
    raise UserError(
        f"CLIP model '{name_or_path}' not found: not a file and not one of {', '.join(clip.available_models())}"
    )


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def preprocess_tensor(images: torch.Tensor | np.ndarray, resolution: int) -> torch.Tensor:
    """CLIP input from a batch of images [N, 3, H, W] (float in [-1, 1] or uint8).

    Does what ``clip.load``'s own PIL preprocessing does: bicubic (antialiased) resize of
    the short side to ``resolution``, center crop, scale to [0, 1], CLIP mean/std.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float() / 255.0
    else:
        x = (images.float().clamp(-1, 1) + 1) / 2
    h, w = x.shape[-2:]
    if (h, w) != (resolution, resolution):
        if h <= w:
            size = (resolution, max(resolution, int(resolution * w / h)))
        else:
            size = (max(resolution, int(resolution * h / w)), resolution)
        if (h, w) != size:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top = (x.shape[-2] - resolution) // 2
        left = (x.shape[-1] - resolution) // 2
        x = x[..., top : top + resolution, left : left + resolution]
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# Printable ASCII without "&": text that ftfy.fix_text and html.unescape return unchanged.
_PLAIN_ASCII = re.compile(r"[ -%'-~]*")


def _bpe_tokens(tok, text: str) -> list[int]:
    """``tok.encode(text)`` (clip's SimpleTokenizer), with a shortcut for plain ASCII prompts.

    ``SimpleTokenizer.encode`` first cleans the text with ``ftfy.fix_text`` and a double
    ``html.unescape``; on printable ASCII without ``&`` (nearly every prompt) both are the
    identity (ftfy repairs mojibake, curly quotes, ligatures, wide characters, control and
    terminal-escape characters, HTML entities; none can occur there) yet cost about half of the
    tokenizer's time. Such text goes straight to the steps after cleaning (whitespace collapse,
    lower case, the BPE pattern, byte encoding, BPE with the tokenizer's cache); any other text
    takes ``encode`` itself. tests/test_clip_io.py checks the two agree on random text.
    """
    if not _PLAIN_ASCII.fullmatch(text):
        return tok.encode(text)
    out: list[int] = []
    for piece in tok.pat.findall(" ".join(text.split()).lower()):
        # Every byte of an ASCII piece is its own character here, so the byte encoding is
        # one dictionary lookup per character.
        out.extend(tok.encoder[b] for b in tok.bpe("".join(tok.byte_encoder[ord(ch)] for ch in piece)).split(" "))
    return out


def tokenize(model: torch.nn.Module, prompts: Sequence[str], truncate: bool = False) -> torch.Tensor:
    """Tokens for ``prompts`` at the model's context length.

    A prompt longer than the context is a UserError unless ``truncate`` is set, which warns.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = [str(p) for p in prompts]
    ctx = int(getattr(model, "context_length", 77))
    tok = clip.clip._tokenizer
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    # Tokens exactly as clip.tokenize makes them, with each prompt's BPE run once.
    seqs = [[sot, *_bpe_tokens(tok, p), eot] for p in prompts]
    too_long = [p for p, t in zip(prompts, seqs) if len(t) > ctx]
    if too_long:
        first = too_long[0]
        short = first if len(first) <= 60 else first[:57] + "..."
        if not truncate:
            raise UserError(
                f"prompt '{short}' is longer than the CLIP context of {ctx} tokens ({len(too_long)} such prompt(s)); shorten it or pass truncate=True"
            )
        warnings.warn(f"{len(too_long)} prompt(s) truncated to the CLIP context of {ctx} tokens, e.g. '{short}'")
    rows = []
    for t in seqs:
        if len(t) > ctx:
            t = t[:ctx]
            t[-1] = eot
        rows.append(t + [0] * (ctx - len(t)))
    return torch.tensor(rows, dtype=torch.int).reshape(len(rows), ctx)


def _text_features(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, computed on the shortest prefix that holds every end-of-text token.

    CLIP's text transformer is causal and the feature is read at the end-of-text token (the
    largest token id), so the positions after it never influence the result: cutting them off
    gives the same features for a fraction of the work (a caption of 12 tokens instead of 77).
    The blocks run batch-first with the attention written out (packed input projection,
    ``F.scaled_dot_product_attention`` with the block's causal mask, output projection): the
    same operations ``nn.MultiheadAttention`` performs, without its per-call argument checks
    and layout changes, which cost more than the arithmetic at toy sizes.
    Falls back to ``encode_text`` for a model that is not built like ``clip.model.CLIP``.
    """
    blocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    if blocks is None or not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) and hasattr(b, "attn_mask")
                                 and b.attn._qkv_same_embed_dim and b.attn.in_proj_bias is not None for b in blocks):
        return model.encode_text(tokens)
    eot_at = tokens.argmax(dim=-1)
    n = int(eot_at.max()) + 1
    blocks_fn = getattr(model, "_compiled_text_tower", None) or _text_tower
    return blocks_fn(model, tokens[:, :n], eot_at)


def _text_tower(model: torch.nn.Module, tokens: torch.Tensor, eot_at: torch.Tensor) -> torch.Tensor:
    """The text features of token prefixes [N, L] (``_text_features`` after the cut): tensor
    arithmetic only, so that ``torch.compile`` (``model/accel.py``) captures it as one graph."""
    dtype = model.dtype
    n = tokens.shape[1]
    x = model.token_embedding(tokens).type(dtype) + model.positional_embedding[:n].type(dtype)  # [N, L, D]
    N, L, D = x.shape
    for b in model.transformer.resblocks:
        a = b.attn
        heads = a.num_heads
        mask = b.attn_mask[:n, :n].to(dtype=x.dtype, device=x.device) if b.attn_mask is not None else None
        qkv = F.linear(b.ln_1(x), a.in_proj_weight, a.in_proj_bias).view(N, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)  # [N, heads, L, D / heads]
        x = x + a.out_proj(h.transpose(1, 2).reshape(N, L, D))
        x = x + b.mlp(b.ln_2(x))
    x = model.ln_final(x).type(dtype)
    return x[torch.arange(N, device=x.device), eot_at] @ model.text_projection


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm import tqdm

    if enabled is None:
        enabled = total > 8
    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=False)


@torch.no_grad()
def encode_text(
    model: torch.nn.Module,
    prompts: Sequence[str],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    truncate: bool = False,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised float32 text embeddings [N, D] (on the CPU)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    tokens = tokenize(model, prompts, truncate=truncate)
    device = torch.device(device) if device is not None else _model_device(model)
    if _model_device(model) != device:
        model = model.to(device)
    out = []
    nb = (len(tokens) + batch_size - 1) // batch_size
    with _progress(nb, "text", progress) as bar:
        for i in range(0, len(tokens), batch_size):
            e = _text_features(model, tokens[i : i + batch_size].to(device)).float()
            out.append(F.normalize(e, dim=-1).cpu())
            bar.update(1)
    if not out:
        return torch.zeros(0, model.text_projection.shape[1])
    return torch.cat(out)


@torch.no_grad()
def encode_images(
    model: torch.nn.Module,
    images: torch.Tensor | np.ndarray,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised float32 image embeddings [N, D] (on the CPU).

    ``images``: [N, 3, H, W], float in [-1, 1] or uint8; resized to the model's input resolution.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    device = torch.device(device) if device is not None else _model_device(model)
    if _model_device(model) != device:
        model = model.to(device)
    res = int(model.visual.input_resolution)
    out = []
    nb = (len(images) + batch_size - 1) // batch_size
    with _progress(nb, "images", progress) as bar:
        for i in range(0, len(images), batch_size):
            x = preprocess_tensor(images[i : i + batch_size].to(device), res)
            e = model.encode_image(x).float()
            out.append(F.normalize(e, dim=-1).cpu())
            bar.update(1)
    if not out:
        return torch.zeros(0, model.text_projection.shape[1])
    return torch.cat(out)


def clip_preprocess(resolution: int):
    """The ``clip`` package's own PIL preprocessing for ``resolution`` (for comparisons)."""
    return clip.clip._transform(resolution)
