"""Mappers p(w | e): training, checkpoints, loading, and the sampling API the pipelines use.

Two kinds, both trained text-free on (w, e_image) pairs from ``python main.py pairs``:

- ``flow``: :class:`network.flow.ConditionalFlow`, trained by exact maximum likelihood;
- ``cvae-mapper``: :class:`network.cvae_mapper.CVAEMapper` (the paper's), trained on the ELBO.

Sampling API (what a text-to-face pipeline calls)::

    mapper = load_mapper("flow.safetensors")              # either kind
    check_mapper(mapper, e_dim=clip_embed_dim, w_dim=G.w_dim, path="flow.safetensors")
    e = encode_text(clip_model, prompts)                   # [P, e_dim], L2-normalised
    e = modality_shift(e, text_mean, mapper.e_image_mean)  # optional (variant c)
    w = mapper.sample(e, n, temperature)                   # [P * n, w_dim]; rows p*n..p*n+n-1 are prompt p
    img = G.synthesis(broadcast_w(w, G.num_ws), noise_mode="const")  # [P * n, 3, H, W]

``mapper.sample(e, n, temperature=1.0, generator=None)`` has the same contract for both
kinds: embeddings are L2-normalised inside, the base noise (flow) or the latent u (CVAE) is
``temperature * N(0, I)``, and one w per sample is returned (the generator's mapping output
is the same for all its layers, so ``broadcast_w`` repeats it ``num_ws`` times).

Modality gap (options, measured elsewhere):
(a) none; (b) ``--noise-scale s`` at training: ``e <- normalize(e + s * N(0, I) / sqrt(D))``,
so the perturbation has norm about ``s``; (c) at inference, ``modality_shift`` moves text
embeddings by (mean image embedding of the training pairs, stored in every mapper
checkpoint as ``e_image_mean``) - (mean text embedding over a caption set), then re-normalises.

Checkpoints are project checkpoints (safetensors + JSON config, see
``torch_utils.persistence``); the config holds ``kind``, ``arch`` (the constructor
arguments), ``w_dim``, ``e_dim``, the CLIP and generator identities of the pairs, the
training hyper-parameters, the step and the validation figures. The standardisation of w
(``w_mean``, ``w_std``) and ``e_image_mean`` are tensors in the checkpoint. Training state
for ``--resume`` sits beside the checkpoint as ``OUT.state``.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

import loss as losses
from dataset.pairs import LatentPairs
from network.cvae_mapper import CVAEMapper
from network.flow import ConditionalFlow
from torch_utils.misc import UserError, seed_everything
from torch_utils.persistence import (
    atomic_torch_save,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
)

KINDS: dict[str, type] = {"flow": ConditionalFlow, "cvae-mapper": CVAEMapper}
FORMAT = "text2face-mapper-v1"


# ---------------------------------------------------------------------------
# Sampling helpers used by the pipelines
# ---------------------------------------------------------------------------


def broadcast_w(w: torch.Tensor, num_ws: int) -> torch.Tensor:
    """[N, w_dim] -> [N, num_ws, w_dim], the input of ``G.synthesis``."""
    return w.unsqueeze(1).repeat(1, int(num_ws), 1)


def augment_embeddings(e: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Modality-gap option (b): ``normalize(e + scale * N(0, I) / sqrt(D))`` (identity for scale 0)."""
    e = F.normalize(e, dim=-1)
    if scale <= 0:
        return e
    noise = torch.randn(e.shape, generator=generator, device=e.device, dtype=e.dtype)
    return F.normalize(e + noise * (scale / math.sqrt(e.shape[-1])), dim=-1)


def modality_shift(e_text: torch.Tensor, text_mean: torch.Tensor, image_mean: torch.Tensor) -> torch.Tensor:
    """Modality-gap option (c): ``normalize(normalize(e_text) - text_mean + image_mean)``.

    ``text_mean``: mean of L2-normalised text embeddings over a caption set;
    ``image_mean``: ``mapper.e_image_mean`` (mean image embedding of the training pairs).
    """
    e = F.normalize(e_text, dim=-1)
    return F.normalize(e - text_mean.to(e) + image_mean.to(e), dim=-1)


# ---------------------------------------------------------------------------
# Loading and checking
# ---------------------------------------------------------------------------


def build_mapper(kind: str, arch: dict[str, Any]) -> torch.nn.Module:
    if kind not in KINDS:
        raise UserError(f"unknown mapper kind '{kind}'; choices: {', '.join(KINDS)}")
    return KINDS[kind](**arch)


