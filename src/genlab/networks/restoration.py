"""What every restoration network shares: the (y, mask) input convention, the size check callers
pad for, and the pixel-shuffle head that makes any of them a super-resolution network.

A restoration network maps the degraded image y [N, C, h, w] (and, for inpainting, the mask
[N, 1, h, w], 1 = missing) to an estimate of the clean image [N, C_out, h·scale, w·scale]. The body
works at the input's resolution; only the last layers upsample (ESPCN's sub-pixel convolution, Shi
et al. 2016, arXiv:1609.05158, in EDSR's arrangement, Lim et al. 2017, arXiv:1707.02921), which is
``scale``² times cheaper than upsampling y first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def upsample_bicubic(y: torch.Tensor, scale: int) -> torch.Tensor:
    """y enlarged ``scale`` times (bicubic): the base that residual networks add their output to."""
    return y if scale == 1 else F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)


def fill_holes(y: torch.Tensor, mask: torch.Tensor, smoothing: int = 0) -> torch.Tensor:
    """y [N, C, H, W] with its missing pixels (mask [N, 1, H, W], 1 = missing) filled smoothly from the
    known ones: the push-pull pyramid of Gortler et al. 1996 ("The Lumigraph"), then ``smoothing``
    Jacobi steps of Laplace's equation inside the holes (the membrane fill that OpenCV's Navier-Stokes
    method approximates). Known pixels are returned unchanged; an image with no known pixel gives 0.

    Push: average the known pixels 2×2 at a time, carrying the fraction known, up to 1×1 or until
    every cell holds some known pixel. Pull: from the coarsest level down, each cell's colour is
    its own average blended with the bilinear upsampling of the coarser colour, weighted by how much
    of the cell is known. Cost O(pixels): a coarse fill a network can refine instead of inventing
    a hole's colours from zeros."""
    known = 1 - mask.to(y.dtype)
    levels = [(y * known, known)]  # (sum of known values, fraction known), both 2x2-averaged per level
    while min(levels[-1][1].shape[-2:]) > 1 and bool((levels[-1][1] == 0).any()):
        total, weight = levels[-1]
        levels.append((F.avg_pool2d(total, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True)))
    colour = None
    for total, weight in reversed(levels):
        own = total / weight.clamp_min(1e-8)
        if colour is None:
            colour = own * (weight > 0)
            continue
        coarse = F.interpolate(colour, size=total.shape[-2:], mode="bilinear", align_corners=False)
        colour = weight * own + (1 - weight) * coarse
    filled = known * y + (1 - known) * colour
    if smoothing > 0:
        neighbours = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]], dtype=y.dtype)
        kernel = neighbours.to(y.device).expand(y.shape[1], 1, 3, 3)
        for _ in range(smoothing):
            average = F.conv2d(F.pad(filled, (1, 1, 1, 1), mode="replicate"), kernel, groups=y.shape[1])
            filled = known * y + (1 - known) * average
    return filled


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x [N, C, H, W] padded at the bottom and right to multiples of ``multiple``: by reflection (no new
    edge for the network to see), by replication where the image is too small to reflect."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def icnr_(conv: nn.Conv2d, factor: int) -> None:
    """ICNR init (Aitken et al. 2017, arXiv:1707.02937): the ``factor``² sub-pixel filters of each
    output channel start equal, so conv + PixelShuffle starts as nearest upsampling of a random
    conv, without checkerboard artefacts."""
    out_channels = conv.out_channels // factor**2
    base = torch.empty(out_channels, *conv.weight.shape[1:])
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.copy_(base.repeat_interleave(factor**2, dim=0))
        if conv.bias is not None:
            conv.bias.zero_()


class PixelShuffleHead(nn.Module):
    """features [N, in, h, w] -> image [N, out, h·scale, w·scale]: log2(scale) stages of
    conv 3×3 to 4× the channels + PixelShuffle(2) (one stage of 9× + PixelShuffle(3) for ×3), then
    a 3×3 conv to ``out_channels``. ``scale=1`` is that last conv alone. ``zero_init`` starts that conv
    at zero, so a residual network starts as its base (the input, its bicubic upsampling or a hole fill)
    instead of the base plus noise it must first learn to cancel."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 1, zero_init: bool = False):
        super().__init__()
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"scale={scale}: the upsampling head supports x1, x2, x3 and x4")
        factors = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for r in factors:
            conv = nn.Conv2d(in_channels, in_channels * r * r, 3, padding=1)
            icnr_(conv, r)
            layers += [conv, nn.PixelShuffle(r)]
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        if zero_init:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class RestorationNetwork(nn.Module):
    """Base: ``forward(y, mask=None)``; subclasses set :attr:`size_multiple` (h and w of y must be
    multiples: callers pad, e.g. by reflection, and crop the output back) and build their layers
    for :attr:`input_channels` inputs."""

    size_multiple = 1

    def __init__(
        self,
        in_channels: int = 3,  # image channels of y (the mask is not counted)
        out_channels: int | None = None,  # None = in_channels
        scale: int = 1,  # output is scale times larger than y (super-resolution)
        mask_channel: bool = False,  # true: the mask is an extra input channel (inpainting)
    ):
        super().__init__()
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"scale={scale}: restoration networks upsample x1, x2, x3 or x4")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.scale, self.mask_channel = scale, bool(mask_channel)

    @property
    def input_channels(self) -> int:
        return self.in_channels + int(self.mask_channel)

    def check(self, y: torch.Tensor, mask: torch.Tensor | None) -> None:
        name = type(self).__name__
        if y.dim() != 4 or y.shape[1] != self.in_channels:
            raise ValueError(f"{name} expects y [N, {self.in_channels}, H, W], got {tuple(y.shape)}")
        m = self.size_multiple
        if y.shape[-2] % m or y.shape[-1] % m:
            raise ValueError(
                f"{name}: height and width must be multiples of {m} (size_multiple), got {tuple(y.shape[-2:])}; "
                "pad the input (reflection) and crop the output back"
            )
        if mask is not None and (mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != y.shape[-2:]):
            raise ValueError(f"{name}: mask must be [N, 1, H, W] like y {tuple(y.shape)}, got {tuple(mask.shape)}")

    def inputs(self, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """y checked, with the mask appended as a channel when the network takes one."""
        self.check(y, mask)
        if not self.mask_channel:
            return y
        if mask is None:
            raise ValueError(f"{type(self).__name__} was built with mask_channel=true: call it as net(y, mask)")
        return torch.cat([y, mask.to(y.dtype)], dim=1)

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError
