"""How well can the toy CLIP's vision tower see each attribute when it is told the labels?

Trains the image encoder of the toy CLIP architecture (``clip.model.VisionTransformer``: 64x64
input, the given patch size and width, 4 layers) from scratch with binary cross-entropy on the
dataset's rendered attributes, with the CLIP trainer's augmentation and preprocessing, and prints
the per-attribute test accuracy. It separates "the vision tower cannot resolve the feature in this
budget" from "contrastive training on captions does not teach it".

    python scripts/vision_probe.py --data ../data/toy --steps 1000 --patch 16 --width 64
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="CelebA-format dataset folder (the toy faces).")
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=2e-3, show_default=True, type=float)
@click.option("--patch", default=16, show_default=True, type=int, help="ViT patch size.")
@click.option("--width", default=64, show_default=True, type=int, help="ViT width (multiple of 64).")
@click.option("--layers", default=4, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=1, show_default=True, type=int)
@click.option("--n-test", default=2000, show_default=True, type=int, help="Test images scored.")
def main(data, steps, batch_size, lr, patch, width, layers, seed, threads, n_test):
    """Train the toy CLIP's vision tower on the attribute labels; print per-attribute test accuracy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip.model
    from tqdm import tqdm

    from dataset.celeba import ATTRIBUTES, CelebADataset
    from model.clip_io import preprocess_tensor
    from model.train_clip import augment_uint8

    if width < 64 or width % 64 or 64 % patch:
        raise click.UsageError("--width must be a multiple of 64 and --patch must divide 64")
    torch.set_num_threads(threads)
    train = CelebADataset(data, "train", resolution=64)
    test = CelebADataset(data, "test", resolution=64)
    mask = torch.from_numpy(np.asarray(train.attr_mask, dtype=bool))
    x_train = torch.as_tensor(train.images_uint8())
    y_train = torch.from_numpy(np.asarray(train.attrs) > 0).float()
    x_test = torch.as_tensor(test.images_uint8()[:n_test])
    y_test = torch.from_numpy(np.asarray(test.attrs)[:n_test] > 0)

    torch.manual_seed(seed)
    vit = clip.model.VisionTransformer(64, patch, width, layers, width // 64, len(ATTRIBUTES))
    opt = torch.optim.AdamW(vit.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    t0 = time.time()
    bar = tqdm(range(steps), desc="vision probe", unit="step")
    for step in bar:
        for g in opt.param_groups:  # linear warm-up over 100 steps times a cosine decay over the run
            g["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(x_train), (batch_size,), generator=gen)
        x = preprocess_tensor(augment_uint8(x_train[idx], gen, flip=True, translate=3), 64)
        loss = F.binary_cross_entropy_with_logits(vit(x)[:, mask], y_train[idx][:, mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.time() - t0
    vit.eval()
    with torch.no_grad():
        pred = torch.cat([vit(preprocess_tensor(x_test[i : i + 500], 64)) for i in range(0, len(x_test), 500)]) > 0
    acc = (pred == y_test).float().mean(0)
    click.echo(f"ViT patch {patch}, width {width}, {layers} layers; {steps} steps x {batch_size}, {train_s:.0f} s; {len(x_test)} test images")
    click.echo(f"{'attribute':<22} {'accuracy':>8}")
    for i, name in enumerate(ATTRIBUTES):
        if mask[i]:
            click.echo(f"{name:<22} {acc[i].item():>8.3f}")
    click.echo(f"{'mean':<22} {acc[mask].mean().item():>8.3f}")


if __name__ == "__main__":
    main()
