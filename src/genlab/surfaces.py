"""What a trained model can do, declared once: the surfaces the CLIs, callbacks, metrics and benches call.

Every family exposes some of these small protocols and nothing else is looked up by the code that
consumes models. A family without a surface a parent class gives it sets the method to ``None``
(CycleGAN's ``sample = None``), the convention ``typing.Protocol`` itself reads as "not there".
:func:`surfaces` is the one dispatcher; :func:`require` turns "cannot" into a message that says what
the model *can* do and the command for it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from genlab.errors import UserError


@runtime_checkable
class Sampler(Protocol):
    """Unconditional generators: ``n`` new images in [-1, 1], drawn with ``generator``'s randomness."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class StyleSampler(Protocol):
    """Style-based generators: truncated samples, style-mixing grids and W-space interpolations."""

    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation_psi: float | None = None
    ) -> torch.Tensor: ...

    def style_mixing_grid(self, rows: int, cols: int, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def interpolate(self, n: int, steps: int = 8, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """Two-domain models: images of one domain to the other, same shape (``direction``: a2b | b2a)."""

    def translate(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor: ...


@runtime_checkable
class Autoencoder(Protocol):
    """Models that reproduce their input; ``encode`` / ``decode`` where the codes are a thing of their own."""

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Coder(Protocol):
    """Autoencoders with discrete codes a second stage can model (VQ-VAE, VQGAN): ``encode`` maps
    images of ``image_size`` px to code indices [N, h, w] with (h, w) = ``code_shape``, each in
    [0, ``num_codes``); ``decode`` maps such indices back to images in [-1, 1]. A prior over the
    codes (``model=vqvae_prior``) needs exactly this and nothing of the family's class."""

    image_size: int
    num_codes: int
    code_shape: tuple[int, int]

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Restorer(Protocol):
    """Image restoration: the clean estimate of a degraded image ``y``; where ``mask`` (1 = missing pixel)
    is given the known pixels of ``y`` are kept exactly."""

    def restore(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class Likelihood(Protocol):
    """Models with a tractable bound on −log p(x): nats per image."""

    def importance_weighted_nll(
        self, x: torch.Tensor, k: int = 1000, chunk: int = 100, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


# What each surface is called in messages, and the command that uses it ({ckpt} filled in).
USES = {
    Sampler: ("sample new images", "python generate.py ckpt={ckpt} n=64"),
    StyleSampler: (
        "truncate, mix styles and interpolate in W",
        "python generate.py ckpt={ckpt} truncation_psi=0.7 | mode=mixing | mode=interpolate",
    ),
    Translator: ("translate images", "python translate.py ckpt={ckpt} input=DIR direction=a2b"),
    Autoencoder: ("reconstruct images", "python evaluate.py ckpt={ckpt} metrics='[mse,psnr,ssim]'"),
    Coder: (
        "encode images to discrete codes (train a prior over them to sample)",
        "python train.py model=vqvae_prior model.vqvae_ckpt={ckpt}",
    ),
    Restorer: ("restore degraded images", "python restore.py ckpt={ckpt} input=FILE_OR_DIR"),
    Likelihood: ("bound the likelihood of images", "python evaluate.py ckpt={ckpt} metrics='[nll]'"),
}


def surfaces(model) -> list[type]:
    """The surfaces ``model`` implements, in the order of :data:`USES`."""
    return [surface for surface in USES if isinstance(model, surface)]


def can(model, surface: type) -> bool:
    return isinstance(model, surface)


class MissingSurface(UserError):
    """The model cannot do what was asked; the message says what it can do instead."""


def describe(model, ckpt: str = "CKPT") -> str:
    """'<Class> can: sample new images (python generate.py ...); ...' for every surface it has."""
    found = surfaces(model)
    if not found:
        return f"{type(model).__name__} implements none of genlab's surfaces"
    uses = "; ".join(f"{USES[s][0]} ({USES[s][1].format(ckpt=ckpt)})" for s in found)
    return f"{type(model).__name__} can: {uses}"


def require(model, surface: type, ckpt: str = "CKPT") -> None:
    """Raise :class:`MissingSurface` unless ``model`` implements ``surface``."""
    if not can(model, surface):
        raise MissingSurface(f"{type(model).__name__} cannot {USES[surface][0]}. {describe(model, ckpt)}")
