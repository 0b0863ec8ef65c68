"""Systems built from the networks: loading checkpoints (StyleGAN2, CLIP, the project's own)
and the text-to-face pipelines."""
