"""Command line of the text-to-face project. Run ``python main.py --help``.

Each command is a thin layer over model.py / dataset.py; errors caused by the
user's input are printed as one line with a non-zero exit status.
"""
from __future__ import annotations

import sys

import click

from torch_utils.misc import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Text-to-face generation with a pretrained StyleGAN2 and CLIP (Fast text2StyleGAN)."""


@cli.group()
def data():
    """Datasets: the toy-face renderer, CelebA-format readers, CLIP embedding caches."""


@cli.group()
def train():
    """Train the project's models (toy CLIP, classifier, StyleGAN2, mappers, baselines)."""


# ---------------------------------------------------------------------------
# Generator sampling
# ---------------------------------------------------------------------------


@cli.command()
@click.option("--generator", "generator", default=None, metavar="PATH_OR_URL",
              help="StyleGAN2 generator: NVIDIA .pkl, rosinality .pt, project .safetensors or http(s) URL "
                   "[default: the bundled toy generator]")
@click.option("--seeds", default="0-15", show_default=True, help="Seeds, e.g. 0-15 or 1,5,9 (one image each).")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True,
              help="Truncation psi toward the average w (1 = none).")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--class", "class_idx", type=int, default=None, help="Class index for a conditional generator.")
@click.option("--out", type=click.Path(dir_okay=False), default="grid.png", show_default=True, help="Output image grid.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def sample(generator, seeds, truncation_psi, noise_mode, class_idx, out, device):
    """Render one StyleGAN2 image per seed into a labelled grid."""
    from model.generator import sample_grid
    from torch_utils.misc import parse_range

    path = sample_grid(generator, parse_range(seeds), out, truncation_psi, noise_mode, device, class_idx)
    click.echo(f"wrote {path}")


@cli.command("eval-generator")
@click.option("--generator", default=None, metavar="PATH_OR_URL", help="StyleGAN2 checkpoint [default: the bundled toy generator].")
@click.option("--data", default=None, type=click.Path(file_okay=False), help="CelebA-format folder (train split: attribute frequencies; test split: reference) [default: $TEXT2FACE_DATA or ../data/toy].")
@click.option("--classifier", default=None, metavar="PATH", help="Attribute classifier [default: bundled].")
@click.option("--clip-eval", default=None, metavar="NAME_OR_PATH", help="CLIP whose image features the Fréchet distance uses [default: the bundled evaluation CLIP].")
@click.option("--n", default=2000, show_default=True, type=int, help="Samples (seeds SEED .. SEED+N-1).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--trunc", "truncation_psi", default=1.0, show_default=True, type=float, help="Truncation psi.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Also write the figures to this JSON file.")
@click.option("--record", is_flag=True, help="Store the figures in the bundled-models manifest (only for the bundled generator).")
def eval_generator_cmd(generator, data, classifier, clip_eval, n, seed, truncation_psi, json_out, record):
    """Quality of a generator: attribute frequencies vs the data, unambiguous samples, CLIP Fréchet distance."""
    import json

    from model.bundled import bundled_path
    from model.evaluate import default_data_dir
    from model.train_stylegan import evaluate_generator

    generator = generator or str(bundled_path("generator"))
    if record and _bundled_name_for(generator) != "generator":
        raise UserError("--record only applies to the bundled generator")
    data = data or default_data_dir()
    if data is None:
        raise UserError("no dataset folder found: pass --data (or set $TEXT2FACE_DATA)")
    m = evaluate_generator(generator, data, classifier or str(bundled_path("classifier")),
                           clip_eval or str(bundled_path("clip_eval")), n=n, seed=seed, truncation_psi=truncation_psi)
    if "attributes" in m:
        click.echo(f"{'attribute':22s} {'train':>7s} {'generated':>9s} {'ambiguous':>9s} {'(real)':>7s}")
        for a, v in m["attributes"].items():
            click.echo(f"{a:22s} {v['train']:7.3f} {v['generated']:9.3f} {v['ambiguous']:9.3f} {v['ambiguous_real_test']:7.3f}")
        click.echo(f"within 0.05 of the data: {m['attributes_within_0_05']} of {m['n_attributes']} (largest gap {m['max_abs_freq_diff']:.3f}); "
                   f"unambiguous samples {m['unambiguous_fraction']:.3f} (real test images {m['unambiguous_fraction_real_test']:.3f})")
    click.echo(f"Fréchet distance on evaluation-CLIP features: samples vs test {m['fd_clip_generated_vs_test']:.4f}, "
               f"training vs test images {m['fd_clip_train_vs_test']:.4f}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(m, f, indent=2)
        click.echo(f"wrote {json_out}")
    if record:
        from model.bundled import read_manifest, write_manifest

        manifest = read_manifest()
        entry = manifest["generator"]
        entry["metrics"].update({k: v for k, v in m.items() if k != "generator"})
        entry["quality_command"] = "python " + " ".join(sys.argv)
        write_manifest(manifest)
        click.echo("recorded the figures in the bundled-models manifest")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@data.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (CelebA layout).")
@click.option("--n", "n", required=True, type=int, help="Number of faces.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Rendering processes.")
@click.option("--size", default=64, show_default=True, type=int, help="Image size in pixels.")
@click.option("--style", default=1, show_default=True, type=click.IntRange(1, 2), help="Drawing style: 2 draws the small features (mouth, bangs, moustache, goatee, earrings) larger and with more contrast.")
def data_synth(out, n, seed, workers, size, style):
    """Render the toy-face dataset: img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt."""
    from dataset.toyfaces import write_dataset

    r = write_dataset(out, n, seed=seed, workers=workers, size=size, style=style)
    click.echo(f"wrote {r['n']} faces to {out} in {r['seconds']:.1f} s ({r['images_per_s']:.0f} images/s)")


@data.command("embed")
@click.option("--data", "data_dir", required=True, type=click.Path(), help="CelebA-format dataset folder.")
@click.option("--clip", "clip_name", default=None, help="CLIP model name (e.g. ViT-B/32) or file. Default: the bundled conditioning CLIP.")
@click.option("--split", default="all", show_default=True, type=click.Choice(["all", "train", "val", "test"]))
@click.option("--captions-per-image", default=4, show_default=True, type=int, help="Captions embedded per image (seeded).")
@click.option("--seed", default=0, show_default=True, type=int, help="Caption seed.")
@click.option("--resolution", default=64, show_default=True, type=int, help="Image size read from the dataset before CLIP's own resize.")
@click.option("--batch-size", default=256, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
def data_embed(data_dir, clip_name, split, captions_per_image, seed, resolution, batch_size, device):
    """Cache CLIP embeddings of the images and captions under DATA/embeddings/<clip identity>/."""
    from dataset.embeddings import cache_dir, embed_dataset

    if clip_name is None:
        from model.bundled import bundled_path

        clip_name = str(bundled_path("clip"))
    e = embed_dataset(data_dir, clip_name, split=split, captions_per_image=captions_per_image, seed=seed,
                      resolution=resolution, batch_size=batch_size, device=device)
    click.echo(f"{len(e)} images x {e.text.shape[1]} captions, dim {e.image.shape[1]}: {cache_dir(data_dir, e.identity)}")


@data.command("preview")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output image (PNG).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n", "n", default=16, show_default=True, type=int, help="Number of faces.")
@click.option("--start", default=100, show_default=True, type=int, help="Index of the first face.")
@click.option("--ncols", default=4, show_default=True, type=int)
def data_preview(out, seed, n, start, ncols):
    """Save a grid of toy faces, each with its caption written above it."""
    from dataset.toyfaces import preview_grid

    preview_grid(seed, n=n, ncols=ncols, start=start).save(out)
    click.echo(f"wrote {out}")


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _bundled_name_for(out):
    """The bundled-model name whose file is ``out`` (so the command records it in the manifest), or None."""
    import os

    from model.bundled import NAMES, PRETRAINED_DIR

    for name, fname in NAMES.items():
        if os.path.abspath(out) == os.path.abspath(PRETRAINED_DIR / fname):
            return name
    return None


@train.command("clip")
@click.option("--data", required=True, type=click.Path(), help="CelebA-format dataset folder (e.g. the toy faces from `data synth`).")
@click.option("--out", required=True, type=click.Path(), help="Output file: a float16 state dict that clip.load(PATH) reads. Training state goes to OUT.state.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--split-half", default="all", show_default=True, type=click.Choice(["0", "1", "all"]), help="Train on the even (0) or odd (1) rows of the train partition, or all of it.")
@click.option("--epochs", default=20.0, show_default=True, type=float, help="Passes over the training images (ignored with --steps).")
@click.option("--steps", default=None, type=int, help="Total optimizer steps (overrides --epochs).")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=2e-3, show_default=True, type=float, help="Peak learning rate (AdamW, warm-up then cosine).")
@click.option("--resume", is_flag=True, help="Continue from OUT.state.")
@click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice).")
@click.option("--vision-width", default=64, show_default=True, type=int, help="ViT width (multiple of 64).")
@click.option("--vision-patch", default=16, show_default=True, type=int, help="ViT patch size (64 / patch = grid side).")
@click.option("--vision-layers", default=4, show_default=True, type=int)
@click.option("--text-layers", default=3, show_default=True, type=int)
@click.option("--embed-dim", default=128, show_default=True, type=int)
@click.option("--hard-negatives", default=0, show_default=True, type=click.IntRange(0, 8),
              help="False captions per image (one attribute it lacks, among true ones) added as negatives of its image->text softmax.")
@click.option("--eval/--no-eval", "do_eval", default=True, show_default=True, help="Evaluate on the test partition at the end.")
def train_clip_cmd(data, out, seed, split_half, epochs, steps, batch_size, lr, resume, threads, vision_width, vision_patch, vision_layers, text_layers, embed_dim, hard_negatives, do_eval):
    """Train a toy CLIP (clip.model.CLIP, 64x64 ViT) contrastively on (image, caption) pairs."""
    from model.train_clip import ClipTrainConfig, evaluate_clip, format_clip_metrics, train_clip

    arch = dict(vision_width=vision_width, vision_patch_size=vision_patch, vision_layers=vision_layers, transformer_layers=text_layers, embed_dim=embed_dim)
    cfg = ClipTrainConfig(data=data, out=out, seed=seed, split_half=split_half, epochs=epochs, steps=steps, batch_size=batch_size,
                          lr=lr, resume=resume, threads=threads, arch=arch, hard_negatives=hard_negatives)
    s = train_clip(cfg)
    click.echo(f"wrote {out} ({s['steps']} steps, {s['train_images']} images, {s['wall_time_s']:.0f} s wall, {s['cpu_time_s']:.0f} s CPU, loss {s['final_loss_ema']}, scale {s['logit_scale']})")
    metrics = {"wall_time_s": s["wall_time_s"], "cpu_time_s": s["cpu_time_s"], "threads": s["threads"], "steps": s["steps"], "train_images": s["train_images"], "final_loss": s["final_loss_ema"]}
    if do_eval:
        m = evaluate_clip(out, data)
        click.echo(format_clip_metrics(m))
        metrics.update(m)
    name = _bundled_name_for(out)
    if name is not None:
        from model.bundled import record

        record(name, out, seed, metrics=metrics, split_half=split_half, arch=s["arch"])
        click.echo(f"recorded '{name}' in the bundled-models manifest")


@train.command("classifier")
@click.option("--data", required=True, type=click.Path(), help="CelebA-format dataset folder (real CelebA or the toy faces).")
@click.option("--out", required=True, type=click.Path(), help="Output checkpoint (.safetensors). Training state goes to OUT.state.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=6.0, show_default=True, type=float)
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=2e-3, show_default=True, type=float)
@click.option("--resolution", default=64, show_default=True, type=int, help="Input size of the network (images are resized to it).")
@click.option("--channels", default="32,64,128,256", show_default=True, help="Stage widths, comma-separated (each stage halves the resolution).")
@click.option("--resume", is_flag=True, help="Continue from OUT.state.")
@click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice).")
@click.option("--eval/--no-eval", "do_eval", default=True, show_default=True, help="Evaluate on the test partition at the end.")
def train_classifier_cmd(data, out, seed, epochs, batch_size, lr, resolution, channels, resume, threads, do_eval):
    """Train the attribute classifier (all 40 CelebA attributes, loss masked to those the data has)."""
    from model.classifier import evaluate_classifier, format_classifier_metrics, train_classifier

    try:
        chans = [int(c) for c in channels.split(",") if c.strip()]
    except ValueError:
        raise UserError(f"--channels '{channels}': expected comma-separated integers") from None
    s = train_classifier(data, out, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, resolution=resolution,
                         channels=chans, resume=resume, threads=threads)
    click.echo(f"wrote {out} ({s['steps']} steps, {s['train_images']} images, {s['wall_time_s']:.0f} s wall, {s['cpu_time_s']:.0f} s CPU, loss {s['final_loss_ema']})")
    metrics = {"wall_time_s": s["wall_time_s"], "cpu_time_s": s["cpu_time_s"], "threads": s["threads"], "steps": s["steps"], "train_images": s["train_images"]}
    if do_eval:
        m = evaluate_classifier(out, data)
        click.echo(format_classifier_metrics(m))
        metrics.update(m)
    name = _bundled_name_for(out)
    if name is not None:
        from model.bundled import record

        record(name, out, seed, metrics=metrics)
        click.echo(f"recorded '{name}' in the bundled-models manifest")


