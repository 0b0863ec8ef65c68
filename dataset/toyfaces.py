"""The toy-face world: a fast procedural renderer of small faces with CelebA attributes.

Each face is drawn with PIL at twice the target size in a canonical frame, then tilted,
scaled and moved, composited over a background, downsampled, lit and noised; the dataset
writer stores it as JPEG. Attributes are sampled with CelebA-like correlations (no beard on a
woman, one hair colour at a time, bald means no hair colour and no bangs, lipstick and
earrings mostly on women). Every rendered attribute is drawn to be clearly visible at 64x64;
everything else (pose, size, skin tone, hair shape, background, light, noise, JPEG) is
nuisance. Image ``i`` of a dataset depends only on ``(seed, i)``: attributes and nuisance
come from two separate random streams, so ``render(seed, i, overrides={...})`` shows the
same face with one attribute changed.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from dataset.celeba import ATTR_FILE, ATTR_INDEX, ATTRIBUTES, IMAGE_DIR, PARTITION_FILE, TOY_META

RENDERED_ATTRIBUTES = [
    "Male", "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "Bald", "Bangs",
    "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Mustache", "Goatee", "No_Beard",
    "Wearing_Lipstick", "Wearing_Earrings", "Pale_Skin", "Heavy_Makeup",
]
HAIR_COLOURS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]

_HAIR_RGB = {
    "Black_Hair": [(22, 20, 24), (35, 28, 26), (15, 15, 22)],
    "Brown_Hair": [(105, 62, 30), (120, 72, 38), (90, 52, 28)],
    "Blond_Hair": [(232, 200, 110), (245, 215, 130), (220, 185, 95)],
    "Gray_Hair": [(165, 165, 168), (185, 184, 186), (145, 146, 150)],
}
_HAT_RGB = [(200, 30, 40), (30, 70, 200), (30, 150, 60), (120, 40, 160), (230, 120, 20), (20, 140, 150)]
_EARRING_RGB = [(255, 215, 0), (230, 30, 80), (40, 200, 255), (60, 230, 90), (255, 255, 255)]
_SHADOW_RGB = [(120, 60, 200), (40, 110, 220), (30, 170, 150), (200, 60, 170)]
_IRIS_RGB = [(70, 45, 25), (40, 90, 140), (60, 110, 60), (30, 25, 20)]


# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------


def sample_attributes(rng: np.random.Generator) -> dict[str, int]:
    """One face's rendered attributes as {name: +1/-1}, with CelebA-like correlations."""
    u = rng.random(16)
    a = {name: -1 for name in RENDERED_ATTRIBUTES}
    male = u[0] < 0.5
    a["Male"] = 1 if male else -1
    bald = male and u[1] < 0.12
    if bald:
        a["Bald"] = 1
    else:
        probs = [0.3, 0.2, 0.3, 0.2] if male else [0.3, 0.3, 0.3, 0.1]
        colour = HAIR_COLOURS[int(np.searchsorted(np.cumsum(probs), u[2] * 0.999999))]
        a[colour] = 1
        if u[3] < 0.18:
            a["Wearing_Hat"] = 1
        elif u[4] < (0.15 if male else 0.4):
            a["Bangs"] = 1
    a["Eyeglasses"] = 1 if u[5] < 0.25 else -1
    smiling = u[6] < 0.5
    a["Smiling"] = 1 if smiling else -1
    a["Mouth_Slightly_Open"] = 1 if u[7] < (0.65 if smiling else 0.2) else -1
    if male:
        beard = 0 if u[8] < 0.55 else (1 if u[8] < 0.75 else 2)  # none, goatee, full
        a["No_Beard"] = 1 if beard == 0 else -1
        a["Goatee"] = 1 if beard == 1 else -1
        a["Mustache"] = 1 if u[9] < (0.2, 0.5, 0.6)[beard] else -1
        a["Wearing_Lipstick"] = 1 if u[10] < 0.02 else -1
        a["Wearing_Earrings"] = 1 if u[11] < 0.06 else -1
        a["Heavy_Makeup"] = -1
    else:
        a["No_Beard"] = 1
        lip = u[10] < 0.55
        a["Wearing_Lipstick"] = 1 if lip else -1
        a["Wearing_Earrings"] = 1 if u[11] < 0.4 else -1
        a["Heavy_Makeup"] = 1 if u[12] < (0.6 if lip else 0.12) else -1
    a["Pale_Skin"] = 1 if u[13] < 0.15 else -1
    return a


def resolve_overrides(attrs: dict[str, int], overrides: dict[str, int] | None) -> dict[str, int]:
    """Apply {name: +1/-1} overrides, then restore the world's constraints around them.

    Explicit overrides win; the attributes they imply are adjusted (a face made female
    loses its beard, a new hair colour replaces the old one, bald removes hair, ...).
    """
    a = dict(attrs)
    if not overrides:
        return a
    for k, v in overrides.items():
        if k not in RENDERED_ATTRIBUTES:
            raise ValueError(f"'{k}' is not a rendered toy-face attribute")
        a[k] = 1 if v > 0 else -1
    ov = set(overrides)

    def setd(k, v):
        if k not in ov:
            a[k] = v

    if a["Male"] == -1:
        for k in ("Mustache", "Goatee", "Bald"):
            setd(k, -1)
        setd("No_Beard", 1)
    if a["Goatee"] == 1:
        setd("No_Beard", -1)
    if a["No_Beard"] == 1:
        setd("Goatee", -1)
    if any(a[k] == 1 for k in ("Mustache", "Goatee")) or a["No_Beard"] == -1 or a["Bald"] == 1:
        setd("Male", 1)
    new_colour = [k for k in HAIR_COLOURS if k in ov and a[k] == 1]
    if new_colour:
        for k in HAIR_COLOURS:
            if k != new_colour[0]:
                setd(k, -1)
        setd("Bald", -1)
    if a["Bald"] == 1:
        for k in HAIR_COLOURS + ["Bangs", "Wearing_Hat"]:
            setd(k, -1)
    elif not any(a[k] == 1 for k in HAIR_COLOURS):
        a["Brown_Hair"] = 1  # a face that lost its baldness needs some hair colour
    if a["Wearing_Hat"] == 1:
        setd("Bangs", -1)
    if a["Bangs"] == 1:
        setd("Wearing_Hat", -1)
    return a


def attributes_row(a: dict[str, int]) -> np.ndarray:
    """{name: +1/-1} -> np.int8 [40] with every unrendered column at -1."""
    row = np.full(len(ATTRIBUTES), -1, dtype=np.int8)
    for k, v in a.items():
        row[ATTR_INDEX[k]] = 1 if v > 0 else -1
    return row


# ---------------------------------------------------------------------------
# Nuisance
# ---------------------------------------------------------------------------


