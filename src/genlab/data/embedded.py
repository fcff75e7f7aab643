"""Datasets that ship with the code: nothing to download, deterministic for a seed.

- ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (UCI), upsampled smoothly.
- ``shapes``: procedural coloured circles, squares and triangles with their labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from genlab.data.base import ImageDataModule, split_indices

SHAPES = ("circle", "square", "triangle")
# Well-separated colours (RGB in [0, 1]); shape and background never share one.
PALETTE = np.array(
    [
        [0.90, 0.10, 0.10],  # red
        [0.10, 0.70, 0.20],  # green
        [0.15, 0.30, 0.90],  # blue
        [0.95, 0.85, 0.10],  # yellow
        [0.60, 0.15, 0.75],  # purple
        [0.10, 0.80, 0.85],  # cyan
        [0.95, 0.55, 0.10],  # orange
        [0.95, 0.95, 0.95],  # white
        [0.10, 0.10, 0.10],  # black
    ],
    dtype=np.float32,
)


def load_digits(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as [N, 1, image_size, image_size] in [-1, 1] (ink bright) and labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = torch.from_numpy(data.images).float()[:, None] / 16.0  # ink = 1, paper = 0
    # Bicubic then clamp: smooth strokes without the blockiness of nearest or bilinear at 4x.
    x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1) * 2 - 1, torch.from_numpy(data.target).long()


def sample_shape_params(rng: np.random.Generator, n: int, image_size: int) -> dict[str, np.ndarray]:
    """Random colour, background, size and position for ``n`` shapes (pixel units)."""
    fg = rng.integers(0, len(PALETTE), n)
    bg = (fg + rng.integers(1, len(PALETTE), n)) % len(PALETTE)  # any colour but fg
    radius = rng.uniform(0.15, 0.32, n) * image_size
    cx = rng.uniform(radius, image_size - radius)
    cy = rng.uniform(radius, image_size - radius)
    return {"fg": fg, "bg": bg, "radius": radius, "cx": cx, "cy": cy}


def shape_coverage(
    kind: np.ndarray, params: dict[str, np.ndarray], image_size: int, supersample: int = 4
) -> torch.Tensor:
    """The share of each pixel the shape covers, [N, 1, S, S] in [0, 1] (``supersample``² sub-pixel
    samples per pixel); ``kind`` holds indices into :data:`SHAPES`. This is the scene's geometry:
    rendering colours it, and measurements that need to know where the background is read it."""
    s = image_size * supersample
    coords = (np.arange(s, dtype=np.float32) + 0.5) / supersample  # sub-pixel centres, pixel units
    y, x = coords[None, :, None], coords[None, None, :]
    cx, cy, r = (params[k][:, None, None].astype(np.float32) for k in ("cx", "cy", "radius"))
    dx, dy = x - cx, y - cy
    inside = np.empty((len(kind), s, s), dtype=bool)
    for k, name in enumerate(SHAPES):
        sel = kind == k
        if not sel.any():
            continue
        if name == "circle":
            inside[sel] = (dx[sel] ** 2 + dy[sel] ** 2) <= r[sel] ** 2
        elif name == "square":  # same area scale: half-side = radius * 0.886 (equal area to the circle)
            h = r[sel] * np.sqrt(np.pi) / 2
            inside[sel] = (np.abs(dx[sel]) <= h) & (np.abs(dy[sel]) <= h)
        else:  # upward equilateral triangle inscribed in the circle
            rr, ddx, ddy = r[sel], dx[sel], dy[sel]
            below_top_edges = (np.sqrt(3) * np.abs(ddx) - ddy) <= rr  # two slanted edges
            inside[sel] = below_top_edges & (ddy <= rr / 2)
    alpha = inside.reshape(len(kind), image_size, supersample, image_size, supersample).mean(axis=(2, 4))
    return torch.from_numpy(alpha.astype(np.float32))[:, None]


def render_shapes(
    kind: np.ndarray, params: dict[str, np.ndarray], image_size: int, supersample: int = 4
) -> torch.Tensor:
    """Anti-aliased images [N, 3, S, S] in [-1, 1]; ``kind`` holds indices into :data:`SHAPES`.

    The same ``params`` with another ``kind`` renders the same scene with another shape, which is
    how the unpaired circles↔squares set gets its ground truth.
    """
    alpha = shape_coverage(kind, params, image_size, supersample)
    fg = torch.from_numpy(PALETTE[params["fg"]])[:, :, None, None]
    bg = torch.from_numpy(PALETTE[params["bg"]])[:, :, None, None]
    return (alpha * fg + (1 - alpha) * bg) * 2 - 1


def require_channels(name: str, channels: int, expected: int) -> None:
    if channels != expected:
        raise ValueError(f"data={name} has {expected} channel(s); remove the override data.channels={channels}")


class DigitsDataModule(ImageDataModule):
    """scikit-learn digits, 1 channel, ink bright on dark like MNIST; labels kept."""

    domain_classifier = "digits"  # the shipped metrics classifier of these images

    def __init__(
        self, image_size: int = 32, channels: int = 1, val_fraction: float = 0.1, split_seed: int = 0, **kwargs
    ):
        require_channels("digits", channels, 1)
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    def build(self):
        images, labels = load_digits(self.image_size)
        train, val = split_indices(len(images), self.val_fraction, self.split_seed)
        return TensorDataset(images[train], labels[train]), TensorDataset(images[val], labels[val])


class ShapesDataModule(ImageDataModule):
    """Procedural RGB shapes; labels are (shape index, colour index) as a [N, 2] tensor."""

    domain_classifier = "shapes"  # the shipped metrics classifier of these images
    name = "shapes"  # the data option, in messages

    def __init__(
        self, image_size: int = 32, channels: int = 3, n_train: int = 5000, n_val: int = 500, seed: int = 0, **kwargs
    ):
        require_channels(self.name, channels, 3)
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        self.n_train, self.n_val, self.seed = n_train, n_val, seed

    def build(self):
        def make(n: int, seed: int) -> TensorDataset:
            rng = np.random.default_rng(seed)
            kind = rng.integers(0, len(SHAPES), n)
            params = sample_shape_params(rng, n, self.image_size)
            labels = torch.from_numpy(np.stack([kind, params["fg"]], axis=1)).long()
            return TensorDataset(render_shapes(kind, params, self.image_size), labels)

        # Separate streams: the val set does not change when n_train does.
        return make(self.n_train, self.seed), make(self.n_val, self.seed + 1_000_003)
