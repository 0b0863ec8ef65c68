"""Sampling (z, w, e_image) latent pairs from a generator and a CLIP model, text-free.

For every shard ``k``: ``z ~ N(0, I)`` from a generator seeded by ``(seed, k)`` (so the
result does not depend on the batch size, the device or on interruptions),
``w = G.mapping(z)`` without truncation, ``img = G.synthesis(w)``, and
``e = CLIP.encode_image(preprocess(img))``, L2-normalised. Shards are written
atomically; a rerun with the same arguments skips the shards that are already
complete, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dataset import pairs as pairs_ds
from torch_utils.misc import UserError

# Meta fields that must agree for a rerun to continue an existing directory.
_RESUME_KEYS = ("generator", "clip", "seed", "shard_size", "z_dim", "w_dim", "e_dim")


def shard_seed(seed: int, index: int) -> int:
    """Seed of shard ``index`` of a run with ``seed`` (independent streams per shard)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def shard_z(seed: int, index: int, shard_size: int, z_dim: int) -> torch.Tensor:
    """The z of shard ``index`` (its first rows when the shard is the short last one)."""
    g = torch.Generator().manual_seed(shard_seed(seed, index))
    return torch.randn(shard_size, z_dim, generator=g)


def parse_part(text: str | None) -> tuple[int, int] | None:
    """``"I/K"`` -> ``(I, K)`` for ``--part`` (None stays None)."""
    if text is None:
        return None
    try:
        i, k = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise UserError(f"--part must look like I/K (e.g. 0/3), got {text!r}") from None
    if not (k >= 1 and 0 <= i < k):
        raise UserError(f"--part must be I/K with 0 <= I < K, got {text}")
    return i, k


def source_identity(name_or_path: str) -> str:
    """Identity of a generator or CLIP given as a file (sha256 of its bytes) or a name/URL."""
    from model.bundled import sha256

    s = str(name_or_path)
    if os.path.isfile(s):
        return "sha256-" + sha256(s)
    return s


def _clip_embed_dim(clip_model: torch.nn.Module) -> int:
    return int(clip_model.text_projection.shape[1])


