"""Gated convolutions and DeepFill v2's coarse network, for free-form holes (Yu et al. 2019,
"Free-Form Image Inpainting with Gated Convolution", arXiv:1806.03589).

A gated convolution learns a soft, per-pixel, per-channel validity mask instead of partial
convolutions' hard rule:

    Gating = conv_g(I),  Feature = conv_f(I),  O = φ(Feature) ⊙ σ(Gating),  φ = ELU

The coarse network of the paper's generator (the authors' ``cnum = 48`` is ``width = 24`` here,
since their layer of ``cnum`` outputs is split into ``cnum/2`` features and ``cnum/2`` gates):

    in: [y, 1, mask]   (the ones channel lets zero padding mark the image border)
    5×5 w, 3×3/2 2w, 3×3 2w, 3×3/2 4w, 3×3 4w, 3×3 4w,
    3×3 4w dilated 2, 4, 8, 16, 3×3 4w, 3×3 4w,
    nearest ×2 + 3×3 2w, 3×3 2w, nearest ×2 + 3×3 w, 3×3 w/2, conv 3×3 to C (no gate), tanh

The refinement stage with contextual attention and the SN-PatchGAN are not part of this network.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.networks.restoration import PixelShuffleHead, RestorationNetwork


class GatedConv2d(nn.Module):
    """O = ELU(conv_f(x)) ⊙ σ(conv_g(x)); one convolution computes both halves."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, dilation)
        self.activation = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gating = self.conv(x).chunk(2, dim=1)
        return self.activation(feature) * torch.sigmoid(gating)


class GatedUpsample(nn.Sequential):
    """DeepFill v2's ``gen_deconv``: nearest ×2, then a gated 3×3 convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), GatedConv2d(in_channels, out_channels))


class GatedNet(RestorationNetwork):
    """y [N, C, h, w] with mask [N, 1, h, w] -> x̂ in [-1, 1], [N, C_out, h·scale, w·scale];
    h, w multiples of 4. Without a mask (other degradations) the mask channel is zero."""

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        scale: int = 1,
        mask_channel: bool = True,  # the paper's input; false drops the mask channel (not the ones)
        width: int = 24,  # w: features of the first layer (the paper's cnum = 48 → 24)
    ):
        super().__init__(in_channels, out_channels, scale, mask_channel)
        w = width
        self.net = nn.Sequential(
            GatedConv2d(self.input_channels + 1, w, 5),
            GatedConv2d(w, 2 * w, 3, stride=2),
            GatedConv2d(2 * w, 2 * w),
            GatedConv2d(2 * w, 4 * w, 3, stride=2),
            GatedConv2d(4 * w, 4 * w),
            GatedConv2d(4 * w, 4 * w),
            *(GatedConv2d(4 * w, 4 * w, dilation=d) for d in (2, 4, 8, 16)),
            GatedConv2d(4 * w, 4 * w),
            GatedConv2d(4 * w, 4 * w),
            GatedUpsample(4 * w, 2 * w),
            GatedConv2d(2 * w, 2 * w),
            GatedUpsample(2 * w, w),
            GatedConv2d(w, max(1, w // 2)),
        )
        self.head = PixelShuffleHead(max(1, w // 2), self.out_channels, scale)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.mask_channel and mask is None:
            mask = y.new_zeros(y.shape[0], 1, *y.shape[-2:])  # nothing missing
        x = self.inputs(y, mask)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        return torch.tanh(self.head(self.net(x)))