def sample_nuisance(rng: np.random.Generator) -> dict:
    u = rng.random(40)
    n = {}
    n["dx"], n["dy"] = (u[0] - 0.5) * 10, (u[1] - 0.5) * 8  # pixels at 64
    n["scale"] = 0.86 + 0.22 * u[2]
    n["tilt"] = (u[3] - 0.5) * 24  # degrees
    # Skin: a 1-D tone from light to dark with a little hue jitter (pale skin is set apart).
    t = u[4]
    light, dark = np.array([228, 184, 150]), np.array([105, 68, 45])
    n["skin"] = light * (1 - t) + dark * t + (u[5] - 0.5) * np.array([10, 8, 6])
    n["face_rx"], n["face_ry"] = 25 + 4 * u[6], 33 + 5 * u[7]
    n["hair_volume"] = 3 + 7 * u[8]
    n["hair_top"] = 8 + 6 * u[9]
    n["hair_len"] = u[10]
    n["parting"] = (u[11] - 0.5) * 16
    n["hair_shade"] = int(u[12] * 3)
    n["curly"] = u[13] < 0.3
    n["iris"] = _IRIS_RGB[int(u[14] * len(_IRIS_RGB))]
    n["eye_dx"] = 10 + 3 * u[15]
    n["hat"] = _HAT_RGB[int(u[16] * len(_HAT_RGB))]
    n["hat_kind"] = int(u[17] * 2)  # 0 cap with brim, 1 beanie with band
    n["earring"] = _EARRING_RGB[int(u[18] * len(_EARRING_RGB))]
    n["shadow"] = _SHADOW_RGB[int(u[19] * len(_SHADOW_RGB))]
    n["glasses_round"] = u[20] < 0.5
    n["clothes"] = tuple(int(c) for c in 40 + 190 * rng.random(3))
    n["bg0"] = 30 + 200 * rng.random(3)
    n["bg1"] = 30 + 200 * rng.random(3)
    n["bg_angle"] = u[21] * 2 * math.pi
    n["bg_blobs"] = int(u[22] * 4)
    n["light_angle"] = u[23] * 2 * math.pi
    n["light_strength"] = 0.25 * u[24]
    n["brightness"] = 0.82 + 0.3 * u[25]
    n["tint"] = 1 + (rng.random(3) - 0.5) * 0.1
    n["noise"] = 1.5 + 4 * u[26]
    n["jpeg_quality"] = int(72 + 23 * u[27])
    n["mouth_w"] = 0.85 + 0.3 * u[28]
    n["brow_tilt"] = (u[29] - 0.5) * 3
    n["blob_u"] = rng.random((4, 6))
    n["noise_seed"] = int(rng.integers(0, 2**31 - 1))
    return n


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------


def _c(rgb, f=1.0, alpha=255):
    return tuple(int(max(0, min(255, round(v * f)))) for v in rgb) + (alpha,)


