"""CLIP embeddings of a CelebA-format dataset (images, and K captions per image), cached on disk.

Cache layout, one folder per CLIP model so that caches of different models never mix::

    DATA/embeddings/<clip identity>/image_<split>_r<resolution>.safetensors   embeddings [N, D]
    DATA/embeddings/<clip identity>/text_<split>_k<K>_s<seed>.safetensors    embeddings [N, K, D]

Each file's metadata records the CLIP identity, the images it covers (hash of the file names
and of the attribute file) and how it was made; a file whose record does not match is rebuilt.
A split that is missing is cut from the ``all`` cache when that one exists.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dataset.captions import captions as make_captions
from dataset.celeba import CelebADataset
from torch_utils.misc import UserError

DEFAULT_CAPTIONS_PER_IMAGE = 4


@dataclass
class Embeddings:
    """CLIP embeddings of one split: rows follow ``filenames``; all float32 and L2-normalised."""

    identity: str
    split: str
    filenames: list[str]
    attrs: np.ndarray  # int8 [N, 40]
    attr_mask: np.ndarray  # bool [40]
    image: torch.Tensor  # [N, D]
    text: torch.Tensor  # [N, K, D]
    captions: list[list[str]] = field(repr=False)  # [N][K]

    def __len__(self) -> int:
        return len(self.filenames)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def cache_dir(data_dir: str | os.PathLike, identity: str) -> Path:
    return Path(data_dir) / "embeddings" / identity


def _captions_path(path: Path) -> Path:
    return path.with_name(path.name.replace(".safetensors", ".captions.json"))


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a cache file atomically; ``meta['captions']`` goes to a JSON file beside it."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    caps = meta.pop("captions", None)
    if caps is not None:
        cp = _captions_path(path)
        tmp = cp.with_name(cp.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(caps))
        os.replace(tmp, cp)
        meta["captions_sha"] = _sha(json.dumps(caps))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)


def _load(path: Path, expect: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """Tensors and metadata of ``path`` if it exists and its metadata matches ``expect``."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            if any(meta.get(k) != v for k, v in expect.items()):
                return None
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if "captions_sha" in meta:
            text = _captions_path(path).read_text()
            if _sha(text) != meta["captions_sha"]:
                return None
            meta["captions"] = json.loads(text)
        return tensors, meta
    except Exception:  # a truncated or foreign file: rebuild it
        return None


class _Context:
    """What a cache entry is keyed on, for one dataset split and one CLIP model."""

    def __init__(self, data_dir, clip, split, resolution):
        from model.clip_io import clip_identity

        self.ds = CelebADataset(data_dir, split, resolution=resolution)
        self.identity = clip_identity(clip)
        self.dir = cache_dir(data_dir, self.identity)
        self.names_sha = _sha("\n".join(self.ds.filenames))
        self.attr_sha = _file_sha(self.ds.attr_path)
        self.base = {"clip": self.identity, "split": split, "filenames": self.names_sha, "attr_file": self.attr_sha}


def _from_all(ctx: _Context, data_dir, kind_name: str, expect_extra: dict, resolution: int):
    """Rows of this split cut from the ``all`` cache, when that one is present and current."""
    if ctx.ds.split == "all":
        return None
    all_ds = CelebADataset(data_dir, "all", resolution=resolution)
    expect = {"clip": ctx.identity, "split": "all", "filenames": _sha("\n".join(all_ds.filenames)),
              "attr_file": ctx.attr_sha, **expect_extra}
    got = _load(ctx.dir / kind_name.format(split="all"), expect)
    if got is None:
        return None
    tensors, meta = got
    idx = torch.from_numpy(ctx.ds.indices.astype(np.int64))
    out = {k: v[idx] for k, v in tensors.items()}
    if "captions" in meta:
        meta = dict(meta, captions=[meta["captions"][i] for i in ctx.ds.indices])
    return out, meta


