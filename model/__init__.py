"""Systems built from the networks: loading checkpoints (StyleGAN2, CLIP, the project's own)
and the text-to-face pipelines."""

from model.generator import load_generator, save_generator  # noqa: E402

__all__ = ["load_generator", "save_generator"]
