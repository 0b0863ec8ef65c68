"""Training and evaluating the toy CLIP models.

A toy CLIP is an instance of the ``clip`` package's own ``clip.model.CLIP`` class in a
tiny configuration (64x64 ViT, 64-wide text transformer, full 49,408-token BPE
vocabulary so that ``clip.tokenize`` works unchanged). It is trained contrastively on
(image, caption) pairs of a CelebA-format dataset, with a fresh random caption wording
for every image at every step. The file it writes is a float16 state dict that
``clip.load(path, device="cpu", jit=False)`` — the same call that loads ViT-B/32 —
reads and rebuilds with the package's ``build_model``.

Two bundled models come from here: the conditioning CLIP (seed 0, one half of the train
partition) and the evaluation CLIP (seed 1, the other half), so that no method is scored
by the model it was conditioned on.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.misc import UserError
from torch_utils.persistence import atomic_torch_save, load_training_state

with warnings.catch_warnings():  # clip imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import clip
    import clip.model

# The architecture of the bundled toy CLIPs. ``build_model`` infers every one of these
# from the state dict (text heads = transformer_width // 64, vision heads = vision_width // 64).
DEFAULT_ARCH: dict[str, int] = dict(
    embed_dim=128,
    image_resolution=64,
    vision_layers=4,
    vision_width=64,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=3,
)

LOGIT_SCALE_MAX = math.log(100.0)  # CLIP clamps the learned temperature to 1/100


@dataclass
class ClipTrainConfig:
    data: str
    out: str
    seed: int = 0
    split_half: str = "all"  # "0", "1" or "all": which half of the train partition
    steps: int | None = None  # total optimizer steps (overrides epochs)
    epochs: float = 20.0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    flip: bool = True
    translate: int = 3  # random shift in pixels (edge padding)
    hard_negatives: int = 0  # false captions per image, extra negatives of its image->text softmax
    checkpoint_every: int = 100
    state: str | None = None  # training-state file (default: OUT + ".state")
    resume: bool = False
    threads: int | None = None
    progress: bool = True
    arch: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ARCH))


# ---------------------------------------------------------------------------
# Model construction, saving, fast encoders
# ---------------------------------------------------------------------------


def build_clip(arch: dict[str, int] | None = None) -> clip.model.CLIP:
    """A freshly initialised float32 ``clip.model.CLIP`` with the given architecture."""
    a = dict(DEFAULT_ARCH)
    a.update(arch or {})
    if a["transformer_width"] // 64 != a["transformer_heads"] or a["transformer_width"] % 64:
        raise UserError(f"text width {a['transformer_width']} must be a multiple of 64 with heads = width // 64 (clip's build_model infers the heads that way)")
    if a["image_resolution"] % a["vision_patch_size"]:
        raise UserError(f"image resolution {a['image_resolution']} is not a multiple of the patch size {a['vision_patch_size']}")
    if a["vision_width"] < 64 or a["vision_width"] % 64:
        raise UserError(f"vision width {a['vision_width']} must be a multiple of 64 (clip uses width // 64 attention heads)")
    model = clip.model.CLIP(**a)
    return model.float()


def clip_state_dict_fp16(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors in float16 (what ``clip.load`` expects)."""
    return {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous() for k, v in model.state_dict().items()}


