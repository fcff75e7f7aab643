"""Convolutional encoder / decoder of a VAE with a vector latent (Kingma & Welling 2013, arXiv:1312.6114).

The encoder halves the resolution with stride-2 convolutions down to 4x4 and maps the flattened
features to the posterior's (μ, log σ²); the decoder mirrors it from z back to ``image_size``.
Widths double at each stage, as in DCGAN. The decoder returns pre-sigmoid ``logits``: the model's
likelihood (Bernoulli or Gaussian, see :mod:`genlab.losses`) turns them into a mean image.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def n_stages(image_size: int) -> int:
    """Number of stride-2 stages between ``image_size`` and 4x4; raises on unsupported sizes."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(
            f"the VAE needs data.image_size to be a power of two >= 8, got {image_size}; "
            "override it, e.g. data.image_size=32"
        )
    return int(math.log2(image_size)) - 2


class Encoder(nn.Module):
    """image [N, channels, S, S] -> (mu, logvar), each [N, latent_dim]."""

    def __init__(self, image_size: int = 32, channels: int = 3, latent_dim: int = 32, width: int = 32):
        super().__init__()
        stages = n_stages(image_size)
        self.latent_dim = latent_dim
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(stages):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.SiLU()]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c_in * 4 * 4, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z [N, latent_dim] -> logits [N, channels, S, S] (σ(logits) is the mean image in [0, 1])."""

    def __init__(self, image_size: int = 32, channels: int = 3, latent_dim: int = 32, width: int = 32):
        super().__init__()
        stages = n_stages(image_size)
        self.latent_dim = latent_dim
        c = width * 2 ** (stages - 1)
        self.project = nn.Sequential(nn.Linear(latent_dim, c * 4 * 4), nn.SiLU(), nn.Unflatten(1, (c, 4, 4)))
        layers: list[nn.Module] = []
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.SiLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        return self.net(self.project(z))