def _draw_face_layer(a: dict[str, int], n: dict, S: int):
    """The face (hair, head, features, accessories) on a transparent RGBA canvas of S x S.

    Canonical frame: 128 units across, face centre at (64, 68); ``k`` maps units to pixels.
    """
    from PIL import Image, ImageDraw

    k = S / 128.0
    layer = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)

    def box(x0, y0, x1, y1):
        return [x0 * k, y0 * k, x1 * k, y1 * k]

    def pts(seq):
        return [(x * k, y * k) for x, y in seq]

    def W(w):
        return max(1, int(round(w * k)))

    male = a["Male"] == 1
    bold = n.get("style", 1) >= 2  # style 2: larger, higher-contrast small features
    cx, cy = 64.0, 68.0
    rx, ry = n["face_rx"] + (2 if male else -1), n["face_ry"]
    skin = np.array([246, 232, 226]) if a["Pale_Skin"] == 1 else n["skin"]
    skin_c = _c(skin)
    colour = next((h for h in HAIR_COLOURS if a[h] == 1), None)
    hair = _HAIR_RGB[colour][n["hair_shade"]] if colour else (60, 45, 35)
    hair_c = _c(hair)
    facial_hair_c = _c(hair, 0.8 if colour != "Black_Hair" else 1.0)
    has_hair = a["Bald"] != 1

    # Clothes and neck.
    d.ellipse(box(cx - 52, cy + 44, cx + 52, cy + 110), fill=_c(n["clothes"]))
    d.rectangle(box(cx - 11, cy + 20, cx + 11, cy + 52), fill=_c(skin, 0.85))

    # Back hair: long for women (to the shoulders), short for men.
    vol = n["hair_volume"]
    if has_hair:
        if not male:
            bottom = cy + 30 + 22 * n["hair_len"]
            d.rounded_rectangle(box(cx - rx - vol - 3, cy - ry - 4, cx + rx + vol + 3, bottom), radius=W(14), fill=hair_c)
            if n["curly"]:
                for j in range(6):
                    yy = cy - 10 + j * (bottom - cy + 10) / 6
                    for sx in (-1, 1):
                        xx = cx + sx * (rx + vol + 2)
                        d.ellipse(box(xx - 5, yy - 5, xx + 5, yy + 5), fill=hair_c)
        d.ellipse(box(cx - rx - vol * 0.5, cy - ry - n["hair_top"], cx + rx + vol * 0.5, cy + 4), fill=hair_c)

    # Ears.
    for sx in (-1, 1):
        ex = cx + sx * (rx - 1)
        d.ellipse(box(ex - 5, cy - 8, ex + 5, cy + 9), fill=_c(skin, 0.92))

    # Head: an ellipse; men get a broader jaw.
    d.ellipse(box(cx - rx, cy - ry, cx + rx, cy + ry), fill=skin_c)
    if male:
        d.rounded_rectangle(box(cx - rx + 3, cy + 2, cx + rx - 3, cy + ry - 2), radius=W(12), fill=skin_c)

    # Top hair over the forehead (hairline), with a parting.
    if has_hair:
        top = cy - ry - n["hair_top"]
        hl = cy - ry * (0.62 if bold else 0.55)
        d.chord(box(cx - rx - 1, top, cx + rx + 1, 2 * hl - top), 180, 360, fill=hair_c)
        if not male:  # hair falls down the sides of the face
            d.rectangle(box(cx - rx - 2, hl - 4, cx - rx + 5, cy + 22), fill=hair_c)
            d.rectangle(box(cx + rx - 5, hl - 4, cx + rx + 2, cy + 22), fill=hair_c)
        else:
            d.rectangle(box(cx - rx - 1, hl - 2, cx - rx + 4, cy - 2), fill=hair_c)  # sideburns
            d.rectangle(box(cx + rx - 4, hl - 2, cx + rx + 1, cy - 2), fill=hair_c)
        p = cx + n["parting"]
        d.line(pts([(p, top + 3), (p + 2, hl - 1)]), fill=_c(hair, 0.7), width=W(1.5))
    else:
        d.ellipse(box(cx - 10, cy - ry + 4, cx + 2, cy - ry + 9), fill=_c(skin, 1.12))  # scalp shine

    # Bangs: a fringe covering the forehead down to the brows, with a jagged edge.
    if a["Bangs"] == 1:
        hl = cy - ry * 0.55
        edge = cy - 11 if bold else cy - 16
        poly = [(cx - rx + 1, hl - 6), (cx + rx - 1, hl - 6)]
        nt = 7
        for j in range(nt + 1):
            x = cx + rx - 2 - j * (2 * rx - 4) / nt
            poly.append((x, edge + (3 if j % 2 else 0)))
        d.polygon(pts(poly), fill=hair_c)

    # Eyes (with makeup shadow first), brows.
    ey = cy - 8
    edx = n["eye_dx"]
    if a["Heavy_Makeup"] == 1:
        for sx in (-1, 1):
            x = cx + sx * edx
            d.ellipse(box(x - 8, ey - 8, x + 8, ey + 2), fill=_c(n["shadow"]))
        for sx in (-1, 1):  # blush
            x = cx + sx * (edx + 3)
            d.ellipse(box(x - 6, cy + 4, x + 6, cy + 11), fill=_c((235, 110, 130)))
    for sx in (-1, 1):
        x = cx + sx * edx
        d.ellipse(box(x - 5.5, ey - 3.2, x + 5.5, ey + 3.2), fill=(250, 250, 250, 255))
        d.ellipse(box(x - 2.8, ey - 2.8, x + 2.8, ey + 2.8), fill=_c(n["iris"]))
        d.ellipse(box(x - 1.2, ey - 1.2, x + 1.2, ey + 1.2), fill=(10, 10, 10, 255))
        if a["Heavy_Makeup"] == 1:
            d.line(pts([(x - 6, ey - 2.5), (x + 6, ey - 2.5)]), fill=(15, 10, 20, 255), width=W(2))
    brow_c = _c(hair, 0.75) if has_hair and colour != "Black_Hair" else _c((45, 35, 30))
    if a["Bangs"] != 1:
        for sx in (-1, 1):
            x = cx + sx * edx
            d.line(pts([(x - 6, ey - 8 - sx * n["brow_tilt"] * 0.3), (x + 6, ey - 8 + sx * n["brow_tilt"] * 0.3)]),
                   fill=brow_c, width=W(3.5 if male else 2))

    # Nose.
    d.line(pts([(cx, ey + 3), (cx - 2, cy + 8), (cx + 2, cy + 9)]), fill=_c(skin, 0.72), width=W(1.5))

    # Beard (full) and goatee, drawn before the mouth.
    my = cy + 18
    if a["No_Beard"] == -1 and a["Goatee"] != 1:
        d.chord(box(cx - rx, cy - ry, cx + rx, cy + ry), 5, 175, fill=facial_hair_c)
        d.rectangle(box(cx - rx + 3, cy + 10, cx + rx - 3, cy + ry - 6), fill=facial_hair_c)
        d.ellipse(box(cx - 11, my - 7, cx + 11, my + 7), fill=skin_c)
    if bold:
        facial_hair_c = _c(hair, 0.55) if colour != "Black_Hair" else _c((10, 10, 12))
    if a["Goatee"] == 1:
        g = 3 if bold else 0
        d.ellipse(box(cx - 8 - g, my + 5 - g, cx + 8 + g, cy + ry + 3), fill=facial_hair_c)
    if a["Mustache"] == 1:
        if bold:
            d.polygon(pts([(cx - 14, my), (cx - 9, my - 9), (cx + 9, my - 9), (cx + 14, my), (cx, my - 4)]),
                      fill=facial_hair_c)
        else:
            d.polygon(pts([(cx - 12, my - 2), (cx - 8, my - 8), (cx + 8, my - 8), (cx + 12, my - 2), (cx, my - 5)]),
                      fill=facial_hair_c)

    # Mouth.
    mw = 9 * n["mouth_w"]
    plain_lip = [0.5, 0.3, 0.3] if bold else [0.78, 0.55, 0.52]
    lip = (200, 20, 45) if a["Wearing_Lipstick"] == 1 else tuple(np.array(skin) * np.array(plain_lip))
    lip_c = _c(lip)
    lw = 4.5 if a["Wearing_Lipstick"] == 1 else (3.5 if bold else 2.2)
    smiling, open_ = a["Smiling"] == 1, a["Mouth_Slightly_Open"] == 1
    if smiling:
        mw += 2.5
        if open_:
            d.chord(box(cx - mw, my - 7, cx + mw, my + 7), 0, 180, fill=(70, 15, 20, 255))
            d.rectangle(box(cx - mw + 2, my, cx + mw - 2, my + 2.5), fill=(245, 245, 240, 255))
            d.arc(box(cx - mw - 1, my - 8, cx + mw + 1, my + 8), 0, 180, fill=lip_c, width=W(lw * 0.8))
            d.line(pts([(cx - mw, my), (cx + mw, my)]), fill=lip_c, width=W(lw * 0.6))
        else:
            if bold:
                d.arc(box(cx - mw - 2, my - 14, cx + mw + 2, my + 6), 10, 170, fill=lip_c, width=W(lw))
            else:
                d.arc(box(cx - mw, my - 9, cx + mw, my + 5), 15, 165, fill=lip_c, width=W(lw))
    else:
        if open_:
            o = 2 if bold else 0
            d.ellipse(box(cx - mw * 0.6 - 1, my - 4 - o, cx + mw * 0.6 + 1, my + 4 + o), fill=lip_c)
            d.ellipse(box(cx - mw * 0.6 + 1.5, my - 2.2 - o, cx + mw * 0.6 - 1.5, my + 2.2 + o), fill=(60, 12, 18, 255))
        else:
            d.line(pts([(cx - mw, my), (cx + mw, my)]), fill=lip_c, width=W(lw))

    # Earrings hanging below the ears.
    if a["Wearing_Earrings"] == 1:
        for sx in (-1, 1):
            ex = cx + sx * (rx - 1)
            if bold:
                d.ellipse(box(ex - 6, cy + 8, ex + 6, cy + 20), fill=_c(n["earring"]), outline=(20, 20, 20, 255), width=W(1.5))
            else:
                d.ellipse(box(ex - 4.5, cy + 8, ex + 4.5, cy + 17), fill=_c(n["earring"]), outline=(20, 20, 20, 255), width=W(1.2))

    # Eyeglasses: dark frames across both eyes, bridge and temples.
    if a["Eyeglasses"] == 1:
        fr = (18, 18, 22, 255)
        for sx in (-1, 1):
            x = cx + sx * edx
            b = box(x - 8, ey - 6, x + 8, ey + 6)
            if n["glasses_round"]:
                d.ellipse(b, outline=fr, width=W(3))
            else:
                d.rounded_rectangle(b, radius=W(3), outline=fr, width=W(3))
            d.line(pts([(x + sx * 8, ey - 2), (cx + sx * (rx - 1), ey - 3)]), fill=fr, width=W(2.5))
        d.line(pts([(cx - edx + 8, ey - 1), (cx + edx - 8, ey - 1)]), fill=fr, width=W(3))

    # Hat: a coloured crown above the hair, with a brim or a band.
    if a["Wearing_Hat"] == 1:
        hc = n["hat"]
        top = cy - ry - n["hair_top"] - 12
        base = cy - ry * 0.62
        d.chord(box(cx - rx - 4, top, cx + rx + 4, 2 * base - top), 180, 360, fill=_c(hc))
        if n["hat_kind"] == 0:
            d.ellipse(box(cx - rx - 14, base - 5, cx + rx + 8, base + 4), fill=_c(hc, 0.8))
        else:
            d.rectangle(box(cx - rx - 5, base - 7, cx + rx + 5, base + 1), fill=_c(hc, 0.65))
    return layer


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(S: int):
    """Pixel-centre coordinates in [0, 1) of an S x S image (cached)."""
    if S not in _GRIDS:
        y, x = np.mgrid[0:S, 0:S].astype(np.float32)
        _GRIDS[S] = ((x + 0.5) / S, (y + 0.5) / S)
    return _GRIDS[S]


