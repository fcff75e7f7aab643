"""VAE/GAN: a VAE whose reconstruction error is measured in a GAN discriminator's features, so that
the decoder is judged on what D finds relevant rather than on every pixel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate

from genlab import losses
from genlab.logs import writes_this_step
from genlab.metrics import paired
from genlab.models.adversarial import AdversarialModule, evaluating


def feature_nll(features_recon: torch.Tensor, features_real: torch.Tensor) -> torch.Tensor:
    """−log N(Dis_l(x) | Dis_l(x̃), I) per image, up to a constant: ½ Σ (Dis_l(x̃) − Dis_l(x))² [N]."""
    return 0.5 * (features_recon - features_real).float().pow(2).flatten(1).sum(dim=1)


class VAEGAN(AdversarialModule):
    """VAE/GAN (Larsen, Sønderby, Larochelle & Winther 2016, arXiv:1512.09300).

    Enc gives q(z|x) = N(μ(x), diag σ²(x)); Dec (``self.generator``) decodes z ~ q to the
    reconstruction x̃ and z_p ~ p(z) = N(0, I) to a sample x_p; Dis_l is a hidden layer of the
    discriminator Dis. With one reparameterised z per image, the three players minimise

        Enc:  L_prior + L_llike
        Dec:  γ · L_llike + L_G(x̃) + L_G(x_p)
        Dis:  L_D(x; x̃ ∪ x_p)

        L_prior = KL(q(z|x) ‖ p(z))                 (per image, summed over the latent dims)
        L_llike = ½ ‖Dis_l(x̃) − Dis_l(x)‖²          (−log N(Dis_l(x) | Dis_l(x̃), I) up to a constant)

    (the paper's Algorithm 1, with L_GAN's two sides written as losses: L_D and L_G are the pair
    ``model/loss`` names, the non-saturating one by default; the authors' code reverses D's
    gradient into the decoder, which is ``model/loss=minimax``). The GAN terms do not reach the
    encoder and the feature term does not train Dis, as the paper prescribes. In every update Dis
    sees x, x̃ and x_p as one batch (one batch-norm statistic for all three; one pass gives Dis_l
    and the logits; the authors' code passes x̃ and x alone for the feature term), and L_D averages
    over the fakes, so real images weigh as much as the two kinds of fakes together (the authors'
    default ``real_vs_gen_weight=0.5``; their CelebA run used 0.66). Each player's update is its own
    optimizer step on the current batch, in the order Enc, Dec, Dis. Not reproduced: the authors'
    code skips D's update while D wins by a margin, and the decoder's while D loses by one
    (``gan_margin``).

    Logged: ``train/kl``, ``train/llike`` (nats per image), ``train/loss_e|g|d``, ``train/d_real``,
    ``train/d_recon``, ``train/d_fake`` (mean D outputs, probabilities for the logistic losses);
    validation ``val/mse``, ``val/psnr`` of reconstructions from μ and ``val/kl``. Samples come from
    ``sample(n)``; reconstructions from ``reconstruct(x)`` (the decoder at μ(x)).
    """

    def __init__(
        self,
        encoder: Mapping[str, Any],
        generator: Mapping[str, Any],  # Dec: the VAE's decoder is the GAN's generator
        discriminator: Mapping[str, Any],  # Dis, with features(x) = Dis_l(x)
        loss: Mapping[str, Any],
        optimizer_e: Mapping[str, Any],
        optimizer_g: Mapping[str, Any],
        optimizer_d: Mapping[str, Any],
        latent_dim: int = 128,
        gamma: float = 1e-5,  # γ: weight of L_llike in the decoder's loss against the GAN terms
        grad_clip: float | None = None,
        n_preview: int = 64,
    ):
        super().__init__(grad_clip=grad_clip)
        self.save_hyperparameters()
        self.encoder = instantiate(encoder, latent_dim=latent_dim)
        self.generator = instantiate(generator, latent_dim=latent_dim)
        self.discriminator = instantiate(discriminator)
        self.init_generator(n_preview)
        self.init_losses(loss)

    def configure_optimizers(self):
        return (
            self.build_optimizer(self.hparams.optimizer_e, self.encoder.parameters()),
            self.build_optimizer(self.hparams.optimizer_g, self.generator.parameters()),
            self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters()),
        )

    def judge(self, real: torch.Tensor, recon: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_llike per image [N], Dis's logits of x, x̃, x_p [3N]) from one pass of the three batches."""
        features = self.discriminator.features(torch.cat([real, recon, fake]))
        features_real, features_recon, _ = features.chunk(3)
        return feature_nll(features_recon, features_real.detach()), self.discriminator.logits(features)

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]
        n = real.shape[0]
        opt_e, opt_g, opt_d = self.optimizers()
        z_p = torch.randn(n, self.hparams.latent_dim, device=self.device)

        with self.toggled_optimizer(opt_e):  # Dec and Dis frozen: only Enc learns from this loss
            mu, logvar = self.encoder(real)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            kl = losses.kl_divergence(mu.float(), logvar.float()).mean()
            with torch.no_grad():
                fake = self.generator(z_p)  # only so that Dis sees the batch it sees below
            llike = self.judge(real, self.generator(z), fake)[0].mean()
            loss_e = kl + llike
            self.update(opt_e, loss_e)

        with self.toggled_optimizer(opt_g):  # z detached: the decoder's losses stop at the encoder
            recon = self.generator(z.detach())
            fake = self.generator(z_p)
            llike_g, logits = self.judge(real, recon, fake)
            logits_recon, logits_fake = logits[n : 2 * n], logits[2 * n :]
            gan = self.g_loss(logits_recon) + self.g_loss(logits_fake)
            loss_g = self.hparams.gamma * llike_g.mean() + gan
            self.update(opt_g, loss_g)

        with self.toggled_optimizer(opt_d):
            logits = self.discriminator(torch.cat([real, recon.detach(), fake.detach()]))
            loss_d = self.d_loss(logits[:n], logits[n:])
            self.update(opt_d, loss_d)

        if writes_this_step(self.trainer):
            to_output = torch.sigmoid if self.d_is_probability else (lambda t: t)
            outputs = {
                k: to_output(v.detach()).mean() for k, v in zip(("d_real", "d_recon", "d_fake"), logits.split(n))
            }
            terms = {"kl": kl, "llike": llike, "loss_e": loss_e, "loss_g": loss_g, "loss_d": loss_d}
            self.log_dict({f"train/{k}": v.detach() for k, v in (terms | outputs).items()})

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch[0]
        mu, logvar = self.encoder(x)
        scores = paired.scores(self.generator(mu), x, ("mse", "psnr"))
        scores["kl"] = losses.kl_divergence(mu.float(), logvar.float()).mean()
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, batch_size=x.shape[0], sync_dist=True)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Dec(μ(x)) in [-1, 1], with batch norm's running statistics: deterministic."""
        with evaluating(self.encoder), evaluating(self.generator):
            return self.generator(self.encoder(x)[0])

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        x = batch[0]
        return {"reconstructions": (torch.cat([x, self.reconstruct(x)]), len(x)), **super().previews(batch)}
