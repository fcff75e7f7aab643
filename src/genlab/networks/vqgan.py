"""VQGAN's convolutional encoder and decoder (Esser, Rombach & Ommer 2021, arXiv:2012.09841), the
architecture of taming-transformers (after the DDPM U-Net halves of Ho et al. 2020).

    Encoder: conv3x3(ch) → per level i: num_res_blocks × ResBlock(ch·ch_mult[i]) (+ attention where the
             map is one of attn_resolutions), then a stride-2 conv except at the last level
             → ResBlock, attention, ResBlock → GroupNorm, swish, conv3x3(z_channels) → 1x1 conv(code_dim)
    Decoder: the mirror image, with num_res_blocks + 1 blocks per level and nearest-neighbour ×2
             upsampling followed by a 3x3 conv; ends in conv3x3(channels) (unbounded, no tanh)

ResBlocks are GroupNorm(32) → swish → conv3x3 → GroupNorm → swish → dropout → conv3x3, plus a 1x1
shortcut where the width changes; attention is single-head self-attention over the h·w positions.
taming's 1x1 ``quant_conv`` / ``post_quant_conv`` between z_channels and the code dimension are the
encoder's last and the decoder's first layer here. The downsampling factor is 2^(len(ch_mult) − 1):
ch_mult = (1, 1, 2, 2, 4) is taming's f16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.networks import vqvae


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int = 32, dropout: float = 0.0):
        super().__init__()
        self.block = nn.Sequential(
            group_norm(c_in, groups),
            nn.SiLU(),
            nn.Conv2d(c_in, c_out, 3, 1, 1),
            group_norm(c_out, groups),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class Attention(nn.Module):
    """x + proj(softmax(q kᵀ / √c) v) over the h·w positions of a [N, c, h, w] map."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=-1)  # each [N, hw, c]
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(1, 2).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 conv with taming's asymmetric padding (one pixel right and bottom)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def level(c_in: int, c_out: int, blocks: int, attention: bool, groups: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(blocks):
        layers.append(ResBlock(c_in, c_out, groups, dropout))
        layers += [Attention(c_out, groups)] if attention else []
        c_in = c_out
    return layers


def middle(channels: int, groups: int, dropout: float) -> list[nn.Module]:
    return [ResBlock(channels, channels, groups, dropout), Attention(channels, groups)] + [
        ResBlock(channels, channels, groups, dropout)
    ]


class Encoder(nn.Module):
    """image [N, channels, S, S] -> z_e [N, code_dim, S / factor, S / factor], factor = 2^(len(ch_mult) − 1)."""

    def __init__(
        self,
        channels: int = 3,
        code_dim: int = 256,  # taming's embed_dim
        image_size: int = 256,  # taming's resolution: places attn_resolutions
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),  # map sides (px) with self-attention after each block
        z_channels: int = 256,
        dropout: float = 0.0,
        groups: int = 32,  # GroupNorm groups (at most the channel count)
    ):
        super().__init__()
        self.factor = 2 ** (len(ch_mult) - 1)
        widths = [ch * m for m in ch_mult]
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 3, 1, 1)]
        c, side = ch, image_size
        for i, width in enumerate(widths):
            layers += level(c, width, num_res_blocks, side in attn_resolutions, groups, dropout)
            c = width
            if i < len(widths) - 1:
                layers.append(Downsample(c))
                side //= 2
        layers += middle(c, groups, dropout)
        layers += [
            group_norm(c, groups),
            nn.SiLU(),
            nn.Conv2d(c, z_channels, 3, 1, 1),
            nn.Conv2d(z_channels, code_dim, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vqvae.check_divisible(x, self.factor)
        return self.net(x)


class Decoder(nn.Module):
    """z_q [N, code_dim, h, w] -> image [N, channels, h·factor, w·factor] (unbounded)."""

    def __init__(
        self,
        channels: int = 3,
        code_dim: int = 256,
        image_size: int = 256,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        z_channels: int = 256,
        dropout: float = 0.0,
        groups: int = 32,
    ):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        c, side = widths[-1], image_size // 2 ** (len(ch_mult) - 1)
        layers: list[nn.Module] = [nn.Conv2d(code_dim, z_channels, 1), nn.Conv2d(z_channels, c, 3, 1, 1)]
        layers += middle(c, groups, dropout)
        for i in reversed(range(len(widths))):
            layers += level(c, widths[i], num_res_blocks + 1, side in attn_resolutions, groups, dropout)
            c = widths[i]
            if i > 0:
                layers.append(Upsample(c))
                side *= 2
        layers += [group_norm(c, groups), nn.SiLU(), nn.Conv2d(c, channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> torch.Tensor:
        """The output convolution's weight, where VQGAN balances its loss terms' gradients."""
        return self.net[-1].weight

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)
