"""Unconditional GAN: DCGAN networks and the usual menu of losses and regularisers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate

from genlab import losses
from genlab.errors import ConfigError
from genlab.logs import writes_this_step
from genlab.models.adversarial import AdversarialModule


class GAN(AdversarialModule):
    """GAN (Goodfellow et al. 2014, arXiv:1406.2661) with DCGAN networks (Radford et al. 2015,
    arXiv:1511.06434) and the later losses/regularisers as options.

    With D's logits l(x) and σ the sigmoid, the original game is

        min_G max_D  V(D, G) = E_x[log σ(l(x))] + E_z[log(1 − σ(l(G(z))))]

    ``loss.d`` / ``loss.g`` name the pure functions in :mod:`genlab.losses`: ``minimax`` has G
    minimise V itself; ``nonsaturating`` (default) has G minimise −E_z[log σ(l(G(z)))] instead;
    ``hinge``, ``wasserstein`` and ``lsgan`` swap both sides. On top of the D loss:

        + λ_gp · E[(‖∇_x̂ D(x̂)‖₂ − 1)²]     (WGAN-GP, Gulrajani et al. 2017; lambda_gp=0: off)
        + γ/2 · E_x[‖∇_x D(x)‖²]           (R1, Mescheder et al. 2018; r1_gamma=0: off)

    With ``lr_decay_epochs`` > 0 both learning rates hold until that many epochs are left and then fall
    linearly to 0 (the policy of CycleGAN's reference code).
    D takes ``n_critic`` steps (one per batch) for every G step, counted over the whole run. With
    ``ema_kimg`` (half-life in kimg, optional ``ema_rampup``) or ``ema_decay`` (β per G step),
    samples come from an exponential moving average of G (:class:`genlab.models.ema.EMA`).
    """

    def __init__(
        self,
        generator: Mapping[str, Any],
        discriminator: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer_g: Mapping[str, Any],
        optimizer_d: Mapping[str, Any],
        n_critic: int = 1,  # D steps per G step
        lambda_gp: float = 0.0,  # WGAN-GP weight; 0 = off
        r1_gamma: float = 0.0,  # R1 weight γ (applied as γ/2); 0 = off
        ema_decay: float = 0.0,  # EMA of G: fixed β per G step; 0 = off
        ema_kimg: float | None = None,  # EMA of G: half-life in kimg; None = off
        ema_rampup: float | None = None,  # with ema_kimg: half-life at most this × images seen
        grad_clip: float | None = None,  # max global grad norm per update; None = off
        lr_decay_epochs: int = 0,  # the last this many of trainer.max_epochs take both LRs linearly to 0
        n_preview: int = 64,  # fixed-noise samples in each preview grid
    ):
        super().__init__(ema_decay=ema_decay, ema_kimg=ema_kimg, ema_rampup=ema_rampup, grad_clip=grad_clip)
        self.save_hyperparameters()
        self.generator = instantiate(generator)
        self.discriminator = instantiate(discriminator)
        self.init_generator(n_preview)
        self.init_losses(loss)

    def configure_optimizers(self):
        optimizers = [
            self.build_optimizer(self.hparams.optimizer_g, self.generator.parameters()),
            self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters()),
        ]
        n_decay = self.hparams.lr_decay_epochs
        if not n_decay:
            return optimizers
        n_total = self.trainer.max_epochs
        if n_total is None or not 0 < n_decay <= n_total:
            raise ConfigError(
                f"model.lr_decay_epochs={n_decay} counts back from trainer.max_epochs={n_total}: set max_epochs "
                f"to at least {n_decay} (a run bounded by max_time or max_steps cannot plan the decay)"
            )
        return optimizers, self.linear_decay_schedulers(optimizers, n_total - n_decay, n_decay)

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], self.generator.latent_dim, device=self.device)
        fake = self.generator(z)

        with self.toggled_optimizer(opt_d):
            real.requires_grad_(self.hparams.r1_gamma > 0)
            logits_real = self.discriminator(real)
            logits_fake = self.discriminator(fake.detach())
            loss_d = self.d_loss(logits_real, logits_fake)
            terms = {"loss_d": loss_d.detach()}
            if self.hparams.lambda_gp > 0:
                gp = losses.gradient_penalty(self.discriminator, real, fake)
                loss_d = loss_d + self.hparams.lambda_gp * gp
                terms["gp"] = gp.detach()
            if self.hparams.r1_gamma > 0:
                r1 = losses.r1_penalty(logits_real, real)
                loss_d = loss_d + 0.5 * self.hparams.r1_gamma * r1
                terms["r1"] = r1.detach()
            self.update(opt_d, loss_d)

        if self.every(self.hparams.n_critic):
            with self.toggled_optimizer(opt_g):
                loss_g = self.g_loss(self.discriminator(fake))
                self.update(opt_g, loss_g)
            self.update_ema(real.shape[0])
            terms["loss_g"] = loss_g.detach()

        if writes_this_step(self.trainer):
            to_output = torch.sigmoid if self.d_is_probability else (lambda t: t)  # mean D outputs
            terms["d_real"] = to_output(logits_real.detach()).mean()
            terms["d_fake"] = to_output(logits_fake.detach()).mean()
            self.log_dict({f"train/{k}": v for k, v in terms.items()})
