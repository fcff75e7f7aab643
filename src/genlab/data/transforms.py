"""The one image transform the file-backed datasets share: PIL in, [-1, 1] tensor out."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def to_model_input(
    image_size: int | None, channels: int, hflip: bool = False, random_crop: bool = False, resize: bool = True
) -> v2.Compose:
    """Resize the short side to ``image_size`` (antialiased), centre-crop, set the channel count,
    scale to [-1, 1]. ``hflip`` adds a random horizontal flip (training only). ``random_crop``: a
    random ``image_size`` crop of the full-resolution image instead (restoration trains on patches
    at the camera's resolution; images smaller than the crop are reflected); ``resize=False``: the
    centre crop at full resolution (their validation). ``image_size=None``: the image as it is."""
    if channels not in (1, 3):
        raise ValueError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels}")
    steps = [v2.Grayscale(1) if channels == 1 else v2.RGB()]
    if random_crop:
        steps.append(v2.RandomCrop(image_size, pad_if_needed=True, padding_mode="reflect"))
    elif image_size is not None:
        steps += [v2.Resize(image_size, antialias=True)] if resize else []
        steps.append(v2.CenterCrop(image_size))
    steps += [v2.RandomHorizontalFlip()] if hflip else []
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    return v2.Compose(steps)
