"""EDSR, the super-resolution network of Lim et al. 2017 ("Enhanced Deep Residual Networks for Single
Image Super-Resolution", arXiv:1707.02921): a ResNet without batch norm at the input's resolution,
then a pixel-shuffle upsampler.

    head:  conv 3×3 C → F
    body:  B × [conv 3×3, ReLU, conv 3×3, × res_scale, + skip],  conv 3×3,  + head's output
    tail:  PixelShuffleHead(F → C, scale)   (the paper's upsampler and last conv)

EDSR-baseline is B = 16, F = 64, res_scale = 1 (1.5 M parameters at ×2); EDSR is B = 32, F = 256,
res_scale = 0.1. The paper also subtracts DIV2K's mean RGB from the input; here the head's bias
learns that offset.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.restoration import PixelShuffleHead, RestorationNetwork


class ResBlock(nn.Module):
    """x + res_scale · conv(ReLU(conv(x))): EDSR's block, batch norm removed."""

    def __init__(self, width: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSR(RestorationNetwork):
    """y [N, C, h, w] (+ mask) -> x̂ [N, C_out, h·scale, w·scale]; any h, w."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        scale: int = 2,
        mask_channel: bool = False,
        width: int = 64,  # F
        blocks: int = 16,  # B
        res_scale: float = 1.0,  # 0.1 for the wide EDSR (its training is unstable without)
    ):
        super().__init__(in_channels, out_channels, scale, mask_channel)
        self.head = nn.Conv2d(self.input_channels, width, 3, padding=1)
        self.body = nn.Sequential(
            *(ResBlock(width, res_scale) for _ in range(blocks)), nn.Conv2d(width, width, 3, padding=1)
        )
        self.tail = PixelShuffleHead(width, self.out_channels, scale)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        features = self.head(self.inputs(y, mask))
        return self.tail(features + self.body(features))