def load_mapper(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a mapper (either kind) from a project checkpoint, in eval mode.

    The checkpoint config is kept as ``mapper.checkpoint_config``.
    """
    state, config = load_checkpoint(path, device=device)
    if config.get("format") != FORMAT or config.get("kind") not in KINDS:
        raise UserError(f"{path}: not a mapper checkpoint (kind {config.get('kind')!r}; expected one of {', '.join(KINDS)})")
    try:
        mapper = build_mapper(config["kind"], config["arch"])
        mapper.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as e:
        raise UserError(f"{path}: mapper checkpoint does not match its config ({str(e).splitlines()[0]})") from None
    mapper.checkpoint_config = config
    return mapper.to(device).eval()


def check_mapper(
    mapper: torch.nn.Module,
    e_dim: int | None = None,
    w_dim: int | None = None,
    path: str | os.PathLike | None = None,
    clip_id: str | None = None,
) -> None:
    """Raise a one-line UserError when the mapper does not fit the CLIP model or the generator.

    ``e_dim``: the CLIP model's embedding size (``clip_model.text_projection.shape[1]``);
    ``w_dim``: ``G.w_dim``. ``clip_id`` (optional) is compared with the identity of the CLIP
    the pairs were embedded with; a mismatch of equal sizes only warns.
    """
    name = str(path) if path is not None else f"{getattr(mapper, 'kind', 'mapper')} mapper"
    if e_dim is not None and int(e_dim) != mapper.e_dim:
        raise UserError(
            f"{name}: mapper expects CLIP embeddings of size {mapper.e_dim} but the CLIP model gives {e_dim}; use the CLIP it was trained with"
        )
    if w_dim is not None and int(w_dim) != mapper.w_dim:
        raise UserError(
            f"{name}: mapper produces w of size {mapper.w_dim} but the generator's w_dim is {w_dim}; use the generator it was trained with"
        )
    trained_clip = getattr(mapper, "checkpoint_config", {}).get("clip")
    if clip_id is not None and trained_clip and trained_clip != clip_id:
        import warnings

        warnings.warn(f"{name}: trained with CLIP {trained_clip}, used with {clip_id}")


def check_mapper_fits(mapper: torch.nn.Module, clip_model=None, G=None, path=None) -> None:
    """``check_mapper`` with the sizes read from a loaded CLIP model and generator."""
    e_dim = int(clip_model.text_projection.shape[1]) if clip_model is not None else None
    w_dim = int(G.w_dim) if G is not None else None
    check_mapper(mapper, e_dim=e_dim, w_dim=w_dim, path=path)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

DEFAULTS: dict[str, dict[str, Any]] = {
    "flow": {"lr": 1e-3, "batch_size": 256},
    "cvae-mapper": {"lr": 1e-3, "batch_size": 256},
}


def state_path(out: str | os.PathLike) -> Path:
    """Training state of checkpoint ``out``: ``OUT.state`` beside it."""
    return Path(str(out) + ".state")


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _batch_loss(kind: str, mapper, w, e, kl_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    if kind == "flow":
        nll = losses.flow_nll(mapper, w, e)
        return nll, {"nll": float(nll.detach())}
    out = mapper(w, e)
    terms = losses.elbo(out["recon"], out["target"], out["mu"], out["logvar"], kl_weight=kl_weight)
    return terms["loss"], {"loss": float(terms["loss"].detach()), "kl": float(terms["kl"].detach())}


def _display_offset(kind: str, mapper) -> float:
    """Added to the CVAE's training loss (standardised w) so the bar shows nats of w, like validation."""
    return 0.0 if kind == "flow" else float(torch.log(mapper.w_std).sum())


@torch.no_grad()
def evaluate(kind: str, mapper, w: torch.Tensor, e: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """Validation figures in nats per sample of w (flow: exact NLL; CVAE: negative ELBO, KL weight 1)."""
    was = mapper.training
    mapper.eval()
    total, n = 0.0, 0
    kl_total = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i in range(0, len(w), batch_size):
            wb, eb = w[i : i + batch_size], e[i : i + batch_size]
            if kind == "flow":
                v = -mapper.log_prob(wb, eb)
                total += float(v.sum())
            else:
                out = mapper(wb, eb)
                t = losses.elbo(out["recon"], out["target"], out["mu"], out["logvar"], kl_weight=1.0)
                # standardised-space bound -> bound on -log p(w): add sum(log std)
                total += float(t["loss"]) * len(wb) + float(torch.log(mapper.w_std).sum()) * len(wb)
                kl_total += float(t["kl"]) * len(wb)
            n += len(wb)
    mapper.train(was)
    key = "nll" if kind == "flow" else "nelbo"
    res = {key: total / max(n, 1), key + "_per_dim": total / max(n, 1) / mapper.w_dim}
    if kind != "flow":
        res["kl"] = kl_total / max(n, 1)
    return res


def manifest_fields(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, extra fields) of the bundled-models manifest entry for a trained mapper."""
    _, cfg = load_checkpoint(summary["out"])
    metrics = {
        "val": summary["val"],
        "steps": summary["step"],
        "training_wall_time_s": round(float(summary["seconds"]), 1),
        "steps_per_s": round(float(summary["steps_per_s"]), 3),
        "threads": torch.get_num_threads(),
    }
    pairs_meta = {}
    try:
        pairs_meta = LatentPairs(cfg["pairs"]).meta
    except Exception:  # noqa: BLE001 - the pairs folder may be gone; the checkpoint still says what it knows
        pass
    pairs = {k: pairs_meta.get(k) for k in ("generator", "clip", "seed", "count", "shard_size") if k in pairs_meta}
    extra = {"kind": cfg["kind"], "arch": cfg["arch"], "train": cfg["train"], "inference": cfg.get("inference", {}),
             "pairs": dict(pairs, n_train=cfg.get("n_train"), n_val=cfg.get("n_val"))}
    return metrics, extra


def _finite_params(mapper) -> bool:
    return all(torch.isfinite(p).all() for p in mapper.parameters())


def train_mapper(
    kind: str,
    pairs: str | os.PathLike,
    out: str | os.PathLike,
    steps: int = 5000,
    batch_size: int | None = None,
    lr: float | None = None,
    noise_scale: float = 0.0,
    kl_weight: float = 1.0,
    kl_warmup: int = 500,
    seed: int = 0,
    resume: bool = False,
    arch: dict[str, Any] | None = None,
    val_fraction: float = 0.05,
    eval_every: int = 500,
    ckpt_every: int | None = None,
    grad_clip: float = 5.0,
    warmup: int = 100,
    modality_shift: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a mapper of ``kind`` on a pairs directory; write ``out`` (+ ``OUT.state``).

    ``modality_shift`` is recorded as the default of the inference-time shift (option c)
    for pipelines using this checkpoint. Returns a summary (final step, validation
    figures, steps/s). Non-finite loss or
    gradients stop training with a UserError; the last good checkpoint stays in place.
    """
    if kind not in KINDS:
        raise UserError(f"unknown mapper kind '{kind}'; choices: {', '.join(KINDS)}")
    if steps <= 0:
        raise UserError(f"--steps must be positive, got {steps}")
    if noise_scale < 0:
        raise UserError(f"--noise-scale must be >= 0, got {noise_scale}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    device = torch.device(device)
    batch_size = int(batch_size or DEFAULTS[kind]["batch_size"])
    lr = float(lr if lr is not None else DEFAULTS[kind]["lr"])
    ckpt_every = int(ckpt_every or eval_every)
    out = Path(out)
    spath = state_path(out)

    data = LatentPairs(pairs)
    tensors = data.load(("w", "e"))
    train_idx, val_idx = data.split(val_fraction)
    if len(train_idx) < 2:
        raise UserError(f"{pairs}: too few pairs to train on ({len(data)})")
    w_all = tensors["w"].float()
    e_all = F.normalize(tensors["e"].float(), dim=-1)
    w_tr, e_tr = w_all[train_idx].to(device), e_all[train_idx].to(device)
    w_va, e_va = w_all[val_idx].to(device), e_all[val_idx].to(device)

    arch = dict(arch or {})
    arch.update(w_dim=data.w_dim, e_dim=data.e_dim)
    hparams = {
        "steps": int(steps),
        "batch_size": batch_size,
        "lr": lr,
        "noise_scale": float(noise_scale),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "grad_clip": float(grad_clip),
        "warmup": int(warmup),
    }
    if kind == "cvae-mapper":
        hparams.update(kl_weight=float(kl_weight), kl_warmup=int(kl_warmup))

    seed_everything(seed)
    batch_gen = torch.Generator(device="cpu").manual_seed(seed)
    noise_gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    start_step = 0
    history: list[dict[str, Any]] = []
    last_good_step: int | None = None
    if resume:
        if not spath.is_file():
            raise UserError(f"--resume: no training state at {spath} (train without --resume first)")
        st = load_training_state(spath)
        if st.get("kind") != kind:
            raise UserError(f"--resume: {spath} is for a '{st.get('kind')}' mapper, not '{kind}'")
        arch = st["arch"]
        mapper = build_mapper(kind, arch).to(device)
        mapper.load_state_dict(st["model"])
        start_step = int(st["step"])
        history = list(st.get("history", []))
        batch_gen.set_state(st["batch_gen"])
        noise_gen.set_state(st["noise_gen"])
        if "torch_rng" in st:
            torch.set_rng_state(st["torch_rng"])
        last_good_step = start_step
        # Keep the original data statistics and architecture; later options apply from here on.
    else:
        mapper = build_mapper(kind, arch).to(device)
        w_std = w_tr.std(0) if len(w_tr) > 1 else torch.ones_like(w_tr[0])
        mapper.set_statistics(w_tr.mean(0), w_std, e_tr.mean(0))
    opt = torch.optim.Adam(mapper.parameters(), lr=lr)
    if resume:
        opt.load_state_dict(st["opt"])
    if start_step >= steps:
        raise UserError(f"--resume: training already reached step {start_step} >= --steps {steps}; raise --steps to continue")

    base_config = {
        "format": FORMAT,
        "kind": kind,
        "arch": arch,
        "w_dim": data.w_dim,
        "e_dim": data.e_dim,
        "clip": data.meta.get("clip"),
        "generator": data.meta.get("generator"),
        "pairs": str(Path(pairs)),
        "n_pairs": len(data),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "train": hparams,
        "w_stats": "tensors w_mean, w_std (training split); e_image_mean",
        # Default of the pipelines' inference-time modality shift (option c) for this mapper.
        "inference": {"modality_shift": bool(modality_shift)},
    }

    def save(step: int, val: dict[str, float]) -> None:
        cfg = dict(base_config, step=step, val=val)
        save_checkpoint(out, mapper.state_dict(), cfg)
        atomic_torch_save(
            {
                "kind": kind,
                "arch": arch,
                "model": mapper.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "history": history,
                "batch_gen": batch_gen.get_state(),
                "noise_gen": noise_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
            spath,
        )

    def diverged(step: int, what: str) -> UserError:
        kept = (
            f"the last good checkpoint {out} (step {last_good_step}) is kept"
            if last_good_step is not None
            else "no checkpoint was written"
        )
        return UserError(f"training stopped: {what} at step {step}; {kept}; try a lower --lr")

    mapper.train()
    val = history[-1]["val"] if history else {}
    ema = None
    offset = _display_offset(kind, mapper)
    t0 = time.perf_counter()
    n_tr = len(w_tr)
    bar = tqdm(total=steps, initial=start_step, desc=f"train {kind}", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        for step in range(start_step, steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr, warmup)
            idx = torch.randint(n_tr, (batch_size,), generator=batch_gen).to(device)
            wb = w_tr[idx]
            eb = augment_embeddings(e_tr[idx].cpu(), noise_scale, noise_gen).to(device) if noise_scale > 0 else e_tr[idx]
            klw = kl_weight * min(1.0, (step + 1) / kl_warmup) if kl_warmup > 0 else kl_weight
            loss_value, logs = _batch_loss(kind, mapper, wb, eb, klw)
            if not torch.isfinite(loss_value):
                raise diverged(step, f"loss is {float(loss_value.detach())}")
            opt.zero_grad(set_to_none=True)
            loss_value.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(mapper.parameters(), grad_clip)
            if not torch.isfinite(gnorm):
                raise diverged(step, f"gradient norm is {float(gnorm)}")
            opt.step()
            done = step + 1
            lv = float(loss_value.detach()) + offset
            ema = lv if ema is None else 0.98 * ema + 0.02 * lv
            if done % eval_every == 0 or done == steps:
                if len(w_va):
                    val = evaluate(kind, mapper, w_va, e_va)
                    history.append({"step": done, "val": val, "train_loss_ema": ema})
            if done % ckpt_every == 0 or done == steps:
                if not _finite_params(mapper):
                    raise diverged(step, "parameters became non-finite")
                save(done, val)
                last_good_step = done
            post = {"loss": f"{ema:.3f}"}
            if val:
                k = "nll" if kind == "flow" else "nelbo"
                post["val_" + k] = f"{val[k]:.3f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    return {
        "out": str(out),
        "state": str(spath),
        "step": steps,
        "val": val,
        "steps_per_s": (steps - start_step) / elapsed if elapsed > 0 else float("nan"),
        "seconds": elapsed,
    }
