"""A recurrent restoration CNN: one weight-shared block unrolled for T steps, each step fed the
degraded input and its own previous estimate, refining it (the unrolled-iteration view of
restoration, as in Kim et al. 2016's DRCN, arXiv:1511.04491, and Tai et al. 2017's DRRN).

    x̂_0 = bicubic(y)
    x̂_t = x̂_{t−1} + head(block([y, unshuffle(x̂_{t−1}), mask]))      t = 1 … T

``unshuffle`` (pixel unshuffle by ``scale``) brings the high-resolution estimate back to y's grid
without losing a pixel, so the block always works at the input's resolution. ``forward`` returns
all T estimates: a loss can use the last (``[-1]``) or every step (deep supervision).
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.restoration import PixelShuffleHead, RestorationNetwork, upsample_bicubic


class RecurrentNet(RestorationNetwork):
    """y [N, C, h, w] (+ mask) -> list of ``steps`` estimates [N, C, h·scale, w·scale]; any h, w."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,  # must equal in_channels: x̂_0 is the (upsampled) input
        scale: int = 1,
        mask_channel: bool = False,
        width: int = 64,
        depth: int = 5,  # conv layers of the shared block (before its head)
        steps: int = 4,  # T: unrolled iterations, all with the same weights
    ):
        super().__init__(in_channels, out_channels, scale, mask_channel)
        if self.out_channels != self.in_channels:
            raise ValueError("RecurrentNet starts from the input itself: out_channels must equal in_channels")
        if steps < 1 or depth < 1:
            raise ValueError(f"steps={steps}, depth={depth}: both must be >= 1")
        self.steps = steps
        estimate_channels = self.out_channels * scale**2
        layers: list[nn.Module] = [
            nn.Conv2d(self.input_channels + estimate_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.block = nn.Sequential(*layers)
        self.head = PixelShuffleHead(width, self.out_channels, scale)
        self.unshuffle = nn.PixelUnshuffle(scale)
        # The update starts at zero: before training every step returns x̂_0, and later steps cannot blow up.
        nn.init.zeros_(self.head.net[-1].weight)
        nn.init.zeros_(self.head.net[-1].bias)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        inputs = self.inputs(y, mask)
        estimate = upsample_bicubic(y, self.scale)
        estimates = []
        for _ in range(self.steps):
            update = self.head(self.block(torch.cat([inputs, self.unshuffle(estimate)], dim=1)))
            estimate = estimate + update
            estimates.append(estimate)
        return estimates
