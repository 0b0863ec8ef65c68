"""StyleGAN2 training: the project's own loop (``python main.py train stylegan``).

One training iteration on a minibatch of ``batch_size`` real images runs up to four phases,
each with its own optimizer step (lazy regularisation):

- G main: non-saturating logistic loss softplus(-D(G(z))) with style mixing;
- G reg (every ``pl_interval`` iterations, only with ``pl_weight > 0``): path-length penalty
  on half a batch, weighted by ``pl_weight * pl_interval``;
- D main: softplus(D(G(z))) + softplus(-D(x));
- D reg (every ``r1_interval`` iterations): R1 = gamma/2 * ||dD(x)/dx||^2, weighted by the interval.

Adam(lr, betas=(0, 0.99)); because a regularised network takes (k+1)/k optimizer steps per
minibatch, its learning rate is multiplied by k/(k+1) and its betas raised to that power. The
generator that is saved is an exponential moving average of G (half-life ``ema_kimg`` thousand
images, ramped up over the first part of training).

On CUDA the top resolutions of G and D run in float16 with the custom ops; on the CPU the
reference ops run in float32. All randomness comes from torch's global RNG and one seeded
``torch.Generator`` for data and latents; both are stored in the training state, so
``--resume`` continues a killed run exactly where its last snapshot left it.

Files in the run folder:
  network-snapshot-KKKKKK.safetensors   EMA generator, project checkpoint format (``load_generator``)
  training-state.pt                     G, D, G_ema, optimizers, RNG, counters (for --resume)
  fakes-KKKKKK.png, reals.png           image grid of fixed latents (seeds 0..n-1) per snapshot
  log.jsonl                             one line of statistics per snapshot
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import loss as losses
from network.stylegan2 import Generator
from network.stylegan2_d import Discriminator
from torch_utils import persistence
from torch_utils.misc import UserError, image_grid

STATE_FILE = "training-state.pt"
LOG_FILE = "log.jsonl"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# Options that define the run; on --resume the stored values are used.
_RUN_KEYS = ("res", "batch_size", "cbase", "cmax", "map_layers", "z_dim", "w_dim", "gamma", "pl_weight", "mirror",
             "seed", "lr", "ema_kimg", "ema_rampup", "style_mixing", "r1_interval", "pl_interval", "mbstd_group")


@dataclasses.dataclass
class StyleGANTrainConfig:
    data: str
    out: str
    res: int = 64
    kimg: float = 100.0
    batch_size: int = 32
    cbase: int = 8192
    cmax: int = 256
    map_layers: int = 2
    z_dim: int = 128
    w_dim: int = 128
    gamma: float = 0.5
    pl_weight: float = 0.0
    mirror: bool = False
    snap_kimg: float = 4.0
    seed: int = 0
    resume: bool = False
    device: str = "cpu"
    lr: float = 0.0025
    ema_kimg: float | None = None  # default: 10 * batch_size / 32
    ema_rampup: float | None = 0.05
    style_mixing: float = 0.9
    r1_interval: int = 16
    pl_interval: int = 4
    mbstd_group: int = 4
    grid_size: int = 32
    threads: int | None = None
    progress: bool = True
    export: str | None = None


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def load_training_images(data: str | os.PathLike, res: int, progress: bool = True) -> torch.Tensor:
    """All training images as uint8 [N, 3, res, res]: a CelebA-format dataset's train split, or a folder of images."""
    from dataset.celeba import ATTR_FILE, CelebADataset, _find, crop_and_resize

    root = Path(data)
    if not root.is_dir():
        raise UserError(f"--data {root}: dataset folder not found")
    if _find(root, ATTR_FILE) is not None:
        return CelebADataset(root, "train", resolution=res).images_uint8(progress=progress)
    from PIL import Image
    from tqdm import tqdm

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise UserError(f"--data {root}: neither a CelebA-format dataset ({ATTR_FILE}) nor a folder of images "
                        f"({', '.join(IMAGE_EXTS)})")
    arr = np.empty((len(files), 3, res, res), dtype=np.uint8)
    for i, p in enumerate(tqdm(files, desc="loading images", unit="img", disable=not progress or len(files) < 2000)):
        try:
            with Image.open(p) as im:
                arr[i] = np.asarray(crop_and_resize(im.convert("RGB"), res), dtype=np.uint8).transpose(2, 0, 1)
        except Exception as e:  # PIL raises several types for broken files
            raise UserError(f"{p}: cannot decode image ({type(e).__name__})") from None
    return torch.from_numpy(arr)