def embed_dataset(data_dir: str | os.PathLike, clip: str, split: str = "all",
                  captions_per_image: int = DEFAULT_CAPTIONS_PER_IMAGE, batch_size: int = 256,
                  device: str = "cpu", seed: int = 0, resolution: int = 64, progress: bool = True,
                  model: torch.nn.Module | None = None) -> Embeddings:
    """Compute (or reuse) the image and caption embeddings of ``split`` with the CLIP ``clip``."""
    from model import clip_io

    if captions_per_image < 1:
        raise UserError(f"--captions-per-image must be at least 1 (got {captions_per_image})")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
    ctx = _Context(data_dir, clip, split, resolution)
    ds = ctx.ds
    image_name = f"image_{{split}}_r{resolution}.safetensors"
    text_name = f"text_{{split}}_k{captions_per_image}_s{seed}.safetensors"
    image_extra = {"resolution": resolution}
    text_extra = {"captions_per_image": captions_per_image, "caption_seed": seed}

    def get_model():
        nonlocal model
        if model is None:
            model = clip_io.load_clip(clip, device=device)
        return model

    # Images.
    path = ctx.dir / image_name.format(split=split)
    got = _load(path, {**ctx.base, **image_extra}) or _from_all(ctx, data_dir, image_name, image_extra, resolution)
    if got is None:
        imgs = ds.images_uint8(progress=progress)
        emb = clip_io.encode_images(get_model(), imgs, batch_size=batch_size, device=device, progress=progress)
        _save(path, {"embeddings": emb}, {**ctx.base, **image_extra, "n": len(ds)})
        image = emb
    else:
        image = got[0]["embeddings"]
        if not path.is_file():
            _save(path, {"embeddings": image}, {**ctx.base, **image_extra, "n": len(ds)})

    # Captions.
    path = ctx.dir / text_name.format(split=split)
    got = _load(path, {**ctx.base, **text_extra}) or _from_all(ctx, data_dir, text_name, text_extra, resolution)
    if got is None:
        caps = make_captions(ds.attrs, seed=seed, n_per_image=captions_per_image, mask=ds.attr_mask, indices=ds.indices)
        flat = [c for cs in caps for c in cs]
        emb = clip_io.encode_text(get_model(), flat, batch_size=batch_size, device=device, truncate=True, progress=progress)
        text = emb.view(len(ds), captions_per_image, -1)
        _save(path, {"embeddings": text}, {**ctx.base, **text_extra, "n": len(ds), "captions": caps})
    else:
        text = got[0]["embeddings"]
        caps = got[1]["captions"]
        if not path.is_file():
            _save(path, {"embeddings": text}, {**ctx.base, **text_extra, "n": len(ds), "captions": caps})

    return Embeddings(identity=ctx.identity, split=split, filenames=list(ds.filenames), attrs=ds.attrs,
                      attr_mask=ds.attr_mask, image=image.float(), text=text.float(), captions=caps)


def load_embeddings(data_dir: str | os.PathLike, clip: str, split: str = "all",
                    captions_per_image: int | None = None, seed: int = 0, resolution: int = 64,
                    compute: bool = True, **kwargs) -> Embeddings:
    """The cached embeddings of ``split`` for the CLIP ``clip`` (a name or a file).

    ``captions_per_image=None`` takes the cache with the most captions per image that exists
    (``DEFAULT_CAPTIONS_PER_IMAGE`` when there is none). Missing caches are computed when
    ``compute`` is true (``kwargs`` go to ``embed_dataset``), otherwise a UserError says which
    command makes them.
    """
    from model.clip_io import clip_identity

    if captions_per_image is None:
        d = cache_dir(data_dir, clip_identity(clip))
        ks = []
        for sp in (split, "all"):
            for p in d.glob(f"text_{sp}_k*_s{seed}.safetensors"):
                try:
                    ks.append(int(p.name.split("_k")[1].split("_")[0]))
                except ValueError:
                    pass
        captions_per_image = max(ks) if ks else DEFAULT_CAPTIONS_PER_IMAGE
    if not compute:
        ctx = _Context(data_dir, clip, split, resolution)
        names = (f"image_{split}_r{resolution}.safetensors", f"text_{split}_k{captions_per_image}_s{seed}.safetensors")
        extras = ({"resolution": resolution}, {"captions_per_image": captions_per_image, "caption_seed": seed})
        for name, extra in zip(names, extras):
            if _load(ctx.dir / name, {**ctx.base, **extra}) is None and _from_all(
                ctx, data_dir, name.replace(f"_{split}_", "_{split}_", 1), extra, resolution) is None:
                raise UserError(
                    f"{ctx.dir / name}: no embedding cache; run `python main.py data embed --data {data_dir} --clip {clip} "
                    f"--split {split} --captions-per-image {captions_per_image}`"
                )
    return embed_dataset(data_dir, clip, split=split, captions_per_image=captions_per_image, seed=seed,
                         resolution=resolution, **kwargs)
