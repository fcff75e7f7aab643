"""Feature extractors for the sample-quality metrics. Each has a ``name`` that goes into every
metric key (``val/fid1000[classifier]``) and a ``provenance`` string that goes into metrics.json.

Both take images NCHW in [-1, 1] (the framework's convention) and return
``{"features": [N, D] float32, "logits": [N, K] float32 or None}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from torch import nn

from genlab.metrics import inception
from genlab.metrics.classifier import DomainClassifier


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to the uint8 a PNG would hold: rounded, not truncated."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class Inception(nn.Module):
    """The 2015 TF-Inception-v3 (2048 pool features; 1008 logits when the weights have them).

    Input goes through torch-fidelity's extractor unchanged: uint8 (rounded), grey repeated to RGB,
    TF1-compatible bilinear resize to 299 without antialiasing, (x − 128) / 128.
    """

    name = "inception"

    def __init__(self, weights: str | None = "auto", allow_download: bool = True):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path, self.provenance, self.has_logits = inception.resolve_weights(weights, allow_download)
        features = ["2048", "logits_unbiased"] if self.has_logits else ["2048"]
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", features, feature_extractor_weights_path=str(path) if path else None
        )
        self.dim = 2048

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | None]:
        x = to_uint8(images)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out = self.net(x)
        return {"features": out[0], "logits": out[1] if self.has_logits else None}


def classifier_file(weights: str) -> Path:
    """A shipped domain name (``digits``, ``shapes``) or a path to a file from train_classifier."""
    shipped = resources.files("genlab") / "assets" / f"classifier_{weights}.pt"
    if shipped.is_file():
        return Path(str(shipped))
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"no classifier weights '{weights}': use a shipped domain (digits, shapes) or a file written by "
            "`python -m genlab.metrics.train_classifier`"
        )
    return path


class Classifier(nn.Module):
    """A small CNN trained by genlab on an embedded labelled dataset (see train_classifier.py):
    penultimate features and class logits, fast enough on CPU to evaluate every epoch."""

    name = "classifier"

    def __init__(self, weights: str = "digits"):
        super().__init__()
        if weights == "auto":
            raise ValueError(
                "classifier weights=auto means the classifier of a run's data, and there is no run here; "
                "name one: extractor.weights=digits|shapes|FILE"
            )
        path = classifier_file(weights)
        saved = torch.load(path, map_location="cpu", weights_only=True)
        self.net = DomainClassifier(**saved["config"])
        self.net.load_state_dict(saved["state_dict"])
        self.net.requires_grad_(False).eval()
        self.has_logits = True
        self.dim = self.net.feature_dim
        self.provenance = (
            f"genlab classifier on {saved['dataset']} ({path.name}, sha1 {inception.sha1(path)[:10]}, "
            f"val accuracy {saved['val_accuracy']:.3f})"
        )

    def train(self, mode: bool = True) -> Classifier:  # always an evaluator: no dropout, fixed BN
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | None]:
        if images.shape[1] != self.net.channels:
            raise ValueError(
                f"the {self.provenance} takes {self.net.channels}-channel images, got {images.shape[1]}; "
                "pick the classifier of this domain (extractor.weights=digits|shapes|FILE) or the inception extractor"
            )
        # Same rounding as Inception: the metric sees what a PNG of the sample would hold.
        x = to_uint8(images).float() / 127.5 - 1
        if x.shape[-1] != self.net.image_size or x.shape[-2] != self.net.image_size:
            x = F.interpolate(x, size=self.net.image_size, mode="bilinear", antialias=True, align_corners=False)
        features, logits = self.net(x)
        return {"features": features, "logits": logits}


def for_data(config: Mapping[str, Any], datamodule) -> nn.Module:
    """Build an extractor config for ``datamodule``'s images. ``Classifier`` with ``weights: auto``
    takes the classifier shipped for that data's domain (the datamodule's ``domain_classifier``)."""
    config = dict(config)
    if config.get("weights") == "auto" and issubclass(get_class(config["_target_"]), Classifier):
        domain = getattr(datamodule, "domain_classifier", None)
        if domain is None:
            raise ValueError(
                f"no classifier ships for {type(datamodule).__name__} (shipped: digits, shapes); set the extractor's "
                "weights to a file from `python -m genlab.metrics.train_classifier`, or use the inception extractor"
            )
        config["weights"] = domain
    return instantiate(config)