def _background(n: dict, S: int):
    """A smooth background (two-colour gradient and soft blobs) as an RGBA PIL image of S x S.

    Computed on a coarse 32 x 32 grid and upsampled: it is smooth by construction.
    """
    from PIL import Image

    x, y = _grid(32)
    t = np.clip(0.5 + (x - 0.5) * math.cos(n["bg_angle"]) + (y - 0.5) * math.sin(n["bg_angle"]), 0, 1)[..., None]
    bg = n["bg0"][None, None] * (1 - t) + n["bg1"][None, None] * t
    for j in range(n["bg_blobs"]):
        bu = n["blob_u"][j]
        bx, by, br = bu[0], bu[1], 0.1 + 0.2 * bu[2]
        m = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * br * br))[..., None] * 0.5
        bg = bg * (1 - m) + (30 + 200 * bu[3:6])[None, None] * m
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB").resize((S, S), Image.BILINEAR)
    return img.convert("RGBA")


def render_face(attrs: dict[str, int], nuisance: dict, size: int = 64, style: int = 1) -> np.ndarray:
    """Draw one face -> uint8 [size, size, 3] (before JPEG).

    ``style`` 1 is the original drawing; style 2 draws the small features (mouth and smile,
    bangs, moustache, goatee, earrings) larger and with more contrast. Attributes and
    nuisance are the same in both styles.
    """
    from PIL import Image

    S = 2 * size
    layer = _draw_face_layer(attrs, dict(nuisance, style=style), S)
    # Tilt, scale and move the face (inverse affine: output pixel -> layer pixel).
    th = math.radians(nuisance["tilt"])
    sc = nuisance["scale"]
    c0 = S / 2
    ox, oy = c0 + nuisance["dx"] * S / 64, c0 + nuisance["dy"] * S / 64
    cos, sin = math.cos(th) / sc, math.sin(th) / sc
    data = (cos, sin, c0 - cos * ox - sin * oy, -sin, cos, c0 + sin * ox - cos * oy)
    layer = layer.transform((S, S), Image.AFFINE, data, resample=Image.BILINEAR)
    img = Image.alpha_composite(_background(nuisance, S), layer).convert("RGB").reduce(2)
    arr = np.asarray(img, dtype=np.float32)
    # Lighting: a directional gradient, brightness and colour tint; then sensor noise.
    x, y = _grid(size)
    g = 1 + nuisance["light_strength"] * ((x - 0.5) * math.cos(nuisance["light_angle"]) + (y - 0.5) * math.sin(nuisance["light_angle"])) * 2
    arr = arr * (g[..., None] * nuisance["brightness"]) * nuisance["tint"][None, None]
    noise_rng = np.random.default_rng(nuisance["noise_seed"])
    arr = arr + noise_rng.standard_normal(arr.shape, dtype=np.float32) * nuisance["noise"]
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def landmarks(attrs: dict[str, int], nuisance: dict, size: int = 64) -> dict[str, tuple[float, float]]:
    """Where the face's parts land in the output image (x, y in pixels), after tilt, scale and shift."""
    male = attrs["Male"] == 1
    rx, ry = nuisance["face_rx"] + (2 if male else -1), nuisance["face_ry"]
    cx, cy, edx = 64.0, 68.0, nuisance["eye_dx"]
    canon = {
        "eye_left": (cx - edx, cy - 8), "eye_right": (cx + edx, cy - 8), "mouth": (cx, cy + 18),
        "ear_left": (cx - rx + 1, cy + 12), "ear_right": (cx + rx - 1, cy + 12),
        "head_top": (cx, cy - ry - nuisance["hair_top"] - 4), "forehead": (cx, cy - ry * 0.5),
        "chin": (cx, cy + ry - 4), "centre": (cx, cy),
    }
    th, sc = math.radians(nuisance["tilt"]), nuisance["scale"]
    ox, oy = 64 + nuisance["dx"] * 2, 64 + nuisance["dy"] * 2  # in the 128-unit frame
    out = {}
    for name, (x, y) in canon.items():
        dx, dy = x - 64, y - 64
        u = ox + sc * (math.cos(th) * dx - math.sin(th) * dy)
        v = oy + sc * (math.sin(th) * dx + math.cos(th) * dy)
        out[name] = (u * size / 128 - 0.5, v * size / 128 - 0.5)
    return out


