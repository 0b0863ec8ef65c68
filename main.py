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


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


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
