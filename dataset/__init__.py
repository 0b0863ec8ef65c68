"""Data: CelebA-format datasets (real or toy), captions from attributes, CLIP embedding caches,
(w, e) latent-pair shards, and the procedural toy-face renderer."""