def save_clip(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write a ``clip.load``-able float16 state dict, atomically."""
    atomic_torch_save(clip_state_dict_fp16(model), path)


def encode_text_train(model: clip.model.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` on only the first L token positions, L = longest prompt in the batch.

    The text transformer is causal and the feature is read at the end-of-text token, so
    positions after the longest prompt cannot influence any output: the result equals
    ``encode_text`` on the full context (tested) at a fraction of the cost.
    """
    eot = tokens.argmax(dim=-1)  # the end-of-text token has the largest id
    n = int(eot.max()) + 1
    x = model.token_embedding(tokens[:, :n]) + model.positional_embedding[:n]
    # clip's attention blocks use the bottom-right n x n block of their causal mask,
    # which is again a causal mask.
    x = model.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
    x = model.ln_final(x)
    return x[torch.arange(len(x)), eot] @ model.text_projection


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def split_indices(n: int, split_half: str) -> np.ndarray:
    """Indices into the train partition for ``split_half``: "0" = even rows, "1" = odd rows, "all"."""
    split_half = str(split_half)
    if split_half == "all":
        return np.arange(n)
    if split_half in ("0", "1"):
        return np.arange(int(split_half), n, 2)
    raise UserError(f"--split-half must be 0, 1 or all, not '{split_half}'")


def augment_uint8(x: torch.Tensor, gen: torch.Generator, flip: bool = True, translate: int = 0) -> torch.Tensor:
    """Random horizontal flip and integer shift (edge-replicated) of a uint8 batch [N, 3, H, W]."""
    n, c, h, w = x.shape
    if not flip and translate <= 0:
        return x
    rows = torch.arange(h).expand(n, h)
    cols = torch.arange(w).expand(n, w)
    if flip:
        m = torch.rand(n, generator=gen) < 0.5
    if translate > 0:
        t = translate
        dx = torch.randint(0, 2 * t + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * t + 1, (n,), generator=gen)
        # Output pixel (r, c) reads the (flipped) input at (r + dy - t, c + dx - t), clamped to
        # the image: a shift of the edge-padded image.
        rows = (rows + dy.view(n, 1) - t).clamp(0, h - 1)
        cols = (cols + dx.view(n, 1) - t).clamp(0, w - 1)
    if flip:  # column j of the flipped image is column w - 1 - j of the input
        cols = torch.where(m.view(n, 1), w - 1 - cols, cols)
    # Flip and shift as one gather of the flattened pixels.
    src = (rows.view(n, h, 1) * w + cols.view(n, 1, w)).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, src).view(n, c, h, w)


def _open_dataset(root: str, split: str, resolution: int):
    from dataset.celeba import CelebADataset

    if not os.path.isdir(root):
        raise UserError(f"--data {root}: no such folder")
    return CelebADataset(root, split, resolution=resolution)


def _captions_for(attrs: np.ndarray, rng: np.random.Generator, mask: np.ndarray, keep_range=(0.3, 1.0), subject_only: float = 0.15) -> list[str]:
    """A fresh random caption for each row.

    The share of present attributes named varies per caption (``keep`` drawn from
    ``keep_range``), and a fraction ``subject_only`` of captions names only the subject
    ("a photo of a man"): every caption names a true subset of the face's attributes, the
    empty one included, so the plain subject prompt sits at the centre of its faces and
    "a man with X" vs "a man" is a calibrated with / without comparison.
    """
    from dataset.captions import caption
    from dataset.celeba import ATTR_INDEX

    subject_mask = np.zeros_like(mask)
    subject_mask[ATTR_INDEX["Male"]] = mask[ATTR_INDEX["Male"]]
    out = []
    for row in attrs:
        if rng.random() < subject_only:
            out.append(caption(row, rng, mask=subject_mask))
        else:
            out.append(caption(row, rng, mask=mask, keep=float(rng.uniform(*keep_range))))
    return out


def _false_captions_for(row: np.ndarray, rng: np.random.Generator, mask: np.ndarray, k: int) -> list[str]:
    """``k`` captions of one face that each state one thing it lacks (``dataset.captions.false_caption``);
    none for a face of which nothing can be said falsely (every captioned attribute present, sex unknown)."""
    from dataset.captions import false_caption

    try:
        return [false_caption(row, rng, mask=mask, keep=float(rng.uniform(0.3, 1.0))) for _ in range(k)]
    except ValueError:
        return []


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


class RowAdamW:
    """AdamW without weight decay on the rows of one matrix that have had a gradient so far.

    Made for the token embedding: the captions use a few hundred of CLIP's 49,408 tokens. A row
    that has never had a gradient has zero moments, and AdamW (the embedding gets no weight
    decay) leaves it exactly unchanged; so updating only the rows seen so far is the update of
    ``torch.optim.AdamW`` on the whole matrix, computed by that same class on the gathered rows
    (tests/test_train_clip.py checks the weights bit for bit), at a small fraction of the cost.
    The matrix's gradient is dense as usual (and counts in gradient clipping); ``step`` clears it.
    """

    def __init__(self, weight: torch.nn.Parameter, betas=(0.9, 0.98), eps: float = 1e-6):
        self.weight, self.betas, self.eps = weight, betas, eps
        self.exp_avg = torch.zeros_like(weight, memory_format=torch.contiguous_format)
        self.exp_avg_sq = torch.zeros_like(self.exp_avg)
        self.seen = torch.zeros(weight.shape[0], dtype=torch.bool)
        self.steps = 0

    def mark(self, ids: torch.Tensor) -> None:
        """Rows that this step's gradient may reach (every token id of the batch)."""
        self.seen[ids.reshape(-1).long()] = True

    @torch.no_grad()
    def step(self, lr: float) -> None:
        rows = self.seen.nonzero().squeeze(1)
        p = self.weight[rows].clone().requires_grad_()
        p.grad = self.weight.grad[rows]
        opt = torch.optim.AdamW([p], lr=lr, betas=self.betas, eps=self.eps, weight_decay=0.0)
        opt.state[p] = {"step": torch.tensor(float(self.steps)), "exp_avg": self.exp_avg[rows], "exp_avg_sq": self.exp_avg_sq[rows]}
        with torch.enable_grad():
            opt.step()
        self.weight[rows] = p
        self.exp_avg[rows] = opt.state[p]["exp_avg"]
        self.exp_avg_sq[rows] = opt.state[p]["exp_avg_sq"]
        self.steps += 1
        self.weight.grad = None

    def state_dict(self) -> dict[str, Any]:
        rows = self.seen.nonzero().squeeze(1)
        return {"rows": rows, "exp_avg": self.exp_avg[rows], "exp_avg_sq": self.exp_avg_sq[rows], "steps": self.steps}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        rows = st["rows"].long()
        self.seen.zero_()
        self.seen[rows] = True
        self.exp_avg.zero_()
        self.exp_avg_sq.zero_()
        self.exp_avg[rows] = st["exp_avg"]
        self.exp_avg_sq[rows] = st["exp_avg_sq"]
        self.steps = int(st["steps"])