def face(seed: int, index: int = 0, overrides: dict[str, int] | None = None):
    """The attributes {name: +1/-1} and nuisance parameters of image ``index`` of the world ``seed``."""
    ra, rn = _streams(seed, index)
    return resolve_overrides(sample_attributes(ra), overrides), sample_nuisance(rn)


def _streams(seed: int, index: int):
    return np.random.default_rng([seed, index, 0]), np.random.default_rng([seed, index, 1])


def render(seed: int, index: int = 0, overrides: dict[str, int] | None = None, size: int = 64, jpeg: bool = False,
           style: int = 1):
    """Image ``index`` of the toy world with ``seed`` -> (uint8 [size, size, 3], np.int8 [40] attributes).

    ``overrides`` ({name: +1/-1}) change attributes while keeping the same face and nuisance.
    ``jpeg=True`` also applies the JPEG round trip that the dataset files go through.
    """
    ra, rn = _streams(seed, index)
    a = resolve_overrides(sample_attributes(ra), overrides)
    nui = sample_nuisance(rn)
    img = render_face(a, nui, size, style)
    if jpeg:
        img = _jpeg_roundtrip(img, nui["jpeg_quality"])
    return img, attributes_row(a)


def _jpeg_bytes(img: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(_jpeg_bytes(img, quality))).convert("RGB"))


