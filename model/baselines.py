"""The image baselines: training, loading and sampling of the image CVAE and the conditional GAN.

Training (``train_baseline``) works on an in-memory ``TrainData``: uint8 images,
the 40 attributes, and for CLIP conditioning the cached text embeddings of K
caption wordings per image. At every step each image in the batch gets a fresh
wording (one of its K cached embeddings at random), or its attribute vector.

Sampling, the interface the text-to-face pipelines use for both baselines::

    model = load_baseline("pretrained/cvae.safetensors")
    cond = model.text_condition(clip_model, ["a smiling woman"])   # [P, D]   (clip-conditioned)
    cond = model.attribute_condition([{"Smiling": 1, "Male": -1}])  # [P, 40]  (attr-conditioned)
    images = model.sample(cond, n=8, seed=0)                        # [P * n, 3, 64, 64] in [-1, 1]

A condition of the wrong size, or a text prompt for an attribute-conditioned
checkpoint, is a ``UserError`` that says which conditioning the checkpoint has.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import loss as L
from network.baselines import CondGenerator, ImageCVAE, ProjectionDiscriminator
from torch_utils.misc import UserError, image_grid
from torch_utils.persistence import atomic_torch_save, load_checkpoint, load_training_state, save_checkpoint

KINDS = ("cvae", "gan")
COND_KINDS = ("clip", "attr")
FORMAT = "text2face-baseline-v1"

# Default hyper-parameters, sized for two CPU cores at 64x64.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cvae": {
        "arch": {"z_dim": 64, "ch": 16, "embed_dim": 128},
        "train": {"lr": 1e-3, "batch_size": 64, "sigma": 0.1, "kl_weight": 1.0, "kl_warmup": 300, "flip": True},
    },
    "gan": {
        "arch": {"z_dim": 64, "ch": 32, "embed_dim": 128},
        "train": {"lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9], "batch_size": 64, "loss": "hinge", "r1_gamma": 0.0,
                  "mismatch_weight": 0.5, "ema_beta": 0.999, "flip": True},
    },
}


class TrainingDiverged(UserError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainData:
    """What the training loops need, in memory.

    images: uint8 [N, 3, R, R]; attrs: [N, 40] of +-1; text_emb: [N, K, D] (K caption
    wordings per image; needed for CLIP conditioning); captions: optional [N][K] strings
    (grid labels); attr_names: the 40 attribute names.
    """

    images: torch.Tensor
    attrs: torch.Tensor
    text_emb: torch.Tensor | None = None
    captions: Sequence[Sequence[str]] | None = None
    attr_names: Sequence[str] = field(default_factory=list)
    source: str = ""
    clip_identity: str | None = None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[1] != 3 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N, 3, R, R], got {self.images.dtype} {list(self.images.shape)}")
        if self.attrs.shape[0] != self.images.shape[0]:
            raise ValueError("images and attrs differ in length")
        if self.text_emb is not None and (self.text_emb.ndim != 3 or self.text_emb.shape[0] != self.images.shape[0]):
            raise ValueError(f"text_emb must be [N, K, D] with N = {self.images.shape[0]}, got {list(self.text_emb.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def cond_dim(self, cond: str) -> int:
        if cond == "attr":
            return int(self.attrs.shape[1])
        if self.text_emb is None:
            raise UserError("CLIP conditioning needs the text embeddings of the captions (pass --clip)")
        return int(self.text_emb.shape[2])

    def conditions(self, idx: torch.Tensor, cond: str, gen: torch.Generator | None, wording: int | None = None) -> torch.Tensor:
        """Conditions for images ``idx``: a random (or the given) caption wording, or the attributes."""
        if cond == "attr":
            return self.attrs[idx].float()
        K = self.text_emb.shape[1]
        k = torch.randint(K, (len(idx),), generator=gen) if wording is None else torch.full((len(idx),), wording)
        return self.text_emb[idx, k].float()

    def label(self, i: int, cond: str) -> str:
        if cond == "clip" and self.captions is not None:
            return str(self.captions[i][0])
        names = self.attr_names or [f"a{j}" for j in range(self.attrs.shape[1])]
        on = [names[j] for j in range(self.attrs.shape[1]) if self.attrs[i, j] > 0]
        return ", ".join(on) if on else "(no attributes)"


# ---------------------------------------------------------------------------
# Building networks
# ---------------------------------------------------------------------------


def build_networks(kind: str, cond: str, cond_dim: int, arch: dict[str, Any], resolution: int = 64) -> dict[str, torch.nn.Module]:
    if kind == "cvae":
        return {"vae": ImageCVAE(cond_dim, cond, resolution=resolution, **arch)}
    if kind == "gan":
        g = CondGenerator(cond_dim, cond, resolution=resolution, **arch)
        d = ProjectionDiscriminator(cond_dim, cond, ch=arch.get("ch", 32), embed_dim=arch.get("embed_dim", 128), resolution=resolution)
        g_ema = copy.deepcopy(g).eval().requires_grad_(False)
        return {"G": g, "D": d, "G_ema": g_ema}
    raise UserError(f"unknown baseline '{kind}'; choices: {', '.join(KINDS)}")


def _sampler(kind: str, nets: dict[str, torch.nn.Module]) -> torch.nn.Module:
    return nets["vae"] if kind == "cvae" else nets["G_ema"]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _augment(x: torch.Tensor, flip: bool, gen: torch.Generator) -> torch.Tensor:
    if flip:
        m = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x


def _to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1.0


def _finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _nets_finite(nets: dict[str, torch.nn.Module]) -> bool:
    return all(bool(torch.isfinite(p).all()) for m in nets.values() for p in m.state_dict().values() if p.is_floating_point())


@torch.no_grad()
def _grid(kind: str, nets, data: TrainData, cond: str, fixed_idx: torch.Tensor, fixed_z: torch.Tensor, path: Path) -> None:
    net = _sampler(kind, nets)
    was_training = net.training
    net.eval()
    dev = next(net.parameters()).device
    c = data.conditions(fixed_idx, cond, None, wording=0).to(dev)
    fixed_z = fixed_z.to(dev)
    rows = []
    for j in range(len(fixed_idx)):
        cj = c[j : j + 1].expand(fixed_z.shape[0], -1)
        imgs = net.decode(fixed_z, cj) if kind == "cvae" else net(fixed_z, cj)
        real = _to_float(data.images[fixed_idx[j] : fixed_idx[j] + 1])
        rows.append(torch.cat([real, imgs.cpu()]))
    net.train(was_training)
    labels = [data.label(int(i), cond) for i in fixed_idx]
    image_grid(torch.cat(rows), ncols=fixed_z.shape[0] + 1, row_labels=labels, cell_scale=1).save(path)


def _checkpoint_config(kind, cond, cond_dim, arch, train_cfg, data: TrainData, step, resolution, extra) -> dict[str, Any]:
    majority = (data.attrs.float().mean(0) >= 0).float() * 2 - 1
    cfg = {
        "format": FORMAT,
        "kind": kind,
        "cond": cond,
        "cond_dim": cond_dim,
        "resolution": resolution,
        "arch": arch,
        "train": train_cfg,
        "step": step,
        "dataset": data.source,
        "clip_identity": data.clip_identity if cond == "clip" else None,
        "attr_names": list(data.attr_names),
        "attr_default": majority.tolist(),
    }
    cfg.update(extra)
    return cfg


def _save_model(path: Path, kind: str, nets, cfg: dict[str, Any]) -> None:
    net = _sampler(kind, nets)
    save_checkpoint(path, net.state_dict(), cfg)


def train_baseline(
    kind: str,
    data: TrainData,
    cond: str,
    out: str | os.PathLike,
    run_dir: str | os.PathLike,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    resume: bool = False,
    snap_every: int = 500,
    grid_every: int = 500,
    arch: dict[str, Any] | None = None,
    train_cfg: dict[str, Any] | None = None,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    device: str | torch.device = "cpu",
    init_from: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train the image CVAE (``kind='cvae'``) or the conditional GAN (``'gan'``) for ``steps`` steps in total.

    Writes ``out`` (the sampling checkpoint, atomically, every ``snap_every`` steps and at the
    end), ``run_dir/state.pt`` (everything ``resume`` needs) and ``run_dir/grid_XXXXXX.png``
    (fixed conditions, one row each: the real image, then samples). Returns a summary with the
    final losses, the steps run and wall time. Raises ``TrainingDiverged`` on a NaN/inf loss.
    ``max_seconds`` stops early (with a checkpoint) once that much training time has passed.
    ``init_from``: a training state (``RUN/state.pt``) of the same kind whose weights start this run,
    except tensors whose shape differs (the condition's input layer when the conditioning changes,
    e.g. attributes -> CLIP text); optimizers start fresh.
    """
    device = torch.device(device)
    if kind not in KINDS:
        raise UserError(f"unknown baseline '{kind}'; choices: {', '.join(KINDS)}")
    if cond not in COND_KINDS:
        raise UserError(f"--cond must be one of {', '.join(COND_KINDS)}, got '{cond}'")
    if steps < 1:
        raise UserError("--steps must be at least 1")
    out, run_dir = Path(out), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"
    resolution = int(data.images.shape[-1])
    cond_dim = data.cond_dim(cond)

    arch = {**DEFAULTS[kind]["arch"], **(arch or {})}
    tcfg = {**DEFAULTS[kind]["train"], **(train_cfg or {})}
    if batch_size is not None:
        tcfg["batch_size"] = int(batch_size)
    tcfg["seed"] = int(seed)
    bs = min(int(tcfg["batch_size"]), len(data))
    if bs < 2:
        raise UserError(f"{data.source or 'dataset'}: need at least 2 images to train, got {len(data)}")

    torch.manual_seed(seed)
    nets = {k: m.to(device) for k, m in build_networks(kind, cond, cond_dim, arch, resolution).items()}
    if kind == "cvae":
        opts = {"vae": torch.optim.Adam(nets["vae"].parameters(), lr=tcfg["lr"])}
    else:
        betas = tuple(tcfg["betas"])
        opts = {"G": torch.optim.Adam(nets["G"].parameters(), lr=tcfg["lr_g"], betas=betas),
                "D": torch.optim.Adam(nets["D"].parameters(), lr=tcfg["lr_d"], betas=betas)}
    gen = torch.Generator().manual_seed(seed)
    step, elapsed_before = 0, 0.0
    history: list[dict[str, float]] = []

    if resume:
        if not state_path.is_file():
            raise UserError(f"--resume: no training state at {state_path}")
        st = load_training_state(state_path)
        if st.get("kind") != kind or st.get("cond") != cond or st.get("cond_dim") != cond_dim:
            raise UserError(
                f"--resume: {state_path} is a {st.get('kind')} run with --cond {st.get('cond')} (dim {st.get('cond_dim')}), "
                f"not {kind} with --cond {cond} (dim {cond_dim})"
            )
        arch, tcfg = st["arch"], st["train"]
        bs = min(int(tcfg["batch_size"]), len(data))
        nets = build_networks(kind, cond, cond_dim, arch, resolution)
        for k, m in nets.items():
            m.load_state_dict(st["nets"][k])
            m.to(device)
        if kind == "cvae":
            opts = {"vae": torch.optim.Adam(nets["vae"].parameters(), lr=tcfg["lr"])}
        else:
            betas = tuple(tcfg["betas"])
            opts = {"G": torch.optim.Adam(nets["G"].parameters(), lr=tcfg["lr_g"], betas=betas),
                    "D": torch.optim.Adam(nets["D"].parameters(), lr=tcfg["lr_d"], betas=betas)}
        for k, o in opts.items():
            o.load_state_dict(st["opts"][k])
        gen.set_state(st["gen_state"])
        torch.set_rng_state(st["torch_state"])
        step, elapsed_before = int(st["step"]), float(st.get("elapsed", 0.0))
        history = list(st.get("history", []))

    elif init_from is not None:
        st = load_training_state(init_from)
        if st.get("kind") != kind or "nets" not in st:
            raise UserError(f"--init-from {init_from}: not a training state of a '{kind}' run")
        if st["arch"] != arch:
            raise UserError(f"--init-from {init_from}: architecture {st['arch']} differs from this run's {arch}")
        skipped = []
        for k, m in nets.items():
            own = m.state_dict()
            src = {n: v for n, v in st["nets"][k].items() if n in own and own[n].shape == v.shape}
            skipped += [f"{k}.{n}" for n in own if n not in src]
            own.update(src)
            m.load_state_dict(own)
        tcfg["init_from"] = {"path": str(init_from), "step": int(st["step"]), "cond": st.get("cond"), "not_loaded": skipped}

    # Fixed conditions and latents for the progress grids.
    fgen = torch.Generator().manual_seed(12345)
    fixed_idx = torch.randperm(len(data), generator=fgen)[: min(8, len(data))]
    fixed_z = torch.randn(8, arch["z_dim"], generator=fgen)
    extra = dict(extra_config or {})

    def snapshot(at_step: int, elapsed: float) -> None:
        if not _nets_finite(nets):
            raise TrainingDiverged(f"weights became non-finite at step {at_step}; last good checkpoint kept at {out}")
        cfg = _checkpoint_config(kind, cond, cond_dim, arch, tcfg, data, at_step, resolution, extra)
        cfg["train_seconds"] = round(elapsed, 1)
        _save_model(out, kind, nets, cfg)
        atomic_torch_save({
            "kind": kind, "cond": cond, "cond_dim": cond_dim, "arch": arch, "train": tcfg, "step": at_step,
            "elapsed": elapsed, "history": history,
            "nets": {k: m.state_dict() for k, m in nets.items()},
            "opts": {k: o.state_dict() for k, o in opts.items()},
            "gen_state": gen.get_state(), "torch_state": torch.get_rng_state(),
        }, state_path)

    for m in nets.values():
        m.train()
    if kind == "gan":
        nets["G_ema"].eval()
    from tqdm import tqdm

    t_start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(total=steps, initial=step, desc=f"train {kind}", unit="step", disable=not progress, dynamic_ncols=True)
    last: dict[str, float] = {}
    ema_losses: dict[str, float] = {}
    stopped_early = False
    while step < steps:
        idx = torch.randint(len(data), (bs,), generator=gen)
        x = _augment(_to_float(data.images[idx]), tcfg.get("flip", True), gen).to(device)
        c = data.conditions(idx, cond, gen).to(device)
        if kind == "cvae":
            vae = nets["vae"]
            recon, mu, logvar = vae(x, c)
            beta = tcfg["kl_weight"] * L.kl_warmup(step, int(tcfg["kl_warmup"]))
            terms = L.image_elbo(recon, x, mu, logvar, kl_weight=beta, sigma=tcfg["sigma"])
            if not _finite(terms["loss"]):
                bar.close()
                raise TrainingDiverged(f"loss became {terms['loss'].item()} at step {step}; last good checkpoint kept at {out}")
            opts["vae"].zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1e4)
            opts["vae"].step()
            # Report per-image nats of the full ELBO (beta = 1) so values compare across warm-up.
            last = {"loss": (terms["recon"] + terms["kl"]).item(), "recon": terms["recon"].item(), "kl": terms["kl"].item()}
        else:
            G, D, G_ema = nets["G"], nets["D"], nets["G_ema"]
            z = torch.randn(bs, arch["z_dim"], generator=gen).to(device)
            # Discriminator step.
            with torch.no_grad():
                fake = G(z, c)
            x_in = x.detach().requires_grad_(tcfg["r1_gamma"] > 0)
            d_real = D(x_in, c)
            d_fake = D(fake, c)
            d_loss = L.gan_d_loss(d_real, d_fake, tcfg["loss"])
            if tcfg["mismatch_weight"] > 0:
                # Real image with another image's condition counts as fake (matching-aware D).
                perm = torch.roll(torch.arange(bs, device=device), 1)
                d_mis = D(x, c[perm])
                mis = F.relu(1 + d_mis).mean() if tcfg["loss"] == "hinge" else F.softplus(d_mis).mean()
                d_loss = d_loss + tcfg["mismatch_weight"] * mis
            if tcfg["r1_gamma"] > 0:
                d_loss = d_loss + 0.5 * tcfg["r1_gamma"] * L.r1_penalty(d_real, x_in)
            if not _finite(d_loss):
                bar.close()
                raise TrainingDiverged(f"discriminator loss became {d_loss.item()} at step {step}; last good checkpoint kept at {out}")
            opts["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["D"].step()
            # Generator step.
            z = torch.randn(bs, arch["z_dim"], generator=gen).to(device)
            g_loss = L.gan_g_loss(D(G(z, c), c), tcfg["loss"])
            if not _finite(g_loss):
                bar.close()
                raise TrainingDiverged(f"generator loss became {g_loss.item()} at step {step}; last good checkpoint kept at {out}")
            opts["G"].zero_grad(set_to_none=True)
            g_loss.backward()
            opts["G"].step()
            # EMA of the generator (with a short ramp so early snapshots are not just the init).
            with torch.no_grad():
                beta = min(tcfg["ema_beta"], (1 + step) / (10 + step))
                for pe, p in zip(G_ema.parameters(), G.parameters()):
                    pe.lerp_(p, 1 - beta)
                for be, b in zip(G_ema.buffers(), G.buffers()):
                    be.copy_(b)
            last = {"d": d_loss.item(), "g": g_loss.item(), "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}
        step += 1
        for k, v in last.items():
            ema_losses[k] = v if k not in ema_losses else 0.95 * ema_losses[k] + 0.05 * v
        if step == 1 or step % 50 == 0 or step == steps:
            history.append({"step": step, **{k: round(v, 4) for k, v in ema_losses.items()}})
        bar.set_postfix({k: f"{v:.3g}" for k, v in ema_losses.items()}, refresh=False)
        bar.update(1)
        elapsed = elapsed_before + time.perf_counter() - t_start
        if max_seconds is not None and elapsed >= max_seconds and step < steps:
            stopped_early = True
        if step % grid_every == 0 or step == steps or stopped_early:
            _grid(kind, nets, data, cond, fixed_idx, fixed_z, run_dir / f"grid_{step:06d}.png")
        if step % snap_every == 0 or step == steps or stopped_early:
            snapshot(step, elapsed)
        if stopped_early:
            break
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - t_start
    return {"kind": kind, "cond": cond, "steps": step, "seconds": round(elapsed, 1),
            "cpu_seconds_this_run": round(time.process_time() - cpu_start, 1), "final": ema_losses,
            "history": history, "out": str(out), "stopped_early": stopped_early}


def load_train_data(data_dir: str | os.PathLike, cond: str, clip: str | None = None, split: str = "train",
                    resolution: int = 64, progress: bool = True, max_images: int | None = None,
                    captions_per_image: int = 4) -> TrainData:
    """Images (in memory, uint8), attributes and, for ``cond='clip'``, the cached caption embeddings.

    Missing embedding caches are computed with ``dataset.embeddings`` (as ``data embed`` does).
    ``max_images`` keeps the first N images of the split; their caption embeddings (the same
    seeded captions the cache holds) are then computed directly instead of caching the whole split."""
    from dataset.celeba import ATTRIBUTES, CelebADataset

    if cond not in COND_KINDS:
        raise UserError(f"--cond must be one of {', '.join(COND_KINDS)}, got '{cond}'")
    ds = CelebADataset(data_dir, split=split, resolution=resolution)
    if len(ds) < 2:
        raise UserError(f"{data_dir}: split '{split}' has {len(ds)} image(s); need at least 2")
    images = ds.images_uint8(progress=progress)
    attrs = torch.from_numpy(np.asarray(ds.attrs, dtype=np.int8))
    text, caps, ident = None, None, None
    if cond == "clip" and clip is None:
        raise UserError("--cond clip needs --clip (a CLIP model name or file)")
    if max_images is not None and max_images < len(ds):
        if max_images < 2:
            raise UserError("--max-images must be at least 2")
        m = int(max_images)
        images, attrs = images[:m].clone(), attrs[:m].clone()
        if cond == "clip":
            from dataset.captions import captions as make_captions
            from model.clip_io import clip_identity, encode_text, load_clip

            caps = make_captions(ds.attrs[:m], seed=0, n_per_image=captions_per_image, mask=ds.attr_mask, indices=ds.indices[:m])
            flat = [c for cs in caps for c in cs]
            text = encode_text(load_clip(clip), flat, truncate=True, progress=progress).view(m, captions_per_image, -1)
            ident = clip_identity(clip)
        return TrainData(images, attrs, text, captions=caps, attr_names=list(ATTRIBUTES),
                         source=f"{data_dir}:{split}[:{m}]", clip_identity=ident)
    if cond == "clip":
        from dataset.embeddings import load_embeddings

        emb = load_embeddings(data_dir, clip, split=split, resolution=resolution, progress=progress)
        if list(emb.filenames) != list(ds.filenames):
            raise UserError(f"{data_dir}: the embedding cache for '{clip}' does not cover the images of split '{split}'; rerun `data embed`")
        text, caps, ident = emb.text.float(), emb.captions, emb.identity
    return TrainData(images, attrs, text, captions=caps, attr_names=list(ATTRIBUTES),
                     source=f"{data_dir}:{split}", clip_identity=ident)


def run_training(kind: str, data_dir: str, cond: str, clip: str | None, out: str, run_dir: str | None = None,
                 steps: int = 4000, batch_size: int | None = None, seed: int = 0, resume: bool = False,
                 threads: int | None = None, device: str = "cpu", max_minutes: float | None = None,
                 snap_every: int = 500, arch: dict[str, Any] | None = None, train_cfg: dict[str, Any] | None = None,
                 init_from: str | None = None, max_images: int | None = None) -> dict[str, Any]:
    """What ``train cvae`` / ``train gan`` do: load the data, train, return a summary."""
    if threads is not None:
        if threads < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(threads)
    if run_dir is None:
        run_dir = str(Path("runs") / f"train-{kind}-{Path(out).stem}")
    data = load_train_data(data_dir, cond, clip, max_images=max_images)
    extra = {"clip": str(clip) if cond == "clip" else None}
    s = train_baseline(kind, data, cond, out, run_dir, steps=steps, batch_size=batch_size, seed=seed, resume=resume,
                       snap_every=snap_every, grid_every=snap_every, arch=arch, train_cfg=train_cfg, extra_config=extra,
                       max_seconds=None if max_minutes is None else 60.0 * max_minutes, device=device, init_from=init_from)
    s["run_dir"] = str(run_dir)
    s["train_images"] = len(data)
    s["threads"] = torch.get_num_threads()
    return s


# ---------------------------------------------------------------------------
# Loading and sampling
# ---------------------------------------------------------------------------


class Baseline:
    """A loaded image baseline (CVAE or GAN) with one sampling interface."""

    def __init__(self, net: torch.nn.Module, config: dict[str, Any], path: str = ""):
        self.net = net.eval()
        self.config = config
        self.path = path
        self.kind: str = config["kind"]
        self.cond: str = config["cond"]
        self.cond_dim: int = int(config["cond_dim"])
        self.resolution: int = int(config["resolution"])
        self.clip_identity: str | None = config.get("clip_identity")
        self.attr_names: list[str] = list(config.get("attr_names") or [])

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device) -> "Baseline":
        self.net.to(device)
        return self

    def describe_conditioning(self) -> str:
        if self.cond == "attr":
            return f"the {self.cond_dim} CelebA attributes (--cond attr)"
        return f"{self.cond_dim}-dim CLIP text embeddings (--cond clip)"

    def check_condition(self, cond: torch.Tensor) -> torch.Tensor:
        cond = torch.as_tensor(cond)
        if cond.ndim == 1:
            cond = cond[None]
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            got = list(cond.shape)
            hint = ""
            if self.cond == "attr" and cond.ndim == 2 and cond.shape[1] != self.cond_dim:
                hint = " (a CLIP embedding? this checkpoint takes attribute vectors, not text)"
            raise UserError(
                f"{self.kind} checkpoint {self.path or ''} is conditioned on {self.describe_conditioning()}; "
                f"got a condition of shape {got}, expected [P, {self.cond_dim}]{hint}"
            )
        if not torch.isfinite(cond).all():
            raise UserError("condition contains NaN/inf")
        return cond.float()

    def text_condition(self, clip_model: torch.nn.Module, prompts: Sequence[str], clip_identity: str | None = None) -> torch.Tensor:
        """CLIP text embeddings [P, D] of ``prompts``; a UserError for attribute-conditioned checkpoints."""
        if self.cond != "clip":
            raise UserError(
                f"{self.kind} checkpoint {self.path} is conditioned on {self.describe_conditioning()}, not on text; "
                f"give attribute vectors (prompt files with 'attributes') or use a checkpoint trained with --cond clip"
            )
        if clip_identity is not None and self.clip_identity is not None and clip_identity != self.clip_identity:
            raise UserError(
                f"{self.kind} checkpoint {self.path} was trained with CLIP '{self.clip_identity}', "
                f"but the given CLIP is '{clip_identity}'; pass the CLIP it was trained with (--clip)"
            )
        from model.clip_io import encode_text

        e = encode_text(clip_model, list(prompts))
        return self.check_condition(e)

    def attribute_condition(self, attributes: Sequence[dict[str, int]]) -> torch.Tensor:
        """+-1 attribute vectors [P, 40] from dicts like ``{"Smiling": 1, "Male": -1}``.

        Attributes not named take the training set's majority value."""
        if self.cond != "attr":
            raise UserError(
                f"{self.kind} checkpoint {self.path} is conditioned on {self.describe_conditioning()}, not on attribute vectors; "
                f"give text prompts"
            )
        names = self.attr_names
        default = torch.tensor(self.config.get("attr_default") or [-1.0] * self.cond_dim)
        out = default[None].repeat(len(attributes), 1)
        for i, d in enumerate(attributes):
            for k, v in d.items():
                if k not in names:
                    raise UserError(f"unknown attribute '{k}'; CelebA attribute names are e.g. {', '.join(names[:5])}, ...")
                if v not in (1, -1):
                    raise UserError(f"attribute '{k}': value must be 1 or -1, got {v!r}")
                out[i, names.index(k)] = float(v)
        return out

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, n: int, seed: int = 0, batch_size: int = 256, temperature: float = 1.0) -> torch.Tensor:
        """``n`` images per condition: [P * n, 3, R, R] in [-1, 1], prompt-major.

        Image i of every condition uses the same latent (seeded by ``seed``)."""
        cond = self.check_condition(cond).to(self.device)
        if n < 1:
            raise UserError("-n must be at least 1")
        z = torch.randn(n, self.net.z_dim, generator=torch.Generator().manual_seed(int(seed))) * temperature
        z = z.to(self.device).repeat(cond.shape[0], 1)
        c = cond.repeat_interleave(n, dim=0)
        out = []
        for i in range(0, len(z), batch_size):
            zi, ci = z[i : i + batch_size], c[i : i + batch_size]
            out.append(self.net.decode(zi, ci) if self.kind == "cvae" else self.net(zi, ci))
        return torch.cat(out).float().clamp(-1, 1)


