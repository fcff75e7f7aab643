"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Both networks work at any power-of-two ``image_size`` >= 16: the generator starts from a 4x4
map and doubles it with stride-2 transposed convolutions; the discriminator mirrors it. Widths
follow the paper: the 4x4 stage has ``width * image_size / 8`` channels (512 at 64 px, width 64).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def check_image_size(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and ``image_size``; raises on unsupported sizes."""
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(
            f"DCGAN needs data.image_size to be a power of two >= 16, got {image_size}; "
            "override it, e.g. data.image_size=32 or data.image_size=64"
        )
    return int(math.log2(image_size)) - 2


def init_weights(module: nn.Module) -> None:
    """The DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        parametrized = nn.utils.parametrize.is_parametrized(module, "weight")
        weight = module.parametrizations.weight.original if parametrized else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z [N, latent_dim] -> image [N, channels, image_size, image_size] in [-1, 1]."""

    def __init__(self, image_size: int = 32, channels: int = 3, latent_dim: int = 100, width: int = 64):
        super().__init__()
        stages = check_image_size(image_size)
        self.latent_dim = latent_dim
        c = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image -> one logit per image [N]. ``spectral_norm`` replaces batch norm by SN (Miyato et al.
    2018); ``batch_norm=False`` drops normalisation (needed for WGAN-GP, whose penalty is per sample).
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        width: int = 64,
        batch_norm: bool = True,
        spectral_norm: bool = False,
    ):
        super().__init__()
        stages = check_image_size(image_size)
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        use_bn = batch_norm and not spectral_norm
        c = width
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, c, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):
            layers += [sn(nn.Conv2d(c, c * 2, 4, 2, 1, bias=not use_bn))]
            layers += [nn.BatchNorm2d(c * 2)] if use_bn else []
            layers += [nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [sn(nn.Conv2d(c, 1, 4, 1, 0))]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