def render_batch(seed: int, indices, size: int = 64, jpeg: bool = False, style: int = 1):
    """Images ``indices`` -> (uint8 [N, size, size, 3], np.int8 [N, 40])."""
    out = [render(seed, int(i), size=size, jpeg=jpeg, style=style) for i in indices]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


# ---------------------------------------------------------------------------
# Dataset writer
# ---------------------------------------------------------------------------


def filename(i: int) -> str:
    return f"{i + 1:06d}.jpg"


def _write_chunk(job):
    seed, start, stop, size, img_dir, style = job
    rows = np.empty((stop - start, len(ATTRIBUTES)), dtype=np.int8)
    for j, i in enumerate(range(start, stop)):
        ra, rn = _streams(seed, i)
        a = sample_attributes(ra)
        nui = sample_nuisance(rn)
        img = render_face(a, nui, size, style)
        with open(os.path.join(img_dir, filename(i)), "wb") as f:
            f.write(_jpeg_bytes(img, nui["jpeg_quality"]))
        rows[j] = attributes_row(a)
    return start, rows


def partition_of(i: int, n: int) -> int:
    """CelebA-style contiguous partition: first 80% train, next 10% val, last 10% test."""
    if i < int(round(0.8 * n)):
        return 0
    if i < int(round(0.9 * n)):
        return 1
    return 2


