"""CelebA-format datasets: the real CelebA layout, and the toy faces written in the same layout.

Layout read here (the one CelebA ships)::

    ROOT/img_align_celeba/000001.jpg ...   (or ROOT/img_align_celeba.zip)
    ROOT/list_attr_celeba.txt              (count line, header of 40 names, one row per image)
    ROOT/list_eval_partition.txt           (``000001.jpg 0``: 0 train, 1 val, 2 test)

The official archive's ``Anno/`` and ``Eval/`` sub-folders are looked into as well.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from torch_utils.misc import UserError

ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
]
ATTR_INDEX = {name: i for i, name in enumerate(ATTRIBUTES)}
SPLITS = {"train": 0, "val": 1, "test": 2}
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
TOY_META = "toyfaces.json"  # written by the toy-face renderer next to the lists


def _read_lines(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a text file ({e.reason} at byte {e.start})") from e
    return text.splitlines()  # handles CRLF and LF


def read_attributes(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Parse a CelebA attribute file -> (filenames, np.int8 array [N, 40] of +1/-1)."""
    lines = _read_lines(path)
    if len(lines) < 2:
        raise UserError(f"{path}: too short for a CelebA attribute file (needs a count line and a header)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise UserError(f"{path}, line 1: expected the number of images, got '{lines[0].strip()[:40]}'") from None
    header = lines[1].split()
    if header != ATTRIBUTES:
        missing = [a for a in ATTRIBUTES if a not in header]
        raise UserError(
            f"{path}, line 2: expected the 40 CelebA attribute names in order"
            + (f" (missing {', '.join(missing[:3])})" if missing else f" (got {len(header)} names)")
        )
    names: list[str] = []
    rows = np.empty((max(count, 0), len(ATTRIBUTES)), dtype=np.int8)
    n = 0
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(ATTRIBUTES) + 1:
            raise UserError(
                f"{path}, line {lineno}: expected a file name and {len(ATTRIBUTES)} values, got {len(parts) - 1} values"
            )
        vals = parts[1:]
        for j, v in enumerate(vals):
            if v != "1" and v != "-1":
                raise UserError(f"{path}, line {lineno}: value '{v}' for {ATTRIBUTES[j]} is not 1 or -1")
        if n >= len(rows):
            rows = np.concatenate([rows, np.empty_like(rows[: max(len(rows), 1024)])])
        rows[n] = np.array(vals, dtype=np.int8)
        names.append(parts[0])
        n += 1
    if n != count:
        raise UserError(f"{path}, line 1: the file announces {count} images but lists {n}")
    return names, rows[:n].copy()


def read_partition(path: str | os.PathLike) -> dict[str, int]:
    """Parse ``list_eval_partition.txt`` -> {filename: 0 train | 1 val | 2 test}."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise UserError(f"{path}, line {lineno}: expected '<file name> 0|1|2', got '{line.strip()[:60]}'")
        out[parts[0]] = int(parts[1])
    return out


def _find(root: Path, name: str, subdirs=("", "Anno", "Eval", "Img")) -> Path | None:
    for sub in subdirs:
        p = root / sub / name
        if p.exists():
            return p
    return None


def crop_and_resize(img, resolution: int, crop: bool = True):
    """The usual aligned-CelebA preprocessing: center square crop (178x218 -> 178x178), resize.

    An image that is already square at ``resolution`` comes back unchanged.
    """
    from PIL import Image

    w, h = img.size
    if crop and w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


class CelebADataset(torch.utils.data.Dataset):
    """CelebA (or the toy faces) in the standard layout.

    ``dataset[i]`` -> (image float32 [3, R, R] in [-1, 1], attributes float32 [40] of +1/-1).
    ``images_uint8()`` decodes the whole split once into a uint8 tensor, cached as .npy.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", resolution: int = 64, crop: bool = True):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"{root}: dataset folder not found")
        if split not in ("train", "val", "test", "all"):
            raise UserError(f"unknown split '{split}'; choices: train, val, test, all")
        self.root, self.split, self.resolution, self.crop = root, split, int(resolution), bool(crop)

        attr_path = _find(root, ATTR_FILE)
        if attr_path is None:
            raise UserError(f"{root / ATTR_FILE}: attribute file not found")
        self.attr_path = attr_path
        names, attrs = read_attributes(attr_path)
        full_attrs = attrs
        indices = np.arange(len(names))
        if split != "all":
            part_path = _find(root, PARTITION_FILE)
            if part_path is None:
                raise UserError(f"{root / PARTITION_FILE}: partition file not found (needed for split '{split}')")
            part = read_partition(part_path)
            missing = [f for f in names if f not in part]
            if missing:
                raise UserError(f"{part_path}: no partition for {missing[0]} ({len(missing)} image(s) missing)")
            keep = np.array([part[f] == SPLITS[split] for f in names], dtype=bool)
            names = [f for f, k in zip(names, keep) if k]
            attrs = attrs[keep]
            indices = indices[keep]
        self.filenames: list[str] = names
        self.attrs: np.ndarray = attrs
        self.indices: np.ndarray = indices  # row of each image in the attribute file (0-based)

        meta_path = root / TOY_META
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            rendered = set(meta.get("rendered_attributes", []))
            self.attr_mask = np.array([a in rendered for a in ATTRIBUTES], dtype=bool)
        else:
            self.attr_mask = (full_attrs == 1).any(0) & (full_attrs == -1).any(0)

        # Image source: folder (possibly nested once, as some unzip tools do) or zip.
        self._zip_path: Path | None = None
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = None
        self._zip_members: dict[str, str] = {}
        img_dir = _find(root, IMAGE_DIR)
        if img_dir is not None and img_dir.is_dir():
            if (img_dir / IMAGE_DIR).is_dir() and not any(img_dir.glob("*.jpg")):
                img_dir = img_dir / IMAGE_DIR
            self.image_dir: Path | None = img_dir
        else:
            self.image_dir = None
            zp = _find(root, IMAGE_DIR + ".zip")
            if zp is None:
                raise UserError(f"{root / IMAGE_DIR}: image folder not found (nor {IMAGE_DIR}.zip)")
            self._zip_path = zp
            try:
                with zipfile.ZipFile(zp) as z:
                    for m in z.namelist():
                        if not m.endswith("/"):
                            self._zip_members[os.path.basename(m)] = m
            except zipfile.BadZipFile as e:
                raise UserError(f"{zp}: not a valid zip file") from e

    # -- attributes ---------------------------------------------------------
    @property
    def attr_names(self) -> list[str]:
        return list(ATTRIBUTES)

    @property
    def rendered_attributes(self) -> list[str]:
        return [a for a, m in zip(ATTRIBUTES, self.attr_mask) if m]

    def __len__(self) -> int:
        return len(self.filenames)

    # -- images ---------------------------------------------------------------
    def _open_bytes(self, fname: str) -> tuple[bytes, str]:
        if self.image_dir is not None:
            path = self.image_dir / fname
            try:
                return path.read_bytes(), str(path)
            except FileNotFoundError:
                raise UserError(f"{path}: image not found") from None
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self._zip_path)
            self._zip_pid = os.getpid()
        member = self._zip_members.get(fname)
        label = f"{self._zip_path}:{fname}"
        if member is None:
            raise UserError(f"{label}: image not found in the zip")
        return self._zip.read(member), label

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 [R, R, 3] after crop and resize."""
        from PIL import Image

        data, label = self._open_bytes(self.filenames[i])
        try:
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert("RGB")
                im = crop_and_resize(im, self.resolution, self.crop)
                return np.asarray(im, dtype=np.uint8)
        except Exception as e:  # PIL raises several types for broken files
            raise UserError(f"{label}: cannot decode image ({type(e).__name__})") from None

    def __getitem__(self, i: int):
        arr = self.load_image(i)
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 127.5 - 1
        return img, torch.from_numpy(self.attrs[i].astype(np.float32))

    def cache_path(self) -> Path:
        st = self.attr_path.stat()
        h = hashlib.sha256()
        h.update(("\n".join(self.filenames)).encode())
        h.update(f"{st.st_size}:{st.st_mtime_ns}:{self.crop}".encode())
        return self.root / "cache" / f"images_{self.split}_{self.resolution}_{h.hexdigest()[:12]}.npy"

    def images_uint8(self, progress: bool = True, cache: bool = True) -> torch.Tensor:
        """All images of the split as a uint8 tensor [N, 3, R, R], decoded once and cached as .npy."""
        path = self.cache_path()
        if cache and path.is_file():
            try:
                arr = np.load(path)
                if arr.shape == (len(self), 3, self.resolution, self.resolution):
                    return torch.from_numpy(arr)
            except (ValueError, OSError):
                pass
        from tqdm import tqdm

        arr = np.empty((len(self), 3, self.resolution, self.resolution), dtype=np.uint8)
        for i in tqdm(range(len(self)), desc=f"decoding {self.split}", unit="img", disable=not progress or len(self) < 2000):
            arr[i] = self.load_image(i).transpose(2, 0, 1)
        if cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + f".tmp{os.getpid()}")
                with open(tmp, "wb") as f:
                    np.save(f, arr)
                os.replace(tmp, path)
            except OSError as e:
                warnings.warn(f"could not write the image cache {path}: {e}")
        return torch.from_numpy(arr)

    def attrs_tensor(self) -> torch.Tensor:
        """Attributes as float32 [N, 40] of +1/-1."""
        return torch.from_numpy(self.attrs.astype(np.float32))