# --compile on generate, pairs and serve (model/accel.py).
_compile_option = click.option(
    "--compile", "compile_", is_flag=True,
    help="torch.compile the models first: faster calls after a one-time compilation (tens of seconds; cached on disk); results equal to float rounding.")


def _mapper_train_options(fn):
    """Options shared by `train flow` and `train cvae-mapper`."""
    opts = [
        click.option("--pairs", "pairs_dir", required=True, type=click.Path(), help="Pairs directory from `main.py pairs`."),
        click.option("--out", required=True, type=click.Path(), help="Checkpoint to write (.safetensors); training state goes to OUT.state."),
        click.option("--steps", default=5000, show_default=True, type=int, help="Total optimisation steps."),
        click.option("--batch-size", default=256, show_default=True, type=int),
        click.option("--lr", default=1e-3, show_default=True, type=float, help="Peak learning rate (warm-up, then cosine decay)."),
        click.option("--noise-scale", default=0.0, show_default=True, type=float, help="Gaussian noise on e during training (norm of the perturbation, then re-normalised); 0 = off."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--eval-every", default=500, show_default=True, type=int, help="Validate and checkpoint every N steps."),
        click.option("--device", default="cpu", show_default=True),
        click.option("--resume", is_flag=True, help="Continue from OUT.state."),
        click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice; 1 is often fastest for these small networks on a busy CPU)."),
        click.option("--modality-shift/--no-modality-shift", default=False, show_default=True, help="Record the inference-time text-embedding shift as this mapper's default."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _report_mapper_training(summary, seed):
    val = ", ".join(f"{k} {v:.4f}" for k, v in summary["val"].items())
    click.echo(f"wrote {summary['out']} (step {summary['step']}; val {val or 'n/a'}; {summary['steps_per_s']:.1f} steps/s)")
    name = _bundled_name_for(summary["out"])
    if name is not None:
        from model.mapper import manifest_fields
        from model.bundled import record

        metrics, extra = manifest_fields(summary)
        record(name, summary["out"], seed, metrics=metrics, **extra)
        click.echo(f"recorded '{name}' in the bundled-models manifest")


@train.command("flow")
@_mapper_train_options
@click.option("--layers", default=8, show_default=True, type=int, help="Coupling layers.")
@click.option("--hidden", default=256, show_default=True, type=int, help="Width of each coupling layer's MLP.")
@click.option("--bins", default=8, show_default=True, type=int, help="Spline bins.")
@click.option("--context-dim", default=128, show_default=True, type=int, help="Size of the embedding's context vector.")
def train_flow(pairs_dir, out, steps, batch_size, lr, noise_scale, seed, eval_every, device, resume, threads, modality_shift, layers, hidden, bins, context_dim):
    """Train the conditional normalizing flow p(w | e) on latent pairs (exact likelihood)."""
    import torch

    from model.mapper import train_mapper

    if threads:
        torch.set_num_threads(threads)
    arch = dict(layers=layers, hidden=hidden, bins=bins, context_dim=context_dim)
    summary = train_mapper("flow", pairs_dir, out, steps=steps, batch_size=batch_size, lr=lr, noise_scale=noise_scale,
                           seed=seed, resume=resume, arch=arch, eval_every=eval_every, device=device,
                           modality_shift=modality_shift)
    _report_mapper_training(summary, seed)


@train.command("cvae-mapper")
@_mapper_train_options
@click.option("--latent-dim", default=32, show_default=True, type=int, help="Size of the CVAE latent u.")
@click.option("--hidden", default=512, show_default=True, type=int, help="Width of encoder and decoder MLPs.")
@click.option("--kl-weight", default=1.0, show_default=True, type=float, help="Weight of the KL term (linear warm-up over 500 steps).")
def train_cvae_mapper(pairs_dir, out, steps, batch_size, lr, noise_scale, seed, eval_every, device, resume, threads, modality_shift, latent_dim, hidden, kl_weight):
    """Train the paper's CVAE mapper p(w | e) on latent pairs (ELBO)."""
    import torch

    from model.mapper import train_mapper

    if threads:
        torch.set_num_threads(threads)
    arch = dict(latent_dim=latent_dim, hidden=hidden)
    summary = train_mapper("cvae-mapper", pairs_dir, out, steps=steps, batch_size=batch_size, lr=lr, noise_scale=noise_scale,
                           kl_weight=kl_weight, seed=seed, resume=resume, arch=arch, eval_every=eval_every, device=device,
                           modality_shift=modality_shift)
    _report_mapper_training(summary, seed)


@train.command("stylegan")
@click.option("--data", required=True, type=click.Path(), help="CelebA-format dataset (train split) or a folder of images.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder: snapshots, training state, grids, log.jsonl.")
@click.option("--res", default=64, show_default=True, type=int, help="Image resolution (power of two).")
@click.option("--kimg", default=100.0, show_default=True, type=float, help="Train until this many thousand real images were shown.")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--cbase", default=1024, show_default=True, type=int, help="Channels at resolution r: min(cbase // r, cmax), in G and D.")
@click.option("--cmax", default=64, show_default=True, type=int)
@click.option("--map-layers", default=2, show_default=True, type=int, help="Mapping network layers.")
@click.option("--z-dim", default=128, show_default=True, type=int)
@click.option("--w-dim", default=128, show_default=True, type=int)
@click.option("--gamma", default=0.1, show_default=True, type=float, help="R1 weight (lazy, every 16 minibatches); 0 = off.")
@click.option("--pl-weight", default=0.0, show_default=True, type=float, help="Path-length regulariser weight (every 4 minibatches); 0 = off.")
@click.option("--mirror/--no-mirror", default=False, show_default=True, help="Random horizontal flips of the real images.")
@click.option("--lr", default=0.0025, show_default=True, type=float, help="Adam learning rate of G and D.")
@click.option("--snap-kimg", default=2.0, show_default=True, type=float, help="Snapshot (EMA generator, training state, grid) every this many kimg.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its training state (its stored options win).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (float16 + custom ops on CUDA).")
@click.option("--threads", default=None, type=int, help="torch CPU threads (1 is fastest on a busy machine).")
@click.option("--export", default=None, type=click.Path(dir_okay=False), help="At the end, write the last EMA generator here (float16 project checkpoint).")
def train_stylegan_cmd(data, out, res, kimg, batch_size, cbase, cmax, map_layers, z_dim, w_dim, gamma, pl_weight, mirror, lr, snap_kimg, seed, resume, device, threads, export):
    """Train a StyleGAN2 generator (residual D, logistic loss, lazy R1, EMA, style mixing) on an image dataset."""
    from model.train_stylegan import StyleGANTrainConfig, train_stylegan

    cfg = StyleGANTrainConfig(data=data, out=out, res=res, kimg=kimg, batch_size=batch_size, cbase=cbase, cmax=cmax,
                              map_layers=map_layers, z_dim=z_dim, w_dim=w_dim, gamma=gamma, pl_weight=pl_weight, mirror=mirror,
                              lr=lr, snap_kimg=snap_kimg, seed=seed, resume=resume, device=device, threads=threads, export=export)
    s = train_stylegan(cfg)
    click.echo(f"{s['run']}: kimg {s['kimg']:.1f} ({s['step']} steps, {s['wall_time_s'] / 3600:.2f} h); latest snapshot {s['snapshot']}")
    if export:
        click.echo(f"wrote {export}")
        import os

        from model.bundled import NAMES, PRETRAINED_DIR, record

        if os.path.abspath(export) == os.path.abspath(PRETRAINED_DIR / NAMES["generator"]):
            name = "generator"
            record(name, export, s["config"]["seed"], metrics={"kimg": s["kimg"], "training_wall_time_s": round(s["wall_time_s"], 1)},
                   config=s["config"])
            click.echo(f"recorded '{name}' in the bundled-models manifest")


def _baseline_train_options(fn):
    opts = [
        click.option("--data", required=True, type=click.Path(), help="CelebA-format dataset folder (real CelebA or the toy faces); trains on its train split."),
        click.option("--cond", default="clip", show_default=True, type=click.Choice(["clip", "attr"]), help="Condition on CLIP text embeddings of captions (a fresh wording per step) or on the 40 attributes."),
        click.option("--clip", "clip_name", default=None, help="CLIP model name or file for --cond clip (default: the bundled conditioning CLIP). Missing caption embeddings are computed and cached."),
        click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output checkpoint (.safetensors), written atomically at every snapshot."),
        click.option("--run-dir", default=None, type=click.Path(file_okay=False), help="Progress grids and training state (default: runs/train-KIND-<out name>)."),
        click.option("--steps", default=4000, show_default=True, type=int, help="Total training steps."),
        click.option("--batch-size", default=64, show_default=True, type=int),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--snap-every", default=500, show_default=True, type=int, help="Checkpoint, training state and image grid every this many steps."),
        click.option("--max-minutes", default=None, type=float, help="Stop early (with a checkpoint) after this much training time."),
        click.option("--resume", is_flag=True, help="Continue from the training state in the run folder."),
        click.option("--max-images", default=None, type=int, help="Train on the first N images of the train split only (their caption embeddings are computed directly)."),
        click.option("--init-from", default=None, type=click.Path(dir_okay=False), help="Start from the weights of another run's RUN/state.pt (same kind and sizes; a differently sized condition layer starts fresh)."),
        click.option("--device", default="cpu", show_default=True, help="cpu or cuda."),
        click.option("--threads", default=None, type=int, help="torch CPU threads (1 is fastest on a busy machine)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _train_baseline_cmd(kind, data, cond, clip_name, out, run_dir, steps, batch_size, seed, snap_every, max_minutes, resume, init_from, max_images, device, threads, **hp):
    from pathlib import Path

    from model.baselines import run_training

    if cond == "clip" and clip_name is None:
        from model.bundled import bundled_path

        clip_name = str(bundled_path("clip"))
    arch = {k: v for k, v in hp.items() if k in ("ch", "z_dim") and v is not None}
    tcfg = {k: v for k, v in hp.items() if k not in ("ch", "z_dim") and v is not None}
    s = run_training(kind, data, cond, clip_name, out, run_dir=run_dir, steps=steps, batch_size=batch_size, seed=seed, resume=resume,
                     threads=threads, device=device, max_minutes=max_minutes, snap_every=snap_every, arch=arch, train_cfg=tcfg,
                     init_from=init_from, max_images=max_images)
    losses = ", ".join(f"{k} {v:.4g}" for k, v in s["final"].items())
    click.echo(f"wrote {out} ({s['steps']} steps{' (stopped by --max-minutes)' if s['stopped_early'] else ''}, {s['train_images']} images, "
               f"{s['seconds']:.0f} s wall, {s['cpu_seconds_this_run']:.0f} s CPU, {losses}); grids in {s['run_dir']}")
    from model.bundled import NAMES, PRETRAINED_DIR, record

    if Path(out).resolve() == (PRETRAINED_DIR / NAMES[kind]).resolve():
        name = kind
        metrics = {"wall_time_s": s["seconds"], "cpu_time_s": s["cpu_seconds_this_run"], "threads": s["threads"], "steps": s["steps"],
                   "train_images": s["train_images"], "final_losses": {k: round(v, 4) for k, v in s["final"].items()}}
        record(name, out, seed, metrics=metrics, cond=cond)
        click.echo(f"recorded '{name}' in the bundled-models manifest")


@train.command("cvae")
@_baseline_train_options
@click.option("--ch", default=None, type=int, help="Base channel count (default 16).")
@click.option("--z-dim", default=None, type=int, help="Latent size (default 64).")
@click.option("--kl-weight", default=None, type=float, help="Weight of the KL term (default 1).")
@click.option("--kl-warmup", default=None, type=int, help="Steps of linear KL warm-up (default 300).")
@click.option("--sigma", default=None, type=float, help="Std of the Gaussian pixel likelihood, images in [-1, 1] (default 0.1).")
@click.option("--lr", default=None, type=float, help="Adam learning rate (default 1e-3).")
def train_cvae_cmd(**kw):
    """Train the image CVAE baseline on 64x64 faces (ELBO with KL warm-up)."""
    _train_baseline_cmd("cvae", **kw)


@train.command("gan")
@_baseline_train_options
@click.option("--ch", default=None, type=int, help="Base channel count of G and D (default 32).")
@click.option("--z-dim", default=None, type=int, help="Latent size (default 64).")
@click.option("--loss", default=None, type=click.Choice(["hinge", "nonsat"]), help="GAN loss (default hinge).")
@click.option("--r1-gamma", default=None, type=float, help="R1 weight on real images (default 0: D is spectrally normalised).")
@click.option("--mismatch-weight", default=None, type=float, help="Weight of 'real image, wrong condition' as fake in D (default 0.5).")
@click.option("--lr-g", default=None, type=float, help="Generator Adam learning rate (default 2e-4).")
@click.option("--lr-d", default=None, type=float, help="Discriminator Adam learning rate (default 2e-4).")
def train_gan_cmd(**kw):
    """Train the conditional GAN baseline on 64x64 faces (hinge loss, projection discriminator)."""
    _train_baseline_cmd("gan", **kw)


# ---------------------------------------------------------------------------
# Text-to-face
# ---------------------------------------------------------------------------


@cli.command("pairs")
@click.option("--generator", default=None, help="StyleGAN2 checkpoint (NVIDIA pickle, rosinality .pt, project checkpoint; path or URL). Default: the bundled toy generator.")
@click.option("--clip", "clip_name", default=None, help="CLIP model name (e.g. ViT-B/32) or file. Default: the bundled conditioning CLIP.")
@click.option("--n", "n", required=True, type=int, help="Number of (z, w, e_image) pairs.")
@click.option("--out", required=True, type=click.Path(), help="Output directory (shards + meta.json); a rerun continues it.")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--shard-size", default=1024, show_default=True, type=int, help="Samples per shard file.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice).")
@click.option("--part", default=None, metavar="I/K", help="Make only shards I, I+K, I+2K, ... (K processes sharing --out); finish with one run without --part, which records them.")
@_compile_option
def pairs_cmd(generator, clip_name, n, out, batch_size, shard_size, seed, device, threads, part, compile_):
    """Sample latent pairs text-free: z -> w -> image -> CLIP image embedding."""
    import torch

    from model.pairs import parse_part, sample_pairs_cli

    if threads:
        torch.set_num_threads(threads)
    s = sample_pairs_cli(generator, clip_name, n, out, batch_size=batch_size, seed=seed, shard_size=shard_size, device=device,
                         part=parse_part(part), compile=compile_)
    rate = f"{s['samples_per_s']:.1f} samples/s" if s["new"] else "nothing to do"
    click.echo(f"{s['out']}: {s['n']} pairs ({s['new']} new, {rate})")


@cli.command("generate")
@click.argument("prompts", nargs=-1)
@click.option("-n", "n", default=8, show_default=True, type=int, help="Images per prompt.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same images).")
@click.option("--out", default="out.png", show_default=True, type=click.Path(dir_okay=False), help="Output grid (.png or .jpg); each prompt is written above its row.")
@click.option("--model", "model_name", default="flow", show_default=True, help="Method: flow, cvae-mapper, cvae, gan, clip-opt (or the references unconditional, real).")
@click.option("--temperature", default=1.0, show_default=True, type=float, help="Mapper sampling temperature (scale of the base noise).")
@click.option("--trunc", default=1.0, show_default=True, type=float, help="Truncation of the sampled w toward G.w_avg (1 = none).")
@click.option("--image", "image", default=None, type=click.Path(dir_okay=False), help="Reference picture: condition on its CLIP image embedding (alone, or blended with the prompts).")
@click.option("--mix", default=None, type=float, help="Weight of --image in the text+image blend, 0..1 [default 0.5 with prompts, 1 without].")
@click.option("--shift/--no-shift", "shift", default=None, help="Modality-gap shift of text embeddings [default: as the mapper checkpoint says].")
@click.option("--clip", "clip_name", default=None, metavar="NAME_OR_PATH", help="Conditioning CLIP (e.g. ViT-B/32) [default: the bundled toy CLIP].")
@click.option("--generator", default=None, metavar="PATH_OR_URL", help="StyleGAN2 checkpoint [default: the bundled toy generator].")
@click.option("--mapper", default=None, metavar="PATH", help="The method's checkpoint (mapper, or the cvae/gan baseline) [default: bundled].")
@click.option("--steps", default=50, show_default=True, type=int, help="clip-opt: optimisation steps per image.")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
@_compile_option
def generate_cmd(prompts, n, seed, out, model_name, temperature, trunc, image, mix, shift, clip_name, generator, mapper, steps, batch_size, device, compile_):
    """Generate N faces per PROMPT into a labelled grid (text-to-face)."""
    from model.pipelines import generate_to_file

    info = generate_to_file(list(prompts), n, seed, out, model_name, clip=clip_name, generator=generator, mapper=mapper,
                            device=device, temperature=temperature, trunc=trunc, image=image, mix=mix,
                            modality_shift=shift, steps=steps, batch_size=batch_size, compile=compile_)
    note = ", compilation included" if compile_ else ""
    click.echo(f"wrote {out} ({info['images']} images, {info['ms_per_image']:.1f} ms/image on {info['device']}{note})")


@cli.command("eval")
@click.option("--model", "models", required=True, help="Comma-separated methods: flow, cvae-mapper, cvae, gan, clip-opt, unconditional, real; each may be LABEL=KIND[@CHECKPOINT][+shift].")
@click.option("--prompts", "prompts_file", required=True, type=click.Path(dir_okay=False), help="JSONL prompt file, e.g. prompts/toy.jsonl.")
@click.option("--n-per-prompt", default=8, show_default=True, type=int)
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False), help="Results file (merged with an existing one, one entry per method).")
@click.option("--clip-eval", default=None, metavar="NAME_OR_PATH", help="Evaluation CLIP (never the conditioning one) [default: bundled].")
@click.option("--classifier", default=None, metavar="PATH", help="Attribute classifier [default: bundled].")
@click.option("--data", default=None, type=click.Path(file_okay=False), help="CelebA-format folder; its test split is the real reference [default: $TEXT2FACE_DATA or ../data/toy].")
@click.option("--clip", "clip_name", default=None, metavar="NAME_OR_PATH", help="Conditioning CLIP of the methods [default: bundled].")
@click.option("--generator", default=None, metavar="PATH_OR_URL", help="StyleGAN2 checkpoint [default: bundled].")
@click.option("--batch-size", default=16, show_default=True, type=int, help="Images per generation call (the same for every method).")
@click.option("--steps", default=50, show_default=True, type=int, help="clip-opt optimisation steps per image.")
@click.option("--max-prompts", default=None, type=int, help="Use only the first N prompts of the file.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(0, None), help="Sampling temperature of the mappers (flow, cvae-mapper).")
@click.option("--trunc", default=1.0, show_default=True, type=click.FloatRange(0, 1), help="Truncation of the mappers' w toward the average latent.")
def eval_cmd(models, prompts_file, n_per_prompt, json_out, clip_eval, classifier, data, clip_name, generator, batch_size, steps, max_prompts, seed, device, temperature, trunc):
    """Score methods on a prompt file (attribute accuracy, CLIP score, R-precision, FD, diversity, speed)."""
    from model.evaluate import evaluate, summary_lines

    res = evaluate([m for m in models.split(",") if m.strip()] or [""], prompts_file, n_per_prompt, json_out,
                   clip_eval=clip_eval, classifier=classifier, data=data, batch_size=batch_size, device=device,
                   clip=clip_name, generator=generator, seed=seed, steps=steps, max_prompts=max_prompts,
                   temperature=temperature, trunc=trunc)
    for line in summary_lines(res):
        click.echo(line)
    click.echo(f"wrote {json_out}")


@cli.command("table")
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False), help="Output of `eval`.")
@click.option("--out", "out_dir", default="assets", show_default=True, type=click.Path(file_okay=False), help="Folder for RESULTS.md and the picture tables.")
def table_cmd(json_path, out_dir):
    """Write RESULTS.md (metrics, speed, modality-gap ablation) and picture tables from an eval JSON."""
    from model.evaluate import write_results

    click.echo(f"wrote {write_results(json_path, out_dir)}")


@cli.command("reproduce")
@click.option("--preset", default="toy", show_default=True, help="Configuration to rebuild (toy).")
@click.option("--quick", is_flag=True, help="Shrink every stage (a few minutes on two CPU cores; poor numbers).")
@click.option("--workdir", default="runs/reproduce", show_default=True, type=click.Path(file_okay=False), help="Where every stage writes; a rerun skips finished stages.")
@click.option("--assets", "assets_dir", default=None, type=click.Path(file_okay=False), help="Where the table goes [default: WORKDIR/assets].")
@click.option("--only", default=None, help="Comma-separated stage names to run (the others must be done).")
@click.option("--dry-run", is_flag=True, help="List the stages and their state, run nothing.")
def reproduce_cmd(preset, quick, workdir, assets_dir, only, dry_run):
    """Rebuild everything from nothing: data, CLIPs, classifier, StyleGAN2, pairs, mappers, baselines, eval, table."""
    from model.reproduce import reproduce

    reproduce(preset, quick=quick, workdir=workdir, assets=assets_dir, only=only, dry_run=dry_run)


# ---------------------------------------------------------------------------
# Web demo
# ---------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one).")
@click.option("--clip", "clip_name", default=None, help="Conditioning CLIP (name or file); default: bundled toy CLIP.")
@click.option("--generator", default=None, help="StyleGAN2 checkpoint (path or URL); default: bundled toy generator.")
@click.option("--mapper", default=None, help="Flow mapper checkpoint; default: bundled toy flow.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N")
@click.option("--clip-opt-steps", default=30, show_default=True, type=click.IntRange(1, 1000), help="Steps for the clip-opt method.")
@_compile_option
def serve(host, port, clip_name, generator, mapper, device, clip_opt_steps, compile_):
    """Start the interactive web demo (prompt box, sliders, method, reference image)."""
    from model.server import ServerThread, available_methods, create_app, pipeline_generate_fn

    fn = pipeline_generate_fn(clip_name, generator, mapper, device, clip_opt_steps, compile=compile_)
    if compile_:
        click.echo("compiling the flow pipeline for batch sizes 1, 2 and 16 (a slower start; later processes reuse the on-disk cache)")
    for n in (1, 2, 16) if compile_ else (1,):  # load + fail early (and compile the shapes requests use)
        fn(prompt="a face", model="flow", n=n, seed=0, temperature=1.0, trunc=1.0, image=None, mix=None)
    setting = f"clip: {clip_name or 'bundled toy'} | generator: {generator or 'bundled toy'} | device: {device}"
    server = ServerThread(create_app(fn, available_methods(), setting), host, port)
    click.echo(f"serving on http://{host}:{server.port}/  (Ctrl+C to stop)")
    try:
        server.run()
    finally:
        server.shutdown()


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="main.py", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
