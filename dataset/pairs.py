"""Latent-pair shards: (z, w, e_image) triples sampled from a generator and embedded with CLIP.

On disk a pairs directory holds

    meta.json                  generator / CLIP identities, dims, seed, shard size, target n, count
    shard_00000.safetensors    tensors z [S, z_dim], w [S, w_dim], e [S, e_dim] (float32)
    shard_00001.safetensors    ...
    thumbnails.png             a small grid of the first rendered faces, for inspection

Shard ``k`` holds samples ``k * shard_size ...``; every shard is written atomically, so a
shard file that exists is complete. ``LatentPairs`` reads them (all at once or streamed)
and makes a deterministic train / validation split.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from torch_utils.misc import UserError
from torch_utils.persistence import atomic_write

META_NAME = "meta.json"
SHARD_RE = re.compile(r"shard_(\d{5,})\.safetensors$")
KEYS = ("z", "w", "e")


def shard_path(root: str | os.PathLike, index: int) -> Path:
    return Path(root) / f"shard_{index:05d}.safetensors"


def write_shard(root: str | os.PathLike, index: int, tensors: dict[str, torch.Tensor]) -> Path:
    """Write one shard atomically (a crash leaves either no file or the complete file)."""
    path = shard_path(root, index)
    data = {k: v.detach().to("cpu", torch.float32).clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(data, tmp))
    return path


def shard_rows(path: str | os.PathLike) -> int:
    """Number of samples in a shard file, from its header only; -1 if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return int(f.get_slice("w").get_shape()[0])
    except (SafetensorError, OSError, ValueError, KeyError, Exception):  # noqa: BLE001
        return -1


def read_meta(root: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(root) / META_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable pairs metadata ({e})") from None


def write_meta(root: str | os.PathLike, meta: dict[str, Any]) -> None:
    path = Path(root) / META_NAME
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"

    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, _write)


def expected_shards(n: int, shard_size: int) -> list[int]:
    """Row count of every shard for ``n`` samples in shards of ``shard_size``."""
    full, rest = divmod(int(n), int(shard_size))
    return [shard_size] * full + ([rest] if rest else [])


class LatentPairs:
    """Reader of a pairs directory.

    ``len(pairs)`` counts the samples in the complete shards listed by ``meta.json``.
    ``load(keys)`` concatenates them; ``iter_shards(keys)`` streams one shard at a time;
    ``split(val_fraction)`` returns deterministic train / validation index tensors.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: no such pairs directory (make one with `python main.py pairs`)")
        meta = read_meta(self.root)
        if meta is None:
            raise UserError(f"{self.root}: not a pairs directory (no {META_NAME}; make one with `python main.py pairs`)")
        self.meta = meta
        sizes = expected_shards(meta["n"], meta["shard_size"])
        self.shards: list[Path] = []
        self.rows: list[int] = []
        for k, size in enumerate(sizes):
            p = shard_path(self.root, k)
            rows = shard_rows(p) if p.is_file() else -1
            if rows != size:
                break  # shards are written in order; stop at the first missing one
            self.shards.append(p)
            self.rows.append(rows)
        if not self.shards:
            raise UserError(f"{self.root}: holds no complete shard yet")

    def __len__(self) -> int:
        return sum(self.rows)

    @property
    def complete(self) -> bool:
        return len(self) == int(self.meta["n"])

    @property
    def w_dim(self) -> int:
        return int(self.meta["w_dim"])

    @property
    def e_dim(self) -> int:
        return int(self.meta["e_dim"])

    def iter_shards(self, keys: Sequence[str] = ("w", "e")) -> Iterator[dict[str, torch.Tensor]]:
        for p in self.shards:
            try:
                data = load_file(str(p))
            except (SafetensorError, OSError) as e:
                raise UserError(f"{p}: unreadable shard ({e})") from None
            missing = [k for k in keys if k not in data]
            if missing:
                raise UserError(f"{p}: shard lacks tensors {missing}")
            yield {k: data[k] for k in keys}

    def load(self, keys: Sequence[str] = ("w", "e")) -> dict[str, torch.Tensor]:
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for shard in self.iter_shards(keys):
            for k in keys:
                parts[k].append(shard[k])
        out = {k: torch.cat(v) for k, v in parts.items()}
        for k, v in out.items():
            if not torch.isfinite(v).all():
                raise UserError(f"{self.root}: tensor '{k}' holds NaN/inf values")
        return out

    def split(self, val_fraction: float = 0.05, seed: int = 0, max_val: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic (train_idx, val_idx): a fixed random subset of the samples is held out."""
        n = len(self)
        n_val = min(max_val, max(1, int(round(n * val_fraction)))) if n > 1 and val_fraction > 0 else 0
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        return perm[n_val:].sort().values, perm[:n_val].sort().values