def _param_groups(model: torch.nn.Module, weight_decay: float):
    """AdamW groups of every parameter but the token embedding (``RowAdamW`` updates that one)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "token_embedding.weight":
            continue
        # gains, biases, embeddings, the temperature: no weight decay
        if p.ndim < 2 or "embedding" in name or name in ("logit_scale", "visual.class_embedding"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_clip(cfg: ClipTrainConfig) -> dict[str, Any]:
    """Train a toy CLIP; returns a summary (steps, wall time, final loss, ...)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    state_path = cfg.state or (str(cfg.out) + ".state")
    arch = dict(DEFAULT_ARCH)
    arch.update(cfg.arch or {})
    res = arch["image_resolution"]

    ds = _open_dataset(cfg.data, "train", res)
    mask = np.asarray(ds.attr_mask, dtype=bool)
    if not mask.any():
        raise UserError(f"--data {cfg.data}: the dataset has no attribute columns with both values; nothing to caption")
    idx = split_indices(len(ds), cfg.split_half)
    if len(idx) < 2:
        raise UserError(f"--data {cfg.data}: only {len(idx)} training images in split half {cfg.split_half}")
    images = torch.as_tensor(ds.images_uint8())[torch.from_numpy(idx)].contiguous()
    if images.shape[-1] != res or images.shape[-2] != res:
        raise UserError(f"--data {cfg.data}: images are {tuple(images.shape[-2:])}, expected {res}x{res}")
    attrs = np.asarray(ds.attrs)[idx]
    n = len(idx)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    total = int(cfg.steps) if cfg.steps else max(1, int(round(cfg.epochs * steps_per_epoch)))

    torch.manual_seed(cfg.seed)
    model = build_clip(arch)
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    emb_opt = RowAdamW(model.token_embedding.weight, betas=(0.9, 0.98), eps=1e-6)
    step = 0
    elapsed_before = 0.0
    cpu_before = 0.0
    history: list[list[float]] = []
    if cfg.resume:
        if not os.path.isfile(state_path):
            raise UserError(f"--resume: no training state at {state_path}")
        st = load_training_state(state_path)
        if st.get("arch") != arch:
            raise UserError(f"--resume: {state_path} was trained with another architecture ({st.get('arch')})")
        if int(st.get("config", {}).get("hard_negatives", 0)) != cfg.hard_negatives:
            raise UserError(f"--resume: {state_path} was trained with --hard-negatives {st.get('config', {}).get('hard_negatives', 0)}, not {cfg.hard_negatives}")
        model.load_state_dict(st["model"])
        if "emb_opt" not in st:
            raise UserError(f"--resume: {state_path} was written by an older version of train clip (one optimizer for every parameter); retrain, or resume with that version")
        opt.load_state_dict(st["opt"])
        emb_opt.load_state_dict(st["emb_opt"])
        step = int(st["step"])
        elapsed_before = float(st.get("elapsed", 0.0))
        cpu_before = float(st.get("cpu", 0.0))
        history = list(st.get("history", []))

    def save(step_done: int, elapsed: float) -> None:
        save_clip(model, cfg.out)
        atomic_torch_save(
            {"model": model.state_dict(), "opt": opt.state_dict(), "emb_opt": emb_opt.state_dict(), "step": step_done, "elapsed": elapsed, "cpu": cpu_before + time.process_time() - c0, "arch": arch, "history": history, "config": _jsonable(asdict(cfg))},
            state_path,
        )

    from tqdm import tqdm

    from loss import clip_contrastive_loss
    from model.clip_io import preprocess_tensor, tokenize

    t0 = time.time()
    c0 = time.process_time()
    bar = tqdm(total=total, initial=step, desc="train clip", unit="step", disable=not cfg.progress, dynamic_ncols=True)
    loss_ema = None
    while step < total:
        # Deterministic per (seed, step): resuming reproduces the same batches and captions.
        epoch, pos = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([cfg.seed, 7, epoch]).permutation(n)
        b = perm[pos * bs : (pos + 1) * bs]
        rng = np.random.default_rng([cfg.seed, 11, step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        x = augment_uint8(images[b], gen, flip=cfg.flip, translate=cfg.translate)
        x = preprocess_tensor(x, res)
        caps = _captions_for(attrs[b], rng, mask)
        if cfg.hard_negatives > 0:
            # own stream, so that the positives are those of a run without hard negatives
            nrng = np.random.default_rng([cfg.seed, 13, step])
            caps += [c for row in attrs[b] for c in _false_captions_for(row, nrng, mask, cfg.hard_negatives)]
        tokens = tokenize(model, caps)  # clip.tokenize's tokens, faster (model.clip_io)

        lr = _lr_at(step, total, cfg.warmup_steps, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        emb_opt.mark(tokens)
        img_emb = model.encode_image(x)
        txt_emb = encode_text_train(model, tokens)
        loss = clip_contrastive_loss(img_emb, txt_emb[: len(b)], model.logit_scale, txt_emb[len(b) :])
        if not torch.isfinite(loss):
            bar.close()
            raise UserError(f"loss became {loss.item()} at step {step}; stopped, the last good checkpoint is kept at {cfg.out} (state {state_path})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        emb_opt.step(lr)
        with torch.no_grad():
            model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
        step += 1
        lv = loss.item()
        loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
        history.append([step, lv])
        bar.set_postfix(loss=f"{loss_ema:.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0 or step == total:
            save(step, elapsed_before + time.time() - t0)
    bar.close()
    if not os.path.isfile(cfg.out):
        save(step, elapsed_before + time.time() - t0)
    wall = elapsed_before + time.time() - t0
    model.eval()
    return {
        "steps": step,
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu_before + time.process_time() - c0, 1),
        "threads": torch.get_num_threads(),
        "train_images": int(n),
        "batch_size": bs,
        "final_loss_ema": None if loss_ema is None else round(loss_ema, 4),
        "logit_scale": round(float(model.logit_scale.detach().exp()), 2),
        "arch": arch,
        "history": history,
    }


def _jsonable(d: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None), dict, list)) else str(v)) for k, v in d.items()}


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

