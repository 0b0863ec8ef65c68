"""Small utilities used across the project: user-facing errors, seeds, ranges, image grids."""
from __future__ import annotations

import random
import re
from typing import Sequence

import numpy as np
import torch


class UserError(Exception):
    """An error caused by the user's input (bad path, bad file, bad option).

    The command line prints its message as one line and exits with status 1,
    without a traceback.
    """


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def parse_range(spec: str) -> list[int]:
    """Parse ``"0-3,7,10-11"`` into ``[0, 1, 2, 3, 7, 10, 11]``."""
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"bad range '{spec}': expected e.g. 0-15 or 1,3,5")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"bad range '{part}': end before start")
        out.extend(range(lo, hi + 1))
    if not out:
        raise UserError(f"empty range '{spec}'")
    return out


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] float in nominal [-1, 1] -> [N, H, W, C] uint8."""
    img = (img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return img.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(
    images: torch.Tensor | np.ndarray,
    ncols: int,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    label_height: int | None = None,
    cell_scale: int = 1,
    cell_labels: Sequence[str] | None = None,
    cell_label_lines: int = 3,
):
    """Tile images into a PIL grid; each row may carry a text label written above it.

    ``images``: [N, C, H, W] float in [-1, 1] or [N, H, W, C] uint8, row-major.
    ``cell_labels``: optionally one caption per image, word-wrapped above it in up to
    ``cell_label_lines`` lines.
    """
    if cell_labels is not None:
        return _image_grid_captioned(images, ncols, cell_labels, pad, cell_scale, cell_label_lines)
    from PIL import Image, ImageDraw, ImageFont

    images, n, h, w = _grid_cells(images, cell_scale)
    nrows = (n + ncols - 1) // ncols
    font = ImageFont.load_default()
    lh = 0
    if row_labels is not None:
        lh = label_height or 14
    width = ncols * (w + pad) + pad
    height = nrows * (h + pad + lh) + pad
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r in range(nrows):
        y0 = pad + r * (h + pad + lh)
        if row_labels is not None and r < len(row_labels):
            text = str(row_labels[r])
            # Shorten labels that would overflow the row.
            while text and draw.textlength(text, font=font) > width - 2 * pad:
                text = text[:-4] + "..."
            draw.text((pad, y0 + 1), text, fill=(0, 0, 0), font=font)
        for col in range(ncols):
            i = r * ncols + col
            if i >= n:
                break
            grid.paste(Image.fromarray(images[i]), (pad + col * (w + pad), y0 + lh))
    return grid


def _wrap(text: str, width: float, draw, font, max_lines: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in str(text).split():
        trial = (cur + " " + word).strip()
        if draw.textlength(trial, font=font) <= width or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and draw.textlength(last + "...", font=font) > width:
            last = last[:-1]
        lines[-1] = last + "..."
    return lines


def _grid_cells(images, cell_scale: int):
    """uint8 RGB cells [N, H, W, 3] of a grid (scaled by ``cell_scale``), and N, H, W."""
    if isinstance(images, torch.Tensor):
        images = to_uint8(images)
    images = np.asarray(images)
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    if cell_scale != 1:
        images = images.repeat(cell_scale, axis=1).repeat(cell_scale, axis=2)
    n, h, w = images.shape[:3]
    return images, n, h, w


def _image_grid_captioned(images, ncols, labels, pad, cell_scale, max_lines):
    """A grid with a word-wrapped caption above every image."""
    from PIL import Image, ImageDraw, ImageFont

    images, n, h, w = _grid_cells(images, cell_scale)
    font = ImageFont.load_default()
    line_h = 12
    lh = max_lines * line_h + 4
    pad = max(pad, 6)
    nrows = (n + ncols - 1) // ncols
    width = ncols * (w + pad) + pad
    height = nrows * (h + pad + lh) + pad
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        r, col = divmod(i, ncols)
        x0 = pad + col * (w + pad)
        y0 = pad + r * (h + pad + lh)
        text = labels[i] if i < len(labels) else ""
        for j, line in enumerate(_wrap(text, w, draw, font, max_lines)):
            draw.text((x0, y0 + 1 + j * line_h), line, fill=(0, 0, 0), font=font)
        grid.paste(Image.fromarray(images[i]), (x0, y0 + lh))
    return grid