def write_dataset(out: str | os.PathLike, n: int, seed: int = 0, workers: int = 2, size: int = 64,
                  progress: bool = True, chunk: int = 250, style: int = 1) -> dict:
    """Write ``n`` toy faces in the CelebA layout under ``out``; returns timing figures."""
    from tqdm import tqdm

    from torch_utils.misc import UserError

    if n < 1:
        raise UserError(f"--n must be at least 1 (got {n})")
    out = Path(out)
    img_dir = out / IMAGE_DIR
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot create the dataset folder ({e.strerror})") from None
    t0 = time.time()
    if style not in (1, 2):
        raise UserError(f"--style must be 1 or 2 (got {style})")
    jobs = [(seed, s, min(s + chunk, n), size, str(img_dir), style) for s in range(0, n, chunk)]
    attrs = np.empty((n, len(ATTRIBUTES)), dtype=np.int8)
    bar = tqdm(total=n, desc="rendering toy faces", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers) as pool:
            for start, rows in pool.imap_unordered(_write_chunk, jobs):
                attrs[start : start + len(rows)] = rows
                bar.update(len(rows))
    else:
        for job in jobs:
            start, rows = _write_chunk(job)
            attrs[start : start + len(rows)] = rows
            bar.update(len(rows))
    bar.close()
    # Lists in the real CelebA format (two-space separators, trailing space after the header).
    lines = [str(n), " ".join(ATTRIBUTES) + " "]
    for i in range(n):
        lines.append(f"{filename(i)} {attrs[i, 0]} " + " ".join(f"{v:2d}" for v in attrs[i, 1:]))
    _atomic_write(out / ATTR_FILE, "\n".join(lines) + "\n")
    _atomic_write(out / PARTITION_FILE, "".join(f"{filename(i)} {partition_of(i, n)}\n" for i in range(n)))
    meta = {"generator": "text2face toy faces", "n": n, "seed": seed, "size": size, "style": style,
            "rendered_attributes": RENDERED_ATTRIBUTES}
    _atomic_write(out / TOY_META, json.dumps(meta, indent=2) + "\n")
    seconds = time.time() - t0
    return {"n": n, "seconds": seconds, "images_per_s": n / seconds}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def preview_grid(seed: int = 0, n: int = 16, ncols: int = 4, start: int = 0, cell_scale: int = 3, style: int = 1):
    """A PIL grid of toy faces ``start .. start+n-1`` of world ``seed``, each with a full caption above it."""
    from dataset.captions import captions
    from torch_utils.misc import image_grid

    idx = list(range(start, start + n))
    imgs, attrs = render_batch(seed, idx, jpeg=True, style=style)
    mask = np.array([a in RENDERED_ATTRIBUTES for a in ATTRIBUTES])
    caps = [c[0] for c in captions(attrs, seed, 1, mask=mask, keep=1.0, indices=idx)]
    return image_grid(imgs, ncols, cell_labels=caps, cell_scale=cell_scale, cell_label_lines=4)
