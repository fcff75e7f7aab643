"""Perceptual distances for training losses: how far a reconstruction is from its input in some
network's features rather than in pixels.

VQGAN (Esser et al. 2021) adds LPIPS (Zhang et al. 2018) to its L1 term. LPIPS stands on an ImageNet
backbone that the LPIPS packages download on first use; genlab never downloads implicitly, so two
distances share one call, ``distance(recon, real, discriminator) -> scalar``, and ``prepare()``, which
reads what the distance needs from disk before training starts:

- :class:`FeatureMatching` needs nothing from outside: the L1 distance between the hidden features
  the model's own discriminator computes for the real image and for its reconstruction
  (feature matching, Wang et al. 2018, arXiv:1711.11585, as pix2pixHD uses it).
- :class:`LPIPS` when the user has the backbone's weights on disk (``backbone_weights=PATH``, or the
  file in torch's hub cache); the linear heads ship with torchmetrics.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab import losses
from genlab.errors import MissingFile
from genlab.metrics.functional import LPIPS_BACKBONES

# torchvision's constructor of each LPIPS backbone; torchmetrics' slices index its ``features``.
TORCHVISION_NAMES = {"vgg": "vgg16", "alex": "alexnet", "squeeze": "squeezenet1_1"}


class FeatureMatching(nn.Module):
    """Σ_l mean|D_l(x) − D_l(x̂)| / n_layers over the discriminator's hidden layers l.

    Real and reconstructed images go through D as one batch, so that batch-normalised layers see the
    same statistics for both. Gradients reach x̂ through D; D's own weights must be frozen by the
    caller (the generator's update toggles them off).
    """

    def prepare(self) -> None:
        """Nothing to read: the features are the discriminator's."""

    def forward(self, recon: torch.Tensor, real: torch.Tensor, discriminator: nn.Module) -> torch.Tensor:
        halves = [f.chunk(2) for f in discriminator.features(torch.cat([real, recon]))]
        return losses.feature_matching_loss([fake for _, fake in halves], [true for true, _ in halves], power=1)


class LPIPS(nn.Module):
    """LPIPS (Zhang et al. 2018, arXiv:1801.03924) as a differentiable loss: the batch mean of the
    learned distance between ``recon`` and ``real`` in [-1, 1]. taming-transformers uses the VGG16
    variant (``net=vgg``).

    The backbone is read from ``backbone_weights`` (torchvision's ImageNet file,
    ``vgg16-397923af.pth`` for vgg) or, when that is None, from torch's hub cache, and never
    downloaded. It is read by :meth:`prepare` (the VQGAN calls it when training starts, so a missing
    file stops the run before its first step) and is not part of the model's state: checkpoints stay
    small, and a model that only encodes and decodes (the prior's first stage) never needs the file.
    """

    def __init__(self, net: str = "vgg", backbone_weights: str | None = None):
        super().__init__()
        if net not in TORCHVISION_NAMES:
            raise ValueError(f"LPIPS net={net!r}: choose one of {sorted(TORCHVISION_NAMES)}")
        self.net, self.backbone_weights = net, backbone_weights
        self._lpips: nn.Module | None = None  # built by prepare(); kept out of the module tree

    def weights_path(self) -> Path:
        if self.backbone_weights:
            return Path(self.backbone_weights).expanduser()
        return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[self.net]

    def prepare(self) -> None:
        """Build the frozen LPIPS network from the backbone file; raises :class:`MissingFile` naming it."""
        if self._lpips is not None:
            return
        path = self.weights_path()
        if not path.is_file():
            raise MissingFile(
                f"LPIPS ({self.net}) needs torchvision's ImageNet {TORCHVISION_NAMES[self.net]} weights at {path}, "
                f"which are not there; genlab does not download them. Copy {LPIPS_BACKBONES[self.net]} there "
                "(model.perceptual.backbone_weights=PATH), or train with the offline perceptual term "
                "(model.perceptual._target_=genlab.networks.perceptual.FeatureMatching)"
            )
        import torchvision
        from torchmetrics.functional.image.lpips import _LPIPS  # torchmetrics' LPIPS module (private name)

        # pnet_rand: a randomly initialised backbone, so torchmetrics downloads nothing; its linear
        # heads (lpips_models/<net>.pth) ship inside the torchmetrics package.
        lpips = _LPIPS(pretrained=True, net=self.net, pnet_rand=True)
        backbone = getattr(torchvision.models, TORCHVISION_NAMES[self.net])(weights=None)
        backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        # torchmetrics cuts ``features`` into Sequential slices whose layers keep their index as name.
        for stage in (m for m in lpips.net.modules() if isinstance(m, nn.Sequential)):
            for index, layer in stage.named_children():
                layer.load_state_dict(backbone.features[int(index)].state_dict())
        lpips.requires_grad_(False).eval()
        object.__setattr__(self, "_lpips", lpips)  # a frozen tool, not a submodule: not saved, not trained

    def forward(self, recon: torch.Tensor, real: torch.Tensor, discriminator: nn.Module | None = None) -> torch.Tensor:
        self.prepare()
        lpips = self._lpips.to(recon.device)
        return lpips(recon, real).mean()
