"""U-Net encoder-decoder with skip connections (Ronneberger et al. 2015, arXiv:1505.04597), as a
restoration network: the skips carry the known detail across, the bottleneck sees the context a hole
or heavy noise needs.

    level 0: 2×[conv 3×3, ReLU] at width w          →  skip ─────────────────┐
    level i: conv 3×3 stride 2, 2×[conv 3×3, ReLU] at width min(w·2^i, 8w)  │
    decoder: nearest ×2, conv 3×3, concat skip, 2×[conv 3×3, ReLU]  ◀────────┘
    head:    PixelShuffleHead(w → out, scale);  output = bicubic(y) + head  (``residual``)

Padding is zero (no reflection): a hole's grey border is information, not an edge to mirror.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.restoration import PixelShuffleHead, RestorationNetwork, upsample_bicubic


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(RestorationNetwork):
    """y [N, C, h, w] (+ mask) -> x̂ [N, C_out, h·scale, w·scale]; h, w multiples of 2^depth."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        scale: int = 1,
        mask_channel: bool = False,
        width: int = 32,  # channels at full resolution; doubling per level, capped at 8·width
        depth: int = 4,  # stride-2 downsamplings (size_multiple = 2^depth)
        residual: bool = True,  # predict x̂ − bicubic(y) (needs out_channels == in_channels)
        zero_init: bool = False,  # the last conv starts at zero: a residual U-Net starts as its base
    ):
        super().__init__(in_channels, out_channels, scale, mask_channel)
        if depth < 0:
            raise ValueError(f"depth={depth}: the number of downsamplings is >= 0")
        if residual and self.out_channels != self.in_channels:
            raise ValueError("residual=true adds the input to the output: needs out_channels == in_channels")
        self.size_multiple = 2**depth
        self.residual = residual
        widths = [min(width * 2**i, 8 * width) for i in range(depth + 1)]
        self.stem = double_conv(self.input_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[i], widths[i], 3, stride=2, padding=1), double_conv(widths[i], widths[i + 1])
            )
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)
            )
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = PixelShuffleHead(widths[0], self.out_channels, scale, zero_init)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(self.inputs(y, mask))
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()  # the bottleneck is h itself
        for up, merge in zip(self.up, self.merge):
            h = merge(torch.cat([up(h), skips.pop()], dim=1))
        out = self.head(h)
        return upsample_bicubic(y, self.scale) + out if self.residual else out
