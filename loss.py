"""Losses: flow NLL, ELBO, GAN losses and regularisers, the contrastive CLIP loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
