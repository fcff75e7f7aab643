"""Pretrained feature networks for perceptual losses, built from a weights file the user gives.

Nothing is downloaded: the weights are a file on this machine, read with ``weights_only=True``
(a state dict is tensors; a pickle that runs code is refused). A restoration model builds these
only to train (``model.feature_network``), keeps them out of its checkpoint, and needs no file to
restore images later.

:class:`VGG` is the perceptual loss's usual network (Johnson et al. 2016, arXiv:1603.08155, on
VGG-16; ESRGAN and SRGAN on VGG-19), taking torchvision's ImageNet files as they are:
``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` (the files torchvision and LPIPS cache in
``~/.cache/torch/hub/checkpoints``; https://download.pytorch.org/models/<file>).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from genlab.errors import ConfigError, MissingFile

# Convolutions per block (max-pooled between blocks): configurations D and E of Simonyan & Zisserman 2014.
VGG_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict(path: str | Path, who: str) -> dict[str, torch.Tensor]:
    """A state dict from ``path``, read as data; errors say which file and how to get one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFile(
            f"{who}: weights file {path} does not exist; give the path of a state dict on this machine "
            "(e.g. torchvision's https://download.pytorch.org/models/vgg19-dcbb9e9d.pth)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{who}: {path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


class VGG(nn.Module):
    """images [N, 1|3, H, W] in [-1, 1] -> the activations named in ``layers`` (``relu<block>_<conv>``,
    e.g. ``relu2_2``), in that order. Only the layers up to the deepest one asked for are built and
    loaded (torchvision's ``features.<i>.weight`` keys). Grey images are repeated to RGB; all are
    normalised with ImageNet's statistics, as the weights expect."""

    def __init__(
        self,
        weights: str,  # a torchvision VGG state dict (the whole classifier, or its `features` only)
        depth: int = 19,  # 16 or 19
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
    ):
        super().__init__()
        if depth not in VGG_BLOCKS:
            raise ConfigError(f"VGG depth={depth}: 16 or 19")
        names, modules = [], []
        for block, (convs, width) in enumerate(zip(VGG_BLOCKS[depth], VGG_WIDTHS), start=1):
            if block > 1:
                names.append(f"pool{block - 1}")
                modules.append(nn.MaxPool2d(2, 2))
            for conv in range(1, convs + 1):
                names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
                modules += [nn.Conv2d(modules_width(modules), width, 3, padding=1), nn.ReLU(inplace=False)]
        unknown = [name for name in layers if not name.startswith("relu") or name not in names]
        if unknown or not layers:
            relus = [n for n in names if n.startswith("relu")]
            raise ConfigError(f"VGG{depth} layers {list(layers)}: unknown {unknown}; choose from {relus}")
        last = max(names.index(name) for name in layers)
        self.features = nn.Sequential(*modules[: last + 1])  # indices match torchvision's `features`
        self.taps = {names.index(name): i for i, name in enumerate(layers)}
        state = load_state_dict(weights, f"VGG{depth} feature network")
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        missing = [k for k in self.state_dict() if k not in wanted]
        if missing:
            raise ConfigError(
                f"{weights} is not a VGG{depth} state dict with torchvision's key names: no {missing[:3]}"
            )
        self.load_state_dict({k: wanted[k] for k in self.state_dict()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.expand(-1, 3, -1, -1) * 0.5 + 0.5 - self.mean) / self.std
        found: list[torch.Tensor | None] = [None] * len(self.taps)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                found[self.taps[i]] = x
        return found


def modules_width(modules: list[nn.Module]) -> int:
    """Channels coming out of the last convolution built so far (3 for the first)."""
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else 3
