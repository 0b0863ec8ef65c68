#!/usr/bin/env python
"""How far apart a CLIP puts images and their captions (the modality gap), on toy test faces.

For the first N test images of a CelebA-format folder and their full captions
(``model.train_clip.full_caption``), prints per CLIP model: the mean cosine between an image and
its own caption, the distance between the mean image and the mean caption embedding (both
L2-normalised per item), and the mean pairwise cosine within images and within captions.

    python scripts/clip_gap_stats.py --data ../data/toy pretrained/clip_cond.pt OTHER_CLIP.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", help="CLIP names or paths (anything clip.load reads)")
    ap.add_argument("--data", default="../data/toy", help="CelebA-format folder (its test split)")
    ap.add_argument("--n", type=int, default=1000, help="number of test images")
    args = ap.parse_args()

    import numpy as np
    import torch

    from model.clip_io import encode_images, encode_text, load_clip
    from model.train_clip import _open_dataset, full_caption

    ds = _open_dataset(args.data, "test", 64)
    mask = np.asarray(ds.attr_mask, dtype=bool)
    attrs = np.asarray(ds.attrs)
    n = min(args.n, len(attrs))
    images = torch.as_tensor(ds.images_uint8()[:n])
    captions = [full_caption(attrs[i], mask) for i in range(n)]
    for name in args.clips:
        model = load_clip(name).eval()
        ei = encode_images(model, images, progress=False)
        et = encode_text(model, captions, progress=False)
        print(f"{name}: cos(image, own caption) {(ei * et).sum(-1).mean():.3f}; "
              f"|mean image - mean caption| {(ei.mean(0) - et.mean(0)).norm():.3f}; "
              f"mean cos image-image {(ei @ ei.T).mean():.3f}, caption-caption {(et @ et.T).mean():.3f} ({n} test faces)")


if __name__ == "__main__":
    main()
