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


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@data.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (CelebA layout).")
@click.option("--n", "n", required=True, type=int, help="Number of faces.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Rendering processes.")
@click.option("--size", default=64, show_default=True, type=int, help="Image size in pixels.")
def data_synth(out, n, seed, workers, size):
    """Render the toy-face dataset: img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt."""
    from dataset.toyfaces import write_dataset

    r = write_dataset(out, n, seed=seed, workers=workers, size=size)
    click.echo(f"wrote {r['n']} faces to {out} in {r['seconds']:.1f} s ({r['images_per_s']:.0f} images/s)")


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Text-to-face
# ---------------------------------------------------------------------------


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
