"""The attribute classifier: training, loading, prediction and evaluation.

The classifier (network.classifier.AttributeClassifier) predicts all 40 CelebA
attributes; training masks the loss to the attributes the dataset actually has
(``attr_mask``: on the toy faces, the rendered ones; on real CelebA, all 40). The
checkpoint is a project safetensors file whose config holds the architecture, the
attribute names and the mask, so the same file scores generated faces and real CelebA.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from network.classifier import AttributeClassifier
from torch_utils.misc import UserError
from torch_utils.persistence import atomic_torch_save, load_checkpoint, load_training_state, save_checkpoint

FORMAT = "text2face.attribute_classifier.v1"


def _open_dataset(root: str, split: str, resolution: int):
    from dataset.celeba import CelebADataset

    if not os.path.isdir(root):
        raise UserError(f"--data {root}: no such folder")
    return CelebADataset(root, split, resolution=resolution)


def to_model_input(images: torch.Tensor | np.ndarray, resolution: int) -> torch.Tensor:
    """[N, 3, H, W] uint8 or float in [-1, 1], any size -> float [-1, 1] at ``resolution``.

    Non-square images are center-cropped to a square first; the resize is antialiased
    bilinear, so large real photos and 64x64 toy faces go through the same path.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
    x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float().clamp(-1, 1)
    h, w = x.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x