def load_baseline(path: str | os.PathLike, device: str | torch.device = "cpu", expect_kind: str | None = None) -> Baseline:
    """Load a checkpoint written by ``train cvae`` / ``train gan``."""
    state, cfg = load_checkpoint(path, device="cpu")
    if cfg.get("format") != FORMAT or cfg.get("kind") not in KINDS:
        raise UserError(f"{path}: not an image-baseline checkpoint (format {cfg.get('format')!r}, kind {cfg.get('kind')!r})")
    if expect_kind is not None and cfg["kind"] != expect_kind:
        raise UserError(f"{path}: is a '{cfg['kind']}' checkpoint, expected '{expect_kind}'")
    nets = build_networks(cfg["kind"], cfg["cond"], int(cfg["cond_dim"]), cfg["arch"], int(cfg["resolution"]))
    net = _sampler(cfg["kind"], nets)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match the recorded architecture ({str(e).splitlines()[0]})") from None
    return Baseline(net, cfg, str(path)).to(device)


def read_prompt_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Lines of a prompts file: ``{"prompt": ..., "attributes": {name: +-1}}``."""
    import json

    rows = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read prompts file ({e.strerror})") from None
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{path}:{i}: not a JSON object") from None
    return rows


@torch.no_grad()
def steering_accuracy(model: Baseline, classifier, prompts: Sequence[dict[str, Any]], n: int = 8, seed: int = 0,
                      clip_model: torch.nn.Module | None = None) -> dict[str, Any]:
    """How often the attribute classifier finds the prompted attributes in the samples.

    ``accuracy``: samples of prompt p scored against p's attributes. ``chance``: the same
    samples scored against the attributes of another prompt (p + 1), i.e. what an image that
    ignores its prompt scores on this prompt file.
    """
    from model.classifier import predict_attributes
    from model.metrics import attribute_accuracy

    if model.cond == "attr":
        cond = model.attribute_condition([p["attributes"] for p in prompts])
    else:
        cond = model.text_condition(clip_model, [p["prompt"] for p in prompts])
    imgs = model.sample(cond, n, seed=seed)
    probs = predict_attributes(classifier, imgs)
    names = classifier.attr_names
    own = [p["attributes"] for p in prompts for _ in range(n)]
    other = [prompts[(i + 1) % len(prompts)]["attributes"] for i in range(len(prompts)) for _ in range(n)]
    a = attribute_accuracy(probs, own, names, mask=classifier.attr_mask)
    b = attribute_accuracy(probs, other, names, mask=classifier.attr_mask)
    return {"accuracy": a["accuracy"], "chance": b["accuracy"], "per_attribute": a["per_attribute"],
            "scored": a["scored"], "n_prompts": len(prompts), "n_per_prompt": n}
