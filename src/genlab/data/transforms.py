"""The one image transform the file-backed datasets share: PIL in, [-1, 1] tensor out."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def to_model_input(image_size: int, channels: int, hflip: bool = False) -> v2.Compose:
    """Resize the short side to ``image_size`` (antialiased), centre-crop, set the channel count,
    scale to [-1, 1]. ``hflip`` adds a random horizontal flip (training only)."""
    if channels not in (1, 3):
        raise ValueError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels}")
    steps = [
        v2.Grayscale(1) if channels == 1 else v2.RGB(),
        v2.Resize(image_size, antialias=True),
        v2.CenterCrop(image_size),
    ]
    steps += [v2.RandomHorizontalFlip()] if hflip else []
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    return v2.Compose(steps)
