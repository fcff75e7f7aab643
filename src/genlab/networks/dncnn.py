"""DnCNN, the residual denoiser of Zhang et al. 2017 ("Beyond a Gaussian Denoiser", arXiv:1608.03981).

Residual learning: the network predicts the noise v = y − x, and the estimate is x̂ = y − R(y).

    conv 3×3 64 + ReLU,  (depth − 2) × [conv 3×3 64 + BN + ReLU],  conv 3×3 to C

depth 17 for σ-specific grey denoising (DnCNN-S, 35×35 receptive field), 20 for the blind and
multi-task models (DnCNN-B, DnCNN-3). Weights follow He et al.'s initialisation, as the paper.
With ``scale > 1`` the last conv becomes the pixel-shuffle head and x̂ = bicubic(y) − R(y).
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.restoration import PixelShuffleHead, RestorationNetwork, upsample_bicubic


class DnCNN(RestorationNetwork):
    """y [N, C, h, w] (+ mask) -> x̂ = up(y) − R(y), [N, C, h·scale, w·scale]; any h, w."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,  # must equal in_channels (x̂ = y − noise)
        scale: int = 1,
        mask_channel: bool = False,
        depth: int = 17,  # conv layers in all
        width: int = 64,
    ):
        super().__init__(in_channels, out_channels, scale, mask_channel)
        if self.out_channels != self.in_channels:
            raise ValueError("DnCNN subtracts the predicted noise from y: out_channels must equal in_channels")
        if depth < 2:
            raise ValueError(f"depth={depth}: DnCNN has a first and a last conv at least")
        layers: list[nn.Module] = [nn.Conv2d(self.input_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        for m in self.body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        self.head = PixelShuffleHead(width, self.out_channels, scale)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        noise = self.head(self.body(self.inputs(y, mask)))
        return upsample_bicubic(y, self.scale) - noise
