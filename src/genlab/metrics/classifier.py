"""The small CNN behind the ``classifier`` extractor (a plain nn.Module; trained by train_classifier)."""

from __future__ import annotations

import torch
from torch import nn


class DomainClassifier(nn.Module):
    """Three conv stages (32 → 16 → 8 → 4 px) and a ``feature_dim`` penultimate layer whose
    activations are the FID/KID/P&R features; the last linear layer gives the IS logits."""

    def __init__(
        self, channels: int = 1, classes: int = 10, image_size: int = 32, width: int = 32, feature_dim: int = 64
    ):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size={image_size} must be a multiple of 8")
        self.channels, self.classes, self.image_size, self.feature_dim = channels, classes, image_size, feature_dim

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(
            *stage(channels, width), *stage(width, 2 * width), *stage(2 * width, 2 * width), nn.Flatten()
        )
        self.features = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(2 * width * (image_size // 8) ** 2, feature_dim), nn.ReLU()
        )
        self.head = nn.Linear(feature_dim, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(self.body(x))
        return features, self.head(features)
