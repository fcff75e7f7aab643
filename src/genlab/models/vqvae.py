"""VQ-VAE: a discrete-latent autoencoder; new images come from a prior over its codes (vqvae_prior)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from genlab.logs import writes_this_step
from genlab.metrics import paired


class CodebookAutoencoder:
    """What the discrete autoencoders (VQ-VAE, VQGAN) share, mixed in before their Lightning base:
    encoder → quantiser → decoder, the :class:`~genlab.surfaces.Coder` surface (``encode``,
    ``decode``, ``image_size``, ``code_shape``, ``num_codes``), ``reconstruct``, previews and the
    validation metrics below. Families build the three parts with :meth:`build_coder` and save
    ``image_size`` among their hyper-parameters.

    Logged on the validation set: ``val/mse`` (on [-1, 1] pixels), ``val/nmse`` = MSE / variance of
    the validation pixels (the VQ-VAE notebook's normalisation; scale free), ``val/psnr`` = mean over
    images of 10 log10(2² / MSE) (peak-to-peak 2 on [-1, 1], the same number as on [0, 1] with
    peak 1), ``val/perplexity`` = exp(entropy of the code histogram) and ``val/code_usage`` = the
    fraction of the K codes used at least once.
    """

    best_metric = ("val/nmse", "min")  # what callbacks=metrics' best checkpoint keeps (no samples to score)

    def build_coder(
        self, encoder: Mapping[str, Any], decoder: Mapping[str, Any], quantizer: Mapping[str, Any], channels: int
    ) -> None:
        self.quantizer = instantiate(quantizer)
        dim = {"channels": channels, "code_dim": self.quantizer.code_dim}
        self.encoder = instantiate(encoder, **dim)
        self.decoder = instantiate(decoder, **dim)
        if self.image_size % self.encoder.factor:
            raise ValueError(
                f"data.image_size={self.image_size} is not divisible by the encoder's {self.encoder.factor}"
            )
        self._stats: torch.Tensor | None = None  # validation sums for the epoch-level metrics

    @property
    def image_size(self) -> int:
        """Side of the training images; ``encode`` expects this size."""
        return self.hparams.image_size

    @property
    def code_shape(self) -> tuple[int, int]:
        """(h, w) of the code map of one training-size image."""
        side = self.image_size // self.encoder.factor
        return side, side

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(x̂ unclamped, code indices [N, h, w], quantiser loss terms). Updates the codebook
        statistics in training mode."""
        z_q, indices, terms = self.quantizer(self.encoder(x))
        return self.decoder(z_q), indices, terms

    def on_validation_epoch_start(self) -> None:
        # per code: counts; then Σ squared error, Σ x, Σ x², number of pixels (float64 sums)
        self._stats = torch.zeros(self.num_codes + 4, dtype=torch.float64, device=self.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch[0]
        recon, indices, _ = self(x)
        squared = (recon - x).pow(2)
        self._stats[: self.num_codes] += torch.bincount(indices.flatten(), minlength=self.num_codes)
        sums = [squared.sum(), x.sum(), x.pow(2).sum(), torch.tensor(float(x.numel()), device=x.device)]
        self._stats[self.num_codes :] += torch.stack(sums).double()
        scores = paired.scores(recon, x, ("mse", "psnr"))
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, batch_size=x.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        stats = self.trainer.strategy.reduce(self._stats, reduce_op="sum")
        counts, (sse, total, squares, pixels) = stats[: self.num_codes], stats[self.num_codes :]
        variance = squares / pixels - (total / pixels) ** 2
        self.log_dict(
            {
                "val/nmse": float(sse / pixels / variance),
                "val/perplexity": float(perplexity(counts)),
                "val/code_usage": float((counts > 0).double().mean()),
            }
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices [N, h, w] of images in [-1, 1]; no codebook update whatever the mode."""
        z_e = self.encoder(x)
        n, d, h, w = z_e.shape
        return self.quantizer.nearest(z_e.permute(0, 2, 3, 1).reshape(-1, d)).view(n, h, w)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from code indices [N, h, w]."""
        if indices.dim() != 3:
            raise ValueError(f"expected code indices [N, h, w], got {tuple(indices.shape)}")
        return self.decoder(self.quantizer.lookup(indices)).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        x = batch[0]
        return {"reconstructions": (torch.cat([x, self.reconstruct(x)]), len(x))}


class VQVAE(CodebookAutoencoder, L.LightningModule):
    """VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, arXiv:1711.00937).

    z_e = E(x) [N, D, H/4, W/4]; each vector is replaced by its nearest code e_k of a K x D codebook,
    k = argmin_j ‖z_e − e_j‖₂; the decoder reconstructs x̂ = G(z_q). Gradients pass from z_q to z_e
    unchanged (straight-through). The loss (paper's eq. 3) is

        L = ‖x − x̂‖² / data_variance + ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²,   β = commitment_weight

    where the middle (codebook) term is dropped when the quantiser is the EMA one (appendix A.1).
    Squared norms are means over elements. ``data_variance`` = 1 gives plain MSE on [-1, 1] pixels;
    the reference notebook divides by the training set's variance instead. Validation metrics: see
    :class:`CodebookAutoencoder`.
    """

    def __init__(
        self,
        encoder: Mapping[str, Any],
        decoder: Mapping[str, Any],
        quantizer: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        image_size: int = 32,  # of the training images; the prior reads the code map's size from it
        channels: int = 3,
        commitment_weight: float = 0.25,  # β
        data_variance: float = 1.0,  # divides the reconstruction MSE; 1 = plain MSE
    ):
        super().__init__()
        self.save_hyperparameters()
        self.build_coder(encoder, decoder, quantizer, channels)

    def configure_optimizers(self):
        return instantiate(self.hparams.optimizer)(self.parameters())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0]
        recon, indices, terms = self(x)
        mse = F.mse_loss(recon, x)
        loss = (
            mse / self.hparams.data_variance + terms["codebook"] + self.hparams.commitment_weight * terms["commitment"]
        )
        if writes_this_step(self.trainer):
            self.log_dict(
                {
                    "train/loss": loss.detach(),
                    "train/mse": mse.detach(),
                    "train/commitment": terms["commitment"].detach(),
                    "train/perplexity": perplexity(torch.bincount(indices.flatten(), minlength=self.num_codes)),
                }
            )
        return loss


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(H(p)) of the code histogram p = counts / Σ counts: K when all K codes are used equally."""
    p = counts.double() / counts.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())