@torch.no_grad()
def render_and_embed(G, clip_model, z: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z [B, z_dim] -> (w [B, w_dim], images [B, 3, H, W] in [-1, 1], e [B, e_dim] unit vectors)."""
    from model.clip_io import encode_images

    ws = G.mapping(z.to(device), truncation_psi=1.0)
    img = G.synthesis(ws, noise_mode="const")
    e = encode_images(clip_model, img, batch_size=len(img), device=device, progress=False)
    return ws[:, 0].float().cpu(), img, e


def sample_pairs(
    G,
    clip_model: torch.nn.Module,
    out: str | os.PathLike,
    n: int,
    generator_id: str,
    clip_id: str,
    batch_size: int = 32,
    seed: int = 0,
    shard_size: int = 1024,
    device: str | torch.device = "cpu",
    thumbnails: int = 16,
    progress: bool = True,
    part: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write ``n`` pairs to ``out`` (resuming a previous run there); returns a summary dict.

    ``generator_id`` / ``clip_id`` name the models in ``meta.json``; a rerun whose models,
    seed or shard size differ from the directory's is refused (UserError).

    ``part=(i, k)`` makes only the shards whose index is ``i`` modulo ``k`` (for ``k``
    processes sharing one directory). Parts leave the shard count in ``meta.json`` alone;
    a final run without ``part`` finds every shard done and records them.
    """
    if n <= 0:
        raise UserError(f"--n must be positive, got {n}")
    if part is not None and not (part[1] >= 1 and 0 <= part[0] < part[1]):
        raise UserError(f"--part must be I/K with 0 <= I < K, got {part[0]}/{part[1]}")
    if batch_size <= 0 or shard_size <= 0:
        raise UserError("--batch-size and --shard-size must be positive")
    device = torch.device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "text2face-pairs-v1",
        "generator": generator_id,
        "clip": clip_id,
        "seed": int(seed),
        "shard_size": int(shard_size),
        "z_dim": int(G.z_dim),
        "w_dim": int(G.w_dim),
        "e_dim": _clip_embed_dim(clip_model),
        "img_resolution": int(G.img_resolution),
        "truncation_psi": 1.0,
        "n": int(n),
        "count": 0,
    }
    old = pairs_ds.read_meta(out)
    if old is not None:
        diff = [k for k in _RESUME_KEYS if old.get(k) != meta[k]]
        if diff:
            raise UserError(
                f"--out {out}: holds pairs made with different {', '.join(diff)}; use a new directory to start over"
            )
    if part is None:
        # Stale temporary files from a killed run (other parts may be writing theirs).
        for p in out.glob("shard_*.safetensors.*.tmp"):
            p.unlink(missing_ok=True)

    sizes = pairs_ds.expected_shards(n, shard_size)
    done = [pairs_ds.shard_rows(pairs_ds.shard_path(out, k)) == s for k, s in enumerate(sizes)]
    if part is not None:
        # Shards of the other parts count as done here.
        done = [d or k % part[1] != part[0] for k, d in enumerate(done)]
    # Shards beyond the requested n (a rerun with a smaller n) are left on disk but not listed.
    meta["count"] = sum(s for s, d in zip(sizes, done) if d)
    if part is None or old is None:
        if part is not None:
            meta["count"] = 0
        pairs_ds.write_meta(out, meta)

    G_was_training = getattr(G, "training", False)
    if hasattr(G, "eval"):
        G.eval()
    clip_model.eval()
    todo = sum(s for s, d in zip(sizes, done) if not d)
    thumbs_path = out / "thumbnails.png"
    t0 = time.perf_counter()
    with tqdm(total=n, initial=n - todo, desc="pairs", unit="sample", disable=not progress, dynamic_ncols=True) as bar:
        for k, (size, ok) in enumerate(zip(sizes, done)):
            if ok:
                continue
            z_all = shard_z(seed, k, shard_size, meta["z_dim"])[:size]
            ws, es, imgs = [], [], []
            for i in range(0, size, batch_size):
                w, img, e = render_and_embed(G, clip_model, z_all[i : i + batch_size], device)
                ws.append(w)
                es.append(e)
                if k == 0 and sum(len(x) for x in imgs) < thumbnails:
                    imgs.append(img[:thumbnails].float().cpu())
                bar.update(len(w))
            pairs_ds.write_shard(out, k, {"z": z_all, "w": torch.cat(ws), "e": torch.cat(es)})
            if part is None:
                meta["count"] += size
                pairs_ds.write_meta(out, meta)
            if imgs and not thumbs_path.exists():
                _save_thumbnails(torch.cat(imgs)[:thumbnails], thumbs_path)
    elapsed = time.perf_counter() - t0
    if G_was_training:
        G.train()
    rate = todo / elapsed if todo and elapsed > 0 else float("nan")
    return {"out": str(out), "n": n, "new": todo, "seconds": elapsed, "samples_per_s": rate, "meta": meta}


def _save_thumbnails(images: torch.Tensor, path: Path) -> None:
    from torch_utils.misc import image_grid
    from torch_utils.persistence import atomic_write

    ncols = min(8, len(images))
    grid = image_grid(images, ncols=ncols)
    atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))


def sample_pairs_cli(
    generator: str | None,
    clip_name: str | None,
    n: int,
    out: str,
    batch_size: int = 32,
    seed: int = 0,
    shard_size: int = 1024,
    device: str = "cpu",
    part: tuple[int, int] | None = None,
    compile: bool = False,
) -> dict[str, Any]:
    """``python main.py pairs``: load the models (bundled toy ones by default) and sample.

    ``compile``: ``torch.compile`` the generator and CLIP first (``model/accel.py``).
    """
    from model.clip_io import clip_identity
    from model.pipelines import ModelCache

    # The pipelines' loader: bundled defaults, the CUDA and compiler checks, compilation on load.
    cache = ModelCache(device, compile=compile)
    generator, G = cache.generator(generator)
    clip_name, clip_model = cache.clip(clip_name)
    summary = sample_pairs(
        G,
        clip_model,
        out,
        n,
        generator_id=source_identity(generator),
        clip_id=clip_identity(clip_name),
        batch_size=batch_size,
        seed=seed,
        shard_size=shard_size,
        device=device,
        part=part,
    )
    return summary
