"""VQGAN: a VQ-VAE whose reconstructions a patch discriminator and a perceptual distance judge, so that
codes at 16× compression still decode to sharp images; a prior over its codes (vqvae_prior) samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from genlab import losses
from genlab.logs import writes_this_step
from genlab.models.adversarial import AdversarialModule
from genlab.models.vqvae import CodebookAutoencoder, perplexity


class VQGAN(CodebookAutoencoder, AdversarialModule):
    """VQGAN, the first stage of Esser, Rombach & Ommer 2021 (arXiv:2012.09841), as taming-transformers
    trains it.

    x̂ = G(z_q), z_q = q(E(x)) by the VQ-VAE's nearest-code quantiser (straight-through gradients).
    The autoencoder (E, G and the codebook) minimises, per batch,

        L_AE = L_rec + ‖sg[z_e] − z_q‖² + β ‖z_e − sg[z_q]‖² + f_t · λ · L_G(D(x̂))
        L_rec = ‖x − x̂‖₁ + w_p · P(x̂, x)

    and the PatchGAN D minimises f_t · L_D(D(x), D(sg[x̂])), where

        λ = disc_weight · clamp(‖∇_L L_rec‖ / (‖∇_L L_G‖ + 10⁻⁴), 0, max_adaptive_weight)

    at the decoder's last layer L (the paper's eq. 7; the clamp and ``disc_weight`` are taming's;
    :func:`genlab.losses.adaptive_weight`), and f_t = 0 for the first ``disc_start`` batches of the
    run, 1 afterwards (taming's ``global_step >= disc_start``, counted here by ``batches_seen``,
    which never resets): until then D is not updated and the autoencoder learns to reconstruct alone. ‖·‖₁ and ‖·‖² are means over elements. Hinge losses by default
    (``model/loss=hinge``): L_D = E[max(0, 1 − D(x))] + E[max(0, 1 + D(x̂))], L_G = −E[D(x̂)]
    (taming halves L_D, which Adam's scale invariance makes immaterial).

    Commitment: the standard VQ-VAE form above, β (``commitment_weight``) on the encoder's term; with
    the EMA quantiser the codebook term is 0. taming's ``VectorQuantizer2`` defaults to a ``legacy``
    form that puts β on the codebook term instead, ‖sg[z_q] − z_e‖² + β ‖z_q − sg[z_e]‖² (pulling the
    encoder with weight 1 and the codes with β); its released models were trained that way, its
    ``legacy=False`` is this one.

    P (``perceptual``, weight w_p = ``perceptual_weight``; None = no term) is
    :class:`genlab.networks.perceptual.FeatureMatching` by default, the L1 distance between D's hidden
    features of x and x̂, which needs no download; the paper's LPIPS (VGG16) is
    :class:`genlab.networks.perceptual.LPIPS` given the backbone's weights on disk. Before
    ``disc_start`` D is untrained and feature matching compares random features.

    New images come from a prior over the codes: ``model=vqvae_prior model.vqvae_ckpt=<this ckpt>``.
    Validation metrics (``val/nmse`` kept by ``callbacks=metrics``): see :class:`CodebookAutoencoder`.
    """

    sample = None  # draws no images from noise; a prior over its codes does

    def __init__(
        self,
        encoder: Mapping[str, Any],
        decoder: Mapping[str, Any],
        quantizer: Mapping[str, Any],
        discriminator: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer_g: Mapping[str, Any],  # the autoencoder: encoder, decoder and codebook
        optimizer_d: Mapping[str, Any],
        perceptual: Mapping[str, Any] | None = None,  # a genlab.networks.perceptual distance; None = no term
        image_size: int = 32,
        channels: int = 3,
        commitment_weight: float = 0.25,  # β
        perceptual_weight: float = 1.0,  # w_p
        disc_weight: float = 0.8,  # multiplies the adaptive weight λ
        disc_start: int = 0,  # batches of the run before D trains and the adversarial term is on
        max_adaptive_weight: float = 1e4,  # the clamp of ‖∇L_rec‖ / ‖∇L_G‖
        grad_clip: float | None = None,
    ):
        super().__init__(grad_clip=grad_clip)
        self.save_hyperparameters()
        self.build_coder(encoder, decoder, quantizer, channels)
        self.discriminator = instantiate(discriminator)
        self.perceptual = instantiate(perceptual) if perceptual is not None else None
        self.init_losses(loss)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.perceptual is not None:
            self.perceptual.prepare()  # a missing LPIPS backbone stops the run here, not at its first step

    def configure_optimizers(self):
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters(), *self.quantizer.parameters()]
        return (
            self.build_optimizer(self.hparams.optimizer_g, autoencoder),
            self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters()),
        )

    def adversarial_on(self) -> bool:
        """Whether this batch trains D and adds the adversarial term (f_t = 1)."""
        return int(self.batches_seen) >= self.hparams.disc_start

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        adversarial = self.adversarial_on()

        with self.toggled_optimizer(opt_g):  # D frozen: the adversarial and feature terms flow through it
            recon, indices, vq = self(real)
            terms = {"l1": F.l1_loss(recon, real)}
            rec_loss = terms["l1"]
            if self.perceptual is not None:
                terms["perceptual"] = self.perceptual(recon, real, self.discriminator)
                rec_loss = rec_loss + self.hparams.perceptual_weight * terms["perceptual"]
            loss = rec_loss + vq["codebook"] + self.hparams.commitment_weight * vq["commitment"]
            if adversarial:
                terms["g_adv"] = self.g_loss(self.discriminator(recon))
                weight = losses.adaptive_weight(
                    rec_loss, terms["g_adv"], self.decoder.last_layer, self.hparams.max_adaptive_weight
                )
                terms["adaptive_weight"] = self.hparams.disc_weight * weight
                loss = loss + terms["adaptive_weight"] * terms["g_adv"]
            self.update(opt_g, loss)
            terms.update(loss_g=loss, commitment=vq["commitment"])

        if adversarial:
            with self.toggled_optimizer(opt_d):
                logits_real = self.discriminator(real)
                logits_fake = self.discriminator(recon.detach())
                terms["loss_d"] = self.d_loss(logits_real, logits_fake)
                self.update(opt_d, terms["loss_d"])
                terms.update(d_real=logits_real.mean(), d_fake=logits_fake.mean())

        if writes_this_step(self.trainer):
            counts = torch.bincount(indices.flatten(), minlength=self.num_codes)
            self.log_dict(
                {f"train/{k}": v.detach() for k, v in terms.items()} | {"train/perplexity": perplexity(counts)}
            )