# ---------------------------------------------------------------------------
# Networks and optimizers
# ---------------------------------------------------------------------------


def build_networks(cfg: StyleGANTrainConfig) -> tuple[Generator, Discriminator]:
    G = Generator(z_dim=cfg.z_dim, w_dim=cfg.w_dim, img_resolution=cfg.res, mapping_layers=cfg.map_layers,
                  channel_base=cfg.cbase, channel_max=cfg.cmax, num_fp16_res=4, conv_clamp=256)
    D = Discriminator(img_resolution=cfg.res, channel_base=cfg.cbase, channel_max=cfg.cmax, num_fp16_res=4,
                      conv_clamp=256, mbstd_group_size=cfg.mbstd_group)
    return G, D


def lazy_adam(params, lr: float, reg_interval: int | None) -> torch.optim.Adam:
    """Adam(lr, (0, 0.99)), corrected for the extra optimizer step taken every ``reg_interval`` iterations."""
    betas = (0.0, 0.99)
    if reg_interval:
        ratio = reg_interval / (reg_interval + 1)
        lr = lr * ratio
        betas = (betas[0] ** ratio, betas[1] ** ratio)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)


def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def ema_beta(cfg: StyleGANTrainConfig, cur_nimg: int) -> float:
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))


def sanitize_grads(module: torch.nn.Module) -> None:
    """Replace NaN/inf gradients (float16 overflow on CUDA) so one bad batch does not poison Adam."""
    for p in module.parameters():
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


# ---------------------------------------------------------------------------
# Training state
# ---------------------------------------------------------------------------


