"""The three networks of VAE/GAN (Larsen, Sønderby, Larochelle & Winther 2016, arXiv:1512.09300,
table 1 and the authors' code for 64 px CelebA), for any ``image_size`` divisible by 8:

    Enc: 3 × [5x5 conv ↓2, BN, ReLU] (64, 128, 256) → FC hidden, BN, ReLU → FC μ, FC log σ²
    Dec: FC 256·(S/8)², BN, ReLU → 3 × [5x5 deconv ↑2, BN, ReLU] (256, 128, 32) → 5x5 conv, tanh
    Dis: 5x5 conv (32), ReLU → 3 × [5x5 conv ↓2, BN, ReLU] (128, 256, 256) → FC 512, BN, ReLU → FC 1

Dis_l, the layer the reconstruction is measured in, is the last strided convolution's output before
its batch norm (the authors' ``recon_depth=9``). Widths are arguments, so the same networks run
small on a CPU. Convolutions followed by batch norm have no bias, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def base_side(image_size: int) -> int:
    """Side of the smallest feature map (three stride-2 stages below ``image_size``)."""
    if image_size < 8 or image_size % 8:
        raise ValueError(f"VAE/GAN needs data.image_size divisible by 8 (>= 8), got {image_size}; e.g. 32 or 64")
    return image_size // 8


def down(c_in: int, c_out: int) -> list[nn.Module]:
    """5x5 conv stride 2 ('same' padding) without bias; the caller adds BN and ReLU."""
    return [nn.Conv2d(c_in, c_out, 5, 2, 2, bias=False)]


class Encoder(nn.Module):
    """image [N, channels, S, S] -> (μ, log σ²), each [N, latent_dim]."""

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        latent_dim: int = 128,
        widths: Sequence[int] = (64, 128, 256),
        hidden: int = 2048,  # the paper's table; the authors' code uses 1024
    ):
        super().__init__()
        side = base_side(image_size)
        self.latent_dim = latent_dim
        layers: list[nn.Module] = []
        c = channels
        for width in widths:
            layers += [*down(c, width), nn.BatchNorm2d(width), nn.ReLU(True)]
            c = width
        layers += [nn.Flatten(), nn.Linear(c * side * side, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True)]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z [N, latent_dim] -> image [N, channels, S, S] in [-1, 1]: the GAN's generator."""

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        latent_dim: int = 128,
        widths: Sequence[int] = (256, 128, 32),  # the upsampling stages; the FC layer gives widths[0] maps
    ):
        super().__init__()
        side = base_side(image_size)
        self.latent_dim = latent_dim
        c = widths[0]
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, c * side * side, bias=False),
            nn.BatchNorm1d(c * side * side),
            nn.ReLU(True),
            nn.Unflatten(1, (c, side, side)),
        ]
        for width in widths:
            layers += [nn.ConvTranspose2d(c, width, 5, 2, 2, output_padding=1, bias=False)]
            layers += [nn.BatchNorm2d(width), nn.ReLU(True)]
            c = width
        layers += [nn.Conv2d(c, channels, 5, 1, 2), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        return self.net(z)


class Discriminator(nn.Module):
    """image -> one logit per image [N]; :meth:`features` gives Dis_l(x) [N, widths[-1], S/8, S/8]."""

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        width: int = 32,  # the first, full-resolution convolution
        widths: Sequence[int] = (128, 256, 256),
        hidden: int = 512,
    ):
        super().__init__()
        side = base_side(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 5, 1, 2), nn.ReLU(True)]
        c = width
        for i, w in enumerate(widths):
            layers += down(c, w)
            if i < len(widths) - 1:
                layers += [nn.BatchNorm2d(w), nn.ReLU(True)]
            c = w
        self.to_features = nn.Sequential(*layers)  # up to Dis_l
        self.head = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(True),
            nn.Flatten(),
            nn.Linear(c * side * side, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(True),
            nn.Linear(hidden, 1),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Dis_l(x)."""
        return self.to_features(x)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Dis(x) from Dis_l(x): one pass serves the feature term and the GAN terms."""
        return self.head(features).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.to_features(x))
