"""The ResNet image-to-image generator of CycleGAN (Zhu et al. 2017, arXiv:1703.10593, appendix 7.2),
after Johnson et al. 2016 (arXiv:1603.08155).

    c7s1-ngf, d(2·ngf), d(4·ngf), n_blocks × R(4·ngf), u(2·ngf), u(ngf), c7s1-channels, tanh

(``downsampling`` = 2, the paper's; 1 keeps the blocks at half the input size: c7s1-ngf, d(2·ngf),
n_blocks × R(2·ngf), u(ngf), c7s1-channels, tanh.)

``c7s1-k``: reflection-padded 7×7 conv, stride 1, k filters, norm, ReLU; ``dk``: 3×3 conv, stride 2;
``Rk``: two reflection-padded 3×3 convs with a skip; ``uk``: 3×3 transposed conv, stride ½, or with
``upsample="nearest"`` a nearest-neighbour ×2 resize and a reflection-padded 3×3 conv (the resize-
convolution of Odena et al. 2016, distill.pub/2016/deconv-checkerboard: no checkerboard on flat areas).
The paper uses 6 blocks at 128 px and 9 at 256 px. Fully convolutional: any height and width that
are multiples of :attr:`Generator.size_multiple` map to an output of the same size.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from genlab.networks.dcgan import init_weights

Norm = Literal["instance", "batch", "none"]
Upsample = Literal["transpose", "nearest"]


def paper_n_blocks(image_size: int) -> int:
    """Residual blocks the paper uses for training images of ``image_size`` px: 6 up to 128, 9 above
    (``${resnet_blocks:${data.image_size}}`` in conf/model/cyclegan.yaml)."""
    return 6 if int(image_size) <= 128 else 9


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """The reference implementation's norms: instance norm without affine parameters or running
    statistics (normalises every image by itself, in training and at test), or batch norm."""
    layers = {
        "instance": lambda: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False),
        "batch": lambda: nn.BatchNorm2d(channels),
        "none": nn.Identity,
    }
    if norm not in layers:
        raise ValueError(f"norm={norm!r}: choose one of {', '.join(layers)}")
    return layers[norm]()


def conv_bias(norm: Norm) -> bool:
    # Batch norm's shift makes a conv bias redundant; instance norm without affine parameters
    # removes it again per image, but the reference keeps it (and its parameter count with it).
    return norm != "batch"


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: Norm, dropout: float):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Generator(nn.Module):
    """image [N, channels, H, W] in [-1, 1] -> image of the same shape in [-1, 1]."""

    def __init__(
        self,
        channels: int = 3,
        out_channels: int | None = None,  # None = channels
        ngf: int = 64,  # filters of the first layer; the blocks have ngf·2^downsampling
        n_blocks: int = 9,  # residual blocks: 9 at 256 px, 6 at 128 px in the paper
        norm: Norm = "instance",
        dropout: float = 0.0,  # in the residual blocks; the reference's --no_dropout default is 0
        upsample: Upsample = "transpose",  # the paper's transposed convs, or "nearest" resize + conv
        downsampling: int = 2,  # stride-2 convs before the blocks (and upsamplings after): the paper's 2
    ):
        super().__init__()
        if downsampling < 0:
            raise ValueError(f"downsampling={downsampling}: a number of stride-2 convs, >= 0")
        self.channels = channels
        self.size_multiple = 2**downsampling  # H and W must be multiples of it
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        c = ngf
        for _ in range(downsampling):
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
            c *= 2
        layers += [ResidualBlock(c, norm, dropout) for _ in range(n_blocks)]
        if upsample not in ("transpose", "nearest"):
            raise ValueError(f"upsample={upsample!r}: choose transpose or nearest")
        for _ in range(downsampling):
            if upsample == "transpose":
                layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            else:
                layers += [nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(c, c // 2, 3, bias=bias)]
            layers += [norm_layer(norm, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels or channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)  # N(0, 0.02), as the reference's init_type=normal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images [N, {self.channels}, H, W], got {tuple(x.shape)}")
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(
                f"height and width must be multiples of {self.size_multiple}, got {tuple(x.shape[-2:])}; "
                "pad the image (translate.py does) or resize it"
            )
        return self.net(x)