def _rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "gen": gen.get_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    gen.set_state(st["gen"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


def snapshot_name(cur_nimg: int) -> str:
    return f"network-snapshot-{cur_nimg // 1000:06d}.safetensors"


def grid_latents(n: int, z_dim: int) -> torch.Tensor:
    """The fixed latents of the progress grids: seeds 0..n-1, as ``main.py sample`` draws them."""
    from model.generator import seed_latent

    return torch.cat([seed_latent(s, z_dim) for s in range(n)])


def save_grid(G: Generator, z: torch.Tensor, path: Path, ncols: int = 8) -> None:
    was_training = G.training
    G.eval()
    with torch.no_grad():
        imgs = torch.cat([G(z[i:i + 16].to(next(G.parameters()).device), noise_mode="const").float().cpu()
                          for i in range(0, len(z), 16)])
    G.train(was_training)
    grid = image_grid(imgs, ncols, cell_scale=max(1, 128 // imgs.shape[-1]))
    persistence.atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))


def export_generator(snapshot: str | os.PathLike, out: str | os.PathLike, half: bool = True, **extra: Any) -> Path:
    """Copy a snapshot's generator to ``out`` (float16 tensors with ``half``), adding ``extra`` to its config."""
    state, config = persistence.load_checkpoint(snapshot)
    if half:
        state = {k: (v.half() if v.is_floating_point() and not k.endswith("resample_filter") else v)
                 for k, v in state.items()}
    config = dict(config)
    config.update(extra)
    persistence.save_checkpoint(out, state, config)
    return Path(out)


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


class NonFiniteLoss(UserError):
    pass


def _check_finite(name: str, value: torch.Tensor, cur_nimg: int, last_snapshot: Path | None) -> float:
    v = float(value.detach())
    if not math.isfinite(v):
        where = f"last good snapshot: {last_snapshot}" if last_snapshot else "no snapshot was written yet"
        raise NonFiniteLoss(f"{name} loss became {v} at kimg {cur_nimg / 1000:.3f}; training stopped ({where})")
    return v


def train_stylegan(cfg: StyleGANTrainConfig, _hook: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a StyleGAN2 run in ``cfg.out``; returns a summary dict.

    ``_hook(step, cur_nimg)`` is called after every iteration, before any snapshot of that
    iteration is written (tests use it to kill a run, benchmarks to time iterations).
    """
    from tqdm import tqdm

    run = Path(cfg.out)
    state_path = run / STATE_FILE
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {cfg.device}: CUDA is not available on this machine")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    saved = None
    if cfg.resume:
        if not state_path.is_file():
            raise UserError(f"--resume: {state_path} not found (no snapshot of this run yet)")
        saved = persistence.load_training_state(state_path)
        for k in _RUN_KEYS:
            setattr(cfg, k, saved["config"][k])
    elif state_path.is_file():
        raise UserError(f"{run}: already holds a training run ({STATE_FILE}); use --resume or another --out")
    if cfg.res < 4 or cfg.res & (cfg.res - 1):
        raise UserError(f"--res {cfg.res}: must be a power of two >= 4")
    if cfg.batch_size < 2 or cfg.batch_size % min(cfg.mbstd_group, cfg.batch_size):
        raise UserError(f"--batch-size {cfg.batch_size}: must be >= 2 and a multiple of the minibatch-std group "
                        f"({cfg.mbstd_group})")
    if cfg.ema_kimg is None:
        cfg.ema_kimg = 10.0 * cfg.batch_size / 32

    images = load_training_images(cfg.data, cfg.res, progress=cfg.progress)
    n_images = len(images)

    torch.manual_seed(cfg.seed)
    G, D = build_networks(cfg)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    G.train().to(device)
    D.train().to(device)
    G_ema.to(device)
    g_reg = cfg.pl_interval if cfg.pl_weight > 0 else None
    opt_G = lazy_adam(G.parameters(), cfg.lr, g_reg)
    opt_D = lazy_adam(D.parameters(), cfg.lr, cfg.r1_interval if cfg.gamma > 0 else None)
    gen = torch.Generator().manual_seed(cfg.seed)
    pl_mean = torch.zeros([], device=device)
    cur_nimg, step, elapsed = 0, 0, 0.0
    last_snapshot: Path | None = None
    if saved is not None:
        G.load_state_dict(saved["G"])
        D.load_state_dict(saved["D"])
        G_ema.load_state_dict(saved["G_ema"])
        opt_G.load_state_dict(saved["opt_G"])
        opt_D.load_state_dict(saved["opt_D"])
        pl_mean = saved["pl_mean"].to(device)
        cur_nimg, step, elapsed = int(saved["cur_nimg"]), int(saved["step"]), float(saved["elapsed_s"])
        last_snapshot = run / saved["snapshot"]
        _set_rng_state(saved["rng"], gen, device)
    run.mkdir(parents=True, exist_ok=True)
    config_dict = {k: getattr(cfg, k) for k in _RUN_KEYS}
    config_dict.update(data=str(cfg.data), n_images=n_images)

    z_grid = grid_latents(cfg.grid_size, cfg.z_dim)
    if saved is None:
        grid = image_grid(images[:cfg.grid_size].permute(0, 2, 3, 1).numpy(), 8, cell_scale=max(1, 128 // cfg.res))
        persistence.atomic_write(run / "reals.png", lambda tmp: grid.save(tmp, format="PNG"))

    def sample_z(n: int) -> torch.Tensor:
        return torch.randn([n, cfg.z_dim], generator=gen).to(device)

    def real_batch() -> torch.Tensor:
        idx = torch.randint(n_images, [cfg.batch_size], generator=gen)
        x = images[idx].to(device).to(torch.float32) / 127.5 - 1
        flip = torch.rand([cfg.batch_size], generator=gen) < 0.5
        if cfg.mirror:
            x = torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(3), x)
        return x

    def run_G(z: torch.Tensor, z2: torch.Tensor, mix: torch.Tensor, cutoff: torch.Tensor, update_w_avg: bool):
        ws = G.mapping(z, update_w_avg=update_w_avg)
        if cfg.style_mixing > 0:
            ws2 = G.mapping(z2, update_w_avg=False)
            layer = torch.arange(G.num_ws, device=device).view(1, -1, 1)
            use2 = mix.to(device).view(-1, 1, 1) & (layer >= cutoff.to(device).view(-1, 1, 1))
            ws = torch.where(use2, ws2, ws)
        return G.synthesis(ws, noise_mode="random"), ws

    def latents(n: int):
        z, z2 = sample_z(n), sample_z(n)
        mix = torch.rand([n], generator=gen) < cfg.style_mixing
        cutoff = torch.randint(1, G.num_ws, [n], generator=gen)
        return z, z2, mix, cutoff

    def save_snapshot() -> Path:
        for name, net in (("G", G), ("D", D)):
            for k, v in net.state_dict().items():
                if v.is_floating_point() and not torch.isfinite(v).all():
                    raise NonFiniteLoss(f"{name} parameter {k} is not finite at kimg {cur_nimg / 1000:.3f}; "
                                        f"training stopped (last good snapshot: {last_snapshot})")
        from model.generator import save_generator

        path = run / snapshot_name(cur_nimg)
        save_generator(G_ema, path, kimg=cur_nimg / 1000, training=config_dict)
        state = {
            "config": config_dict, "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "pl_mean": pl_mean.detach().cpu(),
            "cur_nimg": cur_nimg, "step": step, "elapsed_s": elapsed + (time.time() - t_start),
            "snapshot": path.name, "rng": _rng_state(gen, device),
        }
        persistence.atomic_torch_save(state, state_path)
        save_grid(G_ema, z_grid, run / f"fakes-{cur_nimg // 1000:06d}.png")
        return path

    total_nimg = int(round(cfg.kimg * 1000))
    snap_nimg = max(1, int(round(cfg.snap_kimg * 1000)))
    t_start = time.time()
    t_tick, nimg_tick = t_start, cur_nimg
    stats: dict[str, float] = {}
    sec_per_kimg = float("nan")
    log_f = open(run / LOG_FILE, "a")
    bar = tqdm(total=total_nimg, initial=min(cur_nimg, total_nimg), unit="img", unit_scale=True,
               desc="train stylegan", disable=not cfg.progress, dynamic_ncols=True)
    try:
        if saved is None:
            last_snapshot = save_snapshot()
        next_snap = (cur_nimg // snap_nimg + 1) * snap_nimg
        while cur_nimg < total_nimg:
            reals = real_batch()

            # --- G main: non-saturating logistic loss.
            G.requires_grad_(True)
            D.requires_grad_(False)
            img, _ = run_G(*latents(cfg.batch_size), update_w_avg=True)
            loss_g = losses.stylegan2_g_loss(D(img))
            opt_G.zero_grad(set_to_none=True)
            loss_g.backward()
            stats["G"] = _check_finite("G", loss_g, cur_nimg, last_snapshot)
            if device.type == "cuda":
                sanitize_grads(G)
            opt_G.step()

            # --- G reg: path length.
            if g_reg and step % g_reg == 0:
                n = max(1, cfg.batch_size // 2)
                z, z2, mix, cutoff = latents(n)
                ws = G.mapping(z, update_w_avg=False)
                if cfg.style_mixing > 0:
                    layer = torch.arange(G.num_ws, device=device).view(1, -1, 1)
                    ws2 = G.mapping(z2, update_w_avg=False)
                    ws = torch.where(mix.to(device).view(-1, 1, 1) & (layer >= cutoff.to(device).view(-1, 1, 1)), ws2, ws)
                pen, pl_mean, _ = losses.path_length_penalty(G.synthesis, ws, pl_mean)
                loss_pl = pen.mean() * (cfg.pl_weight * g_reg)
                opt_G.zero_grad(set_to_none=True)
                loss_pl.backward()
                stats["pl"] = _check_finite("path-length", pen.mean(), cur_nimg, last_snapshot)
                if device.type == "cuda":
                    sanitize_grads(G)
                opt_G.step()

            # --- D main: logistic loss on fakes and reals.
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                img, _ = run_G(*latents(cfg.batch_size), update_w_avg=False)
            loss_d = losses.stylegan2_d_loss(D(reals), D(img))
            opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["D"] = _check_finite("D", loss_d, cur_nimg, last_snapshot)
            if device.type == "cuda":
                sanitize_grads(D)
            opt_D.step()

            # --- D reg: lazy R1 on reals.
            if cfg.gamma > 0 and step % cfg.r1_interval == 0:
                pen, logits = losses.stylegan2_r1(D, reals)
                loss_r1 = (pen.mean() * (cfg.gamma / 2) + logits.mean() * 0) * cfg.r1_interval
                opt_D.zero_grad(set_to_none=True)
                loss_r1.backward()
                stats["r1"] = _check_finite("R1", pen.mean(), cur_nimg, last_snapshot)
                if device.type == "cuda":
                    sanitize_grads(D)
                opt_D.step()

            update_ema(G_ema, G, ema_beta(cfg, cur_nimg))
            cur_nimg += cfg.batch_size
            step += 1
            bar.update(min(cfg.batch_size, total_nimg - bar.n))
            now = time.time()
            if cur_nimg - nimg_tick >= 256 or cur_nimg >= total_nimg:
                sec_per_kimg = (now - t_tick) / max(cur_nimg - nimg_tick, 1) * 1000
                t_tick, nimg_tick = now, cur_nimg
            bar.set_postfix_str(f"kimg {cur_nimg / 1000:.2f} s/kimg {sec_per_kimg:.0f} "
                                + " ".join(f"{k} {v:.3f}" for k, v in stats.items()), refresh=False)
            if _hook is not None:
                _hook(step, cur_nimg)
            if cur_nimg >= next_snap or cur_nimg >= total_nimg:
                last_snapshot = save_snapshot()
                next_snap = (cur_nimg // snap_nimg + 1) * snap_nimg
                rec = {"kimg": cur_nimg / 1000, "step": step, "time_s": round(elapsed + now - t_start, 1),
                       "sec_per_kimg": round(sec_per_kimg, 2), **{k: round(v, 5) for k, v in stats.items()},
                       "snapshot": last_snapshot.name}
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
    finally:
        bar.close()
        log_f.close()

    summary = {"run": str(run), "snapshot": str(last_snapshot), "kimg": cur_nimg / 1000, "step": step,
               "wall_time_s": elapsed + (time.time() - t_start), "config": config_dict, "stats": stats}
    if cfg.export:
        export_generator(last_snapshot, cfg.export, kimg=cur_nimg / 1000, training=config_dict,
                         training_wall_time_s=round(summary["wall_time_s"], 1))
        summary["export"] = cfg.export
    return summary


# ---------------------------------------------------------------------------
# Quality of a trained generator
# ---------------------------------------------------------------------------


def evaluate_generator(generator: str | os.PathLike, data: str | os.PathLike, classifier: str | os.PathLike | None = None,
                       clip_eval: str | None = None, n: int = 2000, seed: int = 0, truncation_psi: float = 1.0,
                       progress: bool = True) -> dict[str, Any]:
    """Quality figures of a generator against a CelebA-format dataset.

    With ``classifier``: per rendered attribute, the frequency of (probability > 0.5) on ``n``
    samples next to the attribute's frequency in the training split, and the fraction of
    unambiguous samples (every rendered attribute's probability < 0.2 or > 0.8), with the same
    fraction on the real test images for reference, and per attribute the share of samples it
    leaves ambiguous (probability in [0.2, 0.8]). With ``clip_eval``: the Fréchet distance of
    the samples' CLIP image features to the test images', next to the distance between ``n``
    training images and the test images.
    """
    from dataset.celeba import ATTRIBUTES, CelebADataset
    from model.generator import load_generator, sample_images
    from torch_utils.misc import to_uint8

    G = load_generator(generator)
    # Open the data before sampling, so that a bad folder fails at once.
    train = CelebADataset(data, "train", resolution=G.img_resolution)
    test = CelebADataset(data, "test", resolution=G.img_resolution)
    seeds = list(range(seed, seed + n))
    fakes = torch.from_numpy(to_uint8(sample_images(G, seeds, truncation_psi, progress=progress))).permute(0, 3, 1, 2)
    out: dict[str, Any] = {"generator": str(generator), "n_samples": n, "truncation_psi": truncation_psi}
    if classifier is not None:
        from model.classifier import load_classifier, predict_attributes

        clf = load_classifier(classifier)
        mask = np.asarray(train.attr_mask, dtype=bool) & clf.attr_mask.numpy()
        idx = np.flatnonzero(mask)
        probs = predict_attributes(clf, fakes).numpy()[:, idx]
        train_freq = (np.asarray(train.attrs)[:, idx] > 0).mean(0)
        gen_freq = (probs > 0.5).mean(0)
        test_probs = predict_attributes(clf, test.images_uint8(progress=progress)).numpy()[:, idx]
        # Per attribute, the share of samples whose probability lies in [0.2, 0.8] (what makes a
        # sample ambiguous), on the generated and on the real test images.
        amb_mask = (probs >= 0.2) & (probs <= 0.8)
        test_amb_mask = (test_probs >= 0.2) & (test_probs <= 0.8)
        amb, test_amb = amb_mask.mean(0), test_amb_mask.mean(0)
        per = {ATTRIBUTES[i]: {"train": round(float(t), 4), "generated": round(float(g), 4),
                               "abs_diff": round(float(abs(g - t)), 4), "ambiguous": round(float(a), 4),
                               "ambiguous_real_test": round(float(ta), 4)}
               for i, t, g, a, ta in zip(idx, train_freq, gen_freq, amb, test_amb)}
        diffs = [v["abs_diff"] for v in per.values()]
        out.update(
            attributes=per,
            max_abs_freq_diff=max(diffs),
            attributes_within_0_05=int(sum(d <= 0.05 for d in diffs)),
            n_attributes=len(diffs),
            unambiguous_fraction=round(float(1 - amb_mask.any(1).mean()), 4),
            unambiguous_fraction_real_test=round(float(1 - test_amb_mask.any(1).mean()), 4),
        )
    if clip_eval is not None:
        from model.clip_io import encode_images, load_clip
        from model.metrics import frechet_distance

        model = load_clip(clip_eval)
        test_imgs = test.images_uint8(progress=progress)
        train_imgs = train.images_uint8(progress=progress)
        pick = torch.randperm(len(train_imgs), generator=torch.Generator().manual_seed(seed))[:min(n, len(train_imgs))]
        f_test = encode_images(model, test_imgs, progress=progress)
        f_fake = encode_images(model, fakes, progress=progress)
        f_train = encode_images(model, train_imgs[pick], progress=progress)
        out.update(fd_clip_generated_vs_test=round(frechet_distance(f_fake, f_test), 4),
                   fd_clip_train_vs_test=round(frechet_distance(f_train, f_test), 4),
                   n_test_images=len(test_imgs))
    return out