def _augment(x: torch.Tensor, gen: torch.Generator, translate: int) -> torch.Tensor:
    """Random horizontal flip and small shift of a float batch (the 40 CelebA attributes are left/right symmetric)."""
    n = len(x)
    m = torch.rand(n, generator=gen) < 0.5
    x = torch.where(m.view(n, 1, 1, 1), x.flip(-1), x)
    if translate > 0:
        t = translate
        pad = F.pad(x, (t, t, t, t), mode="replicate")
        dx, dy = (int(v) for v in torch.randint(0, 2 * t + 1, (2,), generator=gen))
        x = pad[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
    return x


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the attributes where ``mask`` is true."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    m = mask.to(loss.dtype).view(1, -1).expand_as(loss)
    return (loss * m).sum() / m.sum().clamp_min(1)


def train_classifier(
    data: str,
    out: str,
    seed: int = 0,
    epochs: float = 6.0,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    resolution: int = 64,
    channels: Sequence[int] = (32, 64, 128, 256),
    translate: int = 3,
    resume: bool = False,
    state: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    max_images: int | None = None,
) -> dict[str, Any]:
    """Train the attribute classifier on the train partition; returns a summary."""
    from dataset.celeba import ATTRIBUTES
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(int(threads))
    state_path = state or (str(out) + ".state")
    ds = _open_dataset(data, "train", resolution)
    mask = torch.from_numpy(np.asarray(ds.attr_mask, dtype=bool))
    if not bool(mask.any()):
        raise UserError(f"--data {data}: no attribute column takes both values; nothing to learn")
    images = torch.as_tensor(ds.images_uint8())
    targets = torch.from_numpy((np.asarray(ds.attrs) > 0).astype(np.float32))
    if max_images:
        images, targets = images[:max_images], targets[:max_images]
    n = len(images)
    bs = min(batch_size, n)
    steps_per_epoch = max(1, n // bs)
    total = max(1, int(round(epochs * steps_per_epoch)))
    warmup = min(100, total // 10)

    torch.manual_seed(seed)
    net = AttributeClassifier(num_attrs=len(ATTRIBUTES), resolution=resolution, channels=channels)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    config = {
        "format": FORMAT,
        "num_attrs": len(ATTRIBUTES),
        "resolution": int(resolution),
        "channels": [int(c) for c in channels],
        "attr_names": list(ATTRIBUTES),
        "attr_mask": [bool(v) for v in mask.tolist()],
        "trained_on": os.path.abspath(data),
        "seed": int(seed),
    }
    step, elapsed_before, cpu_before = 0, 0.0, 0.0
    if resume:
        if not os.path.isfile(state_path):
            raise UserError(f"--resume: no training state at {state_path}")
        st = load_training_state(state_path)
        if st.get("channels") != config["channels"] or st.get("resolution") != config["resolution"]:
            raise UserError(f"--resume: {state_path} holds another architecture")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed_before = int(st["step"]), float(st.get("elapsed", 0.0))
        cpu_before = float(st.get("cpu", 0.0))

    def save(step_done: int, elapsed: float) -> None:
        cfg = dict(config, steps=step_done)
        save_checkpoint(out, net.state_dict(), cfg)
        atomic_torch_save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step_done, "elapsed": elapsed, "cpu": cpu_before + time.process_time() - c0,
                           "channels": config["channels"], "resolution": config["resolution"]}, state_path)

    t0 = time.time()
    c0 = time.process_time()
    net.train()
    loss_ema = None
    bar = tqdm(total=total, initial=step, desc="train classifier", unit="step", disable=not progress, dynamic_ncols=True)
    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([seed, 3, epoch]).permutation(n)
        b = torch.from_numpy(perm[pos * bs : (pos + 1) * bs])
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        x = _augment(to_model_input(images[b], resolution), gen, translate)
        p = step / max(1, total)
        cur_lr = lr * (step + 1) / warmup if step < warmup else lr * 0.5 * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g["lr"] = cur_lr
        loss = masked_bce(net(x), targets[b], mask)
        if not torch.isfinite(loss):
            bar.close()
            raise UserError(f"loss became {loss.item()} at step {step}; stopped, the last good checkpoint is kept at {out} (state {state_path})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        lv = loss.item()
        loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
        bar.set_postfix(loss=f"{loss_ema:.4f}")
        bar.update(1)
        if step % 200 == 0 or step == total:
            save(step, elapsed_before + time.time() - t0)
    bar.close()
    if not os.path.isfile(out):
        save(step, elapsed_before + time.time() - t0)
    return {"steps": step, "wall_time_s": round(elapsed_before + time.time() - t0, 1),
            "cpu_time_s": round(cpu_before + time.process_time() - c0, 1), "threads": torch.get_num_threads(), "train_images": n,
            "final_loss_ema": None if loss_ema is None else round(loss_ema, 5)}


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> AttributeClassifier:
    """Load a classifier checkpoint in eval mode.

    The returned module carries ``attr_names`` (40 names), ``attr_mask`` (bool tensor [40]:
    the attributes it was trained on; the other outputs are meaningless) and ``resolution``.
    """
    state, cfg = load_checkpoint(path, device=device)
    if cfg.get("format") != FORMAT:
        raise UserError(f"{path}: not an attribute-classifier checkpoint (format {cfg.get('format')!r})")
    net = AttributeClassifier(num_attrs=cfg["num_attrs"], resolution=cfg["resolution"], channels=cfg["channels"])
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match the stored architecture ({str(e).splitlines()[0]})") from None
    net.attr_names = list(cfg["attr_names"])
    net.attr_mask = torch.tensor(cfg["attr_mask"], dtype=torch.bool)
    net.config = cfg
    return net.to(device).eval()


@torch.no_grad()
def predict_attributes(clf: AttributeClassifier, images: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Attribute probabilities [N, 40] (float32, CPU) for images [N, 3, H, W] (uint8 or [-1, 1], any size)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    device = next(clf.parameters()).device
    was_training = clf.training
    clf.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_model_input(images[i : i + batch_size].to(device), clf.resolution)
        out.append(torch.sigmoid(clf(x).float()).cpu())
    if was_training:
        clf.train()
    if not out:
        return torch.zeros(0, clf.num_attrs)
    return torch.cat(out)


def evaluate_classifier(clf: AttributeClassifier | str, data: str, split: str = "test") -> dict[str, Any]:
    """Per-attribute accuracy (threshold 0.5) on ``split`` over the attributes both the data and the classifier have."""
    from dataset.celeba import ATTRIBUTES

    if isinstance(clf, (str, os.PathLike)):
        clf = load_classifier(clf)
    ds = _open_dataset(data, split, clf.resolution)
    mask = np.asarray(ds.attr_mask, dtype=bool) & clf.attr_mask.numpy()
    probs = predict_attributes(clf, ds.images_uint8()).numpy()
    truth = np.asarray(ds.attrs) > 0
    per = {}
    for i, name in enumerate(ATTRIBUTES):
        if mask[i]:
            pred = probs[:, i] > 0.5
            per[name] = {"accuracy": round(float((pred == truth[:, i]).mean()), 4), "positive_rate": round(float(truth[:, i].mean()), 4)}
    accs = [v["accuracy"] for v in per.values()]
    return {"per_attribute": per, "mean_accuracy": round(float(np.mean(accs)), 4) if accs else None,
            "min_accuracy": round(float(np.min(accs)), 4) if accs else None, "test_images": int(len(truth))}


def format_classifier_metrics(m: dict[str, Any]) -> str:
    lines = [f"{'attribute':<22} {'accuracy':>9} {'pos. rate':>9}"]
    for name, v in m["per_attribute"].items():
        lines.append(f"{name:<22} {v['accuracy']:>9.4f} {v['positive_rate']:>9.3f}")
    lines.append(f"{'mean':<22} {m['mean_accuracy']:>9.4f}   (min {m['min_accuracy']:.4f}, {m['test_images']} test images)")
    return "\n".join(lines)
