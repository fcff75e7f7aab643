"""The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017, arXiv:1611.07004;
Zhu et al. 2017, arXiv:1703.10593).

    C64 - C128 - C256 - C512 - conv to 1 channel      (4×4 convs, LeakyReLU 0.2, no norm on C64)

With ``n_layers=3`` each output logit sees a 70×70 patch of the input, so D judges local texture
and the map of logits is averaged by the loss. Strides are 2, 2, 2, then 1 for C512 and the head.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.dcgan import init_weights
from genlab.networks.resnet import Norm, conv_bias, norm_layer


def receptive_field(n_layers: int) -> int:
    """Input pixels each output logit depends on: 70 for n_layers=3, 34 for 2, 16 for 1."""
    rf = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        rf = rf * stride + (4 - stride)
    return rf


class Discriminator(nn.Module):
    """image [N, channels, H, W] -> patch logits [N, 1, H', W'] (H' = H/8 - 2 for n_layers=3)."""

    def __init__(self, channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance"):
        super().__init__()
        self.channels = channels
        self.n_layers = n_layers
        self.min_size = 3 * 2**n_layers  # the last normalised map must have more than one pixel
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(c, out, 4, stride=stride, padding=1, bias=bias), norm_layer(norm, out)]
            layers += [nn.LeakyReLU(0.2, True)]
            c = out
        layers += [nn.Conv2d(c, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.net(x)

    def forward_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the activations after each LeakyReLU, the patch logits): one pass for the adversarial term
        and feature matching (pix2pixHD's L_FM compares these layers on real and restored images)."""
        self.check(x)
        features = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        return features, x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The hidden activations (after each LeakyReLU), for feature-matching losses."""
        return self.forward_features(x)[0]

    def check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images [N, {self.channels}, H, W], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"a PatchGAN with n_layers={self.n_layers} needs images of at least {self.min_size} px, "
                f"got {tuple(x.shape[-2:])}; lower model.discriminator.n_layers or raise data.image_size"
            )
