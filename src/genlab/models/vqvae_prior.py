"""Second stage of a discrete autoencoder (VQ-VAE, VQGAN): an autoregressive prior over its code maps,
which makes it a generator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate

from genlab import surfaces
from genlab.checkpoint import MODEL_CLASS_KEY, read_checkpoint
from genlab.logs import writes_this_step
from genlab.models.adversarial import evaluating


class VQVAEPrior(L.LightningModule):
    """Autoregressive prior over a frozen VQ-VAE's codes (van den Oord et al. 2017,
    arXiv:1711.00937, section 3.2), here a small causal transformer instead of the paper's PixelCNN.
    Any :class:`~genlab.surfaces.Coder` serves as the first stage (a VQGAN's codes, as Esser et al.
    2021 model them, work the same way): the prior uses its ``encode``, ``decode``, ``image_size``,
    ``code_shape`` and ``num_codes`` and nothing of its class.

    With c = (c_1, ..., c_L) the raster-ordered code map of x (L = h·w), the prior
    p_ψ(c) = Π_t p_ψ(c_t | c_<t) is fit by maximum likelihood,

        L(ψ) = E_x[−Σ_t log p_ψ(c_t(x) | c_<t(x))],

    logged per code as ``train/nll`` / ``val/nll`` (nats) and per image as ``val/bits`` (bits to
    code one image's map). Sampling draws c_t in order, from softmax(logits / temperature)
    restricted to the ``top_k`` most likely codes (None: all), then decodes the map with the VQ-VAE.

    The first stage is read once from ``vqvae_ckpt``; its class and hyper-parameters are then copied into
    this model's own (``vqvae_class``, ``vqvae_hparams``) and its weights live in this checkpoint
    (submodule ``vqvae``), so the prior's checkpoint alone rebuilds the whole generator.
    """

    def __init__(
        self,
        vqvae_ckpt: str,
        transformer: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        temperature: float = 1.0,  # sampling: divides the logits; < 1 sharper, > 1 more diverse
        top_k: int | None = None,  # sampling: keep the k most likely codes at each step; None = all
        n_preview: int = 64,
        vqvae_class: str | None = None,  # filled from vqvae_ckpt on first construction
        vqvae_hparams: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        checkpoint = None
        if vqvae_hparams is None:  # first construction: read the VQ-VAE, record how to rebuild it
            checkpoint = read_checkpoint(vqvae_ckpt)
            self.hparams.vqvae_class = checkpoint[MODEL_CLASS_KEY]
            self.hparams.vqvae_hparams = dict(checkpoint["hyper_parameters"])
        self.vqvae = get_class(self.hparams.vqvae_class)(**self.hparams.vqvae_hparams)
        if not surfaces.can(self.vqvae, surfaces.Coder):
            raise surfaces.MissingSurface(
                f"model.vqvae_ckpt={vqvae_ckpt}: {type(self.vqvae).__name__} has no discrete codes for a prior "
                f"to model (train model=vqvae or model=vqgan for that). {surfaces.describe(self.vqvae, vqvae_ckpt)}"
            )
        if checkpoint is not None:
            self.vqvae.load_state_dict(checkpoint["state_dict"])
        self.vqvae.requires_grad_(False).eval()
        h, w = self.vqvae.code_shape
        self.transformer = instantiate(transformer, vocab_size=self.vqvae.num_codes, seq_len=h * w)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqvae.eval()  # frozen: no EMA codebook updates, no dropout, whatever Lightning asks
        return self

    def configure_optimizers(self):
        return instantiate(self.hparams.optimizer)(self.transformer.parameters())

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Raster-ordered code sequences [N, h·w] of images x."""
        expected = self.vqvae.image_size
        if x.shape[-1] != expected or x.shape[-2] != expected:
            raise ValueError(
                f"images are {tuple(x.shape[-2:])} but the {type(self.vqvae).__name__} was trained at {expected}px; "
                f"use its data (data.image_size={expected})"
            )
        return self.vqvae.encode(x).flatten(1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Mean −log p_ψ(c_t | c_<t) over codes and images, in nats."""
        codes = self.codes(x)
        logits = self.transformer(codes[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), codes.flatten())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.nll(batch[0])
        if writes_this_step(self.trainer):
            self.log("train/nll", loss.detach())
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch[0]
        nll = self.nll(x)
        length = self.transformer.seq_len
        self.log_dict({"val/nll": nll, "val/bits": nll * length / math.log(2)}, batch_size=x.shape[0], sync_dist=True)

    @torch.no_grad()
    def sample_codes(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """n code maps [n, h, w] drawn token by token (hparams' temperature / top_k unless given)."""
        temperature = self.hparams.temperature if temperature is None else temperature
        top_k = self.hparams.top_k if top_k is None else top_k
        if temperature <= 0 or (top_k is not None and top_k < 1):
            raise ValueError(f"need temperature > 0 and top_k >= 1 (or None), got {temperature}, {top_k}")
        cache, token, codes = self.transformer.new_cache(), None, []
        with evaluating(self.transformer):
            for _ in range(self.transformer.seq_len):
                logits = self.transformer.step(token, cache, n) / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
                codes.append(token)
        return torch.stack(codes, dim=1).view(n, *self.vqvae.code_shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        """n new images in [-1, 1]: codes from the prior (``temperature``, ``top_k``: see
        :meth:`sample_codes`), decoded by the VQ-VAE."""
        return self.vqvae.decode(self.sample_codes(n, generator, **options))

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        generator = torch.Generator(device=self.device).manual_seed(0)  # same draws every epoch
        return {"samples": (self.sample(self.hparams.n_preview, generator=generator), 8)}