# Sentence frames for zero-shot prompts; each replaces the "a photo of " that starts
# dataset.captions.prompt_for's plain wording.
ZERO_SHOT_FRAMES = ("a photo of ", "a picture of ", "a portrait of ", "")


def _frames(prompt: str) -> list[str]:
    base = prompt[len("a photo of ") :] if prompt.startswith("a photo of ") else prompt
    return [f + base for f in ZERO_SHOT_FRAMES]


def zero_shot_prompts(attr: str) -> tuple[list[str], list[str], int]:
    """(prompts describing the attribute, prompts leaving it unsaid, the attribute value described).

    The captions never state an absence (CLIP reads negations poorly), so "without X" is the
    same sentence with X left out, as ``dataset.captions.prompt_for`` words a -1. Both lists
    cover both subjects ("a man ..." / "a woman ...") so that the decision does not depend on
    the face's sex. ``Male`` compares "a man" with "a woman"; ``No_Beard`` describes the beard
    (value -1), as the captions do.
    """
    from dataset.captions import prompt_for

    if attr == "Male":
        return _frames(prompt_for({"Male": 1})), _frames(prompt_for({"Male": -1})), 1
    value = -1 if attr == "No_Beard" else 1
    pos, neg = [], []
    for s in (1, -1):
        pos += _frames(prompt_for({"Male": s, attr: value}))
        neg += _frames(prompt_for({"Male": s}))
    return pos, neg, value


def full_caption(attrs_row: np.ndarray, mask: np.ndarray) -> str:
    """The plain caption of a face naming every present attribute (and the subject's sex)."""
    from dataset.captions import prompt_for
    from dataset.celeba import ATTRIBUTES

    d = {}
    for i, name in enumerate(ATTRIBUTES):
        if mask[i] and (attrs_row[i] > 0 or name in ("Male", "No_Beard")):
            d[name] = int(attrs_row[i])
    return prompt_for(d)


@torch.no_grad()
def evaluate_clip(model_or_path, data: str, n_retrieval: int = 1000, split: str = "test", batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
    """Zero-shot attribute accuracy and text-to-image retrieval on ``split``.

    - zero-shot: for every attribute the data renders, the image is classified by the
      cosine to the mean embedding of the prompts with the attribute vs the mean embedding of
      the prompts without it (see ``zero_shot_prompts``);
      accuracy and balanced accuracy (mean of the two class recalls) per attribute;
    - retrieval: the first ``n_retrieval`` images of the split and their full captions;
      recall@1 / @5 of each caption's own image among them.
    """
    from dataset.celeba import ATTRIBUTES
    from model.clip_io import encode_images, encode_text, load_clip

    model = load_clip(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    was_training = model.training
    model.eval()
    res = int(model.visual.input_resolution)
    ds = _open_dataset(data, split, 64)
    mask = np.asarray(ds.attr_mask, dtype=bool)
    attrs = np.asarray(ds.attrs)
    images = torch.as_tensor(ds.images_uint8())
    img_emb = encode_images(model, images, batch_size=batch_size, progress=progress)

    zs: dict[str, Any] = {}
    for i, name in enumerate(ATTRIBUTES):
        if not mask[i]:
            continue
        pos, neg, value = zero_shot_prompts(name)
        e = encode_text(model, pos + neg, progress=False)
        ep = F.normalize(e[: len(pos)].mean(0), dim=-1)
        en = F.normalize(e[len(pos) :].mean(0), dim=-1)
        described = (img_emb @ ep) > (img_emb @ en)
        pred = described if value > 0 else ~described
        truth = torch.from_numpy(attrs[:, i] > 0)
        acc = (pred == truth).float().mean().item()
        rec_p = (pred[truth].float().mean().item()) if truth.any() else float("nan")
        rec_n = ((~pred[~truth]).float().mean().item()) if (~truth).any() else float("nan")
        zs[name] = {"accuracy": round(acc, 4), "balanced_accuracy": round(float(np.nanmean([rec_p, rec_n])), 4), "positive_rate": round(truth.float().mean().item(), 4)}

    k = min(n_retrieval, len(images))
    caps = [full_caption(attrs[j], mask) for j in range(k)]
    te = encode_text(model, caps, batch_size=batch_size, truncate=True, progress=False)
    sims = te @ img_emb[:k].t()  # [captions, images]
    own = sims.diag().unsqueeze(1)
    rank = (sims > own).sum(1)  # images strictly closer than the caption's own image
    accs = [v["accuracy"] for v in zs.values()]
    if was_training:
        model.train()
    return {
        "zero_shot": zs,
        "zero_shot_mean_accuracy": round(float(np.mean(accs)), 4) if accs else None,
        "zero_shot_min_accuracy": round(float(np.min(accs)), 4) if accs else None,
        "zero_shot_mean_balanced_accuracy": round(float(np.mean([v["balanced_accuracy"] for v in zs.values()])), 4) if zs else None,
        "retrieval_n": k,
        "t2i_recall@1": round((rank < 1).float().mean().item(), 4),
        "t2i_recall@5": round((rank < 5).float().mean().item(), 4),
        "test_images": int(len(images)),
        "input_resolution": res,
    }


def format_clip_metrics(m: dict[str, Any]) -> str:
    lines = [f"{'attribute':<22} {'zero-shot acc':>13} {'balanced':>9} {'pos. rate':>9}"]
    for name, v in m["zero_shot"].items():
        lines.append(f"{name:<22} {v['accuracy']:>13.3f} {v['balanced_accuracy']:>9.3f} {v['positive_rate']:>9.3f}")
    lines.append(f"{'mean':<22} {m['zero_shot_mean_accuracy']:>13.3f} {m['zero_shot_mean_balanced_accuracy']:>9.3f}")
    lines.append(f"min zero-shot accuracy {m['zero_shot_min_accuracy']:.3f}")
    lines.append(f"text->image retrieval among {m['retrieval_n']} test images: R@1 {m['t2i_recall@1']:.3f}  R@5 {m['t2i_recall@5']:.3f}")
    return "\n".join(lines)
