"""The attribute classifier: a small CNN predicting the 40 CelebA attributes (logits)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and ReLU; the first one may stride by 2."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class AttributeClassifier(nn.Module):
    """CNN from an image [N, 3, R, R] in [-1, 1] to attribute logits [N, num_attrs].

    ``channels[i]`` is the width of stage i; every stage halves the resolution. Global average pooling makes the network accept any input size, but it
    is trained at ``resolution`` and callers should resize to it (model.classifier does).
    """

    def __init__(self, num_attrs: int = 40, resolution: int = 64, channels: Sequence[int] = (32, 64, 128, 256), dropout: float = 0.1):
        super().__init__()
        self.num_attrs = int(num_attrs)
        self.resolution = int(resolution)
        self.channels = tuple(int(c) for c in channels)
        stages = []
        cin = 3
        for i, c in enumerate(self.channels):
            stages.append(ConvBlock(cin, c, stride=2))
            cin = c
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, self.num_attrs))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))
