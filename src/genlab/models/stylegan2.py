"""StyleGAN2: the style-based generator with its lazy regularisers, on genlab's adversarial base."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate

from genlab import losses
from genlab.logs import writes_this_step
from genlab.models.adversarial import AdversarialModule, evaluating


def lazy_optimizer(config: Mapping, params, interval: int) -> torch.optim.Optimizer:
    """Adam whose regulariser runs every ``interval`` steps: lr and β scaled by c = interval /
    (interval + 1), so that the minibatches it sees in all count as before (Karras et al. 2020, B)."""
    optimizer = instantiate(config)(params)
    c = interval / (interval + 1) if interval > 0 else 1.0
    for group in optimizer.param_groups:
        group["lr"] *= c
        group["betas"] = tuple(beta**c for beta in group["betas"])
    return optimizer


class StyleGAN2(AdversarialModule):
    """StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, arXiv:1912.04958), trained
    as NVlabs/stylegan2-ada-pytorch does, with differentiable augmentation T for small data
    (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020, arXiv:2006.06676).

    With w = mapping(z) (mixed with a second z's styles from a random layer on, probability
    ``style_mixing``) and logits l = D(T(·)), each batch runs four phases:

        G main:  L_G = E_z[softplus(−l(G(w)))]
        G reg:   every ``pl_interval`` batches, pl_interval · pl_weight · E[(‖J_wᵀ y‖₂ − a)²],
                 y ~ N(0, I/(HW)), a the running mean length (decay ``pl_decay``), on batch/``pl_batch_shrink``
        D main:  L_D = E_z[softplus(l(G(w)))] + E_x[softplus(−l(x))]
        D reg:   every ``r1_interval`` batches, r1_interval · γ/2 · E_x[‖∇_x l(x)‖²]   (lazy R1)

    Adam's lr and β are corrected for the lazy phases (:func:`lazy_optimizer`). G's EMA (half-life
    ``ema_kimg``, ramp-up ``ema_rampup``) is what samples and metrics use. ADA's p, w_avg, the
    path-length mean a and the image counter are buffers: a resumed run continues with them.
    Samples: ``sample(n, truncation_psi=ψ)``, w' = w_avg + ψ (w − w_avg); previews at ψ = 1 and 0.7.
    """

    def __init__(
        self,
        generator: Mapping[str, Any],
        discriminator: Mapping[str, Any],
        augment: Mapping[str, Any],  # genlab.networks.augment: none (empty policy) | DiffAugment | AdaptiveAugment
        optimizer_g: Mapping[str, Any],
        optimizer_d: Mapping[str, Any],
        r1_gamma: float = 10.0,  # γ; 0 = no R1
        r1_interval: int = 16,  # batches between R1 phases
        pl_weight: float = 2.0,  # 0 = no path-length regulariser
        pl_interval: int = 4,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        style_mixing: float = 0.9,  # probability of mixing two z's styles; 0 = off
        ema_kimg: float | None = 10.0,  # G's EMA half-life in kimg; None = no EMA
        ema_rampup: float | None = None,  # EMA half-life at most this × images seen; None = no ramp-up
        truncation_psi: float = 1.0,  # ψ of sample() unless given
        n_preview: int = 64,
    ):
        super().__init__(ema_kimg=ema_kimg, ema_rampup=ema_rampup)
        self.save_hyperparameters()
        self.generator = instantiate(generator)
        self.discriminator = instantiate(discriminator)
        self.augment = instantiate(augment)
        self.init_generator(n_preview)
        self.register_buffer("pl_mean", torch.zeros(()))

    def configure_optimizers(self):
        hp = self.hparams
        return (
            lazy_optimizer(hp.optimizer_g, self.generator.parameters(), hp.pl_interval if hp.pl_weight > 0 else 0),
            lazy_optimizer(hp.optimizer_d, self.discriminator.parameters(), hp.r1_interval if hp.r1_gamma > 0 else 0),
        )

    def styles(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.generator.z_dim, device=self.device)
        return self.generator.mapping_with_mixing(z, self.hparams.style_mixing)

    def training_step(self, batch, batch_idx: int) -> None:
        hp, real = self.hparams, batch[0]
        opt_g, opt_d = self.optimizers()
        terms = {}

        with self.toggled_optimizer(opt_g):
            fake = self.generator.synthesis(self.styles(len(real)))
            terms["loss_g"] = losses.g_nonsaturating_loss(self.discriminator(self.augment(fake)))
            self.update(opt_g, terms["loss_g"])
        if hp.pl_weight > 0 and self.every(hp.pl_interval):
            with self.toggled_optimizer(opt_g):
                ws = self.styles(max(1, len(real) // hp.pl_batch_shrink))
                penalty, terms["pl_length"], mean = losses.path_length_penalty(
                    self.generator.synthesis(ws), ws, self.pl_mean, hp.pl_decay
                )
                self.pl_mean.copy_(mean)
                terms["pl_penalty"] = penalty.detach()
                self.update(opt_g, penalty * hp.pl_weight * hp.pl_interval)

        with self.toggled_optimizer(opt_d):
            logits_fake = self.discriminator(self.augment(fake.detach()))
            logits_real = self.discriminator(self.augment(real))
            terms["loss_d"] = losses.d_nonsaturating_loss(logits_real, logits_fake)
            self.update(opt_d, terms["loss_d"])
        # ADA's overfitting heuristic E[sign D(T(x))], the same on every process
        sign = self.trainer.strategy.reduce(logits_real.detach().sign().mean(), reduce_op="mean")
        self.augment.adjust(sign, len(real) * self.trainer.world_size)
        if hp.r1_gamma > 0 and self.every(hp.r1_interval):
            with self.toggled_optimizer(opt_d):
                real_r1 = real.detach().requires_grad_(True)
                terms["r1"] = losses.r1_penalty(self.discriminator(self.augment(real_r1)), real_r1)
                self.update(opt_d, terms["r1"] * (hp.r1_gamma / 2) * hp.r1_interval)
        self.update_ema(len(real))

        if writes_this_step(self.trainer):
            terms.update(d_real=logits_real.detach().mean(), d_fake=logits_fake.detach().mean(), ada_p=self.augment.p)
            self.log_dict({f"train/{k}": v.detach() if torch.is_tensor(v) else v for k, v in terms.items()})

    @torch.no_grad()
    def generate(self, z: torch.Tensor, truncation_psi: float | None = None) -> torch.Tensor:
        """Images from z by the EMA generator; its per-layer noise fixed (NVIDIA's noise_mode const), so
        that the same z always gives the same image."""
        psi = self.hparams.truncation_psi if truncation_psi is None else truncation_psi
        with evaluating(self.sampler) as sampler:
            return sampler(z, truncation_psi=psi, noise_mode="const")

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation_psi: float | None = None
    ) -> torch.Tensor:
        z = torch.randn(n, self.generator.z_dim, device=self.device, generator=generator)
        return self.generate(z, truncation_psi)

    @torch.no_grad()
    def style_mixing_grid(self, rows: int, cols: int, generator: torch.Generator | None = None, cutoff: int = 4):
        """[(1 + rows) · (1 + cols), C, H, W]: a blank corner, ``cols`` source images across the top,
        ``rows`` destination images down the side, and each cell the destination's coarse styles
        (ws[:, :cutoff]) with the source's finer ones (NVIDIA's style-mixing figure)."""
        with evaluating(self.sampler) as sampler:
            ws = sampler.mapping(
                torch.randn(rows + cols, self.generator.z_dim, device=self.device, generator=generator)
            )
            images = sampler.synthesis(ws, noise_mode="const")
            dst, src = ws[:rows], ws[rows:]
            cells = [images[rows + c] for c in range(cols)]
            header = [torch.full_like(images[0], -1.0), *cells]
            grid = [header]
            for r in range(rows):
                mixed = torch.cat([dst[r : r + 1, :cutoff].expand(cols, -1, -1), src[:, cutoff:]], dim=1)
                grid.append([images[r], *sampler.synthesis(mixed, noise_mode="const")])
        return torch.stack([image for row in grid for image in row])

    @torch.no_grad()
    def interpolate(self, n: int, steps: int = 8, generator: torch.Generator | None = None) -> torch.Tensor:
        """[n · steps, C, H, W]: ``n`` rows, each a straight line in W between two random w's."""
        with evaluating(self.sampler) as sampler:
            z = torch.randn(2 * n, self.generator.z_dim, device=self.device, generator=generator)
            ws = sampler.mapping(z, truncation_psi=self.hparams.truncation_psi)
            t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1, 1)
            path = ws[:n, None] * (1 - t) + ws[n:, None] * t  # [n, steps, num_ws, w_dim]
            return sampler.synthesis(path.flatten(0, 1), noise_mode="const")

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        return {
            "samples": (self.generate(self.fixed_z, 1.0), 8),
            "samples_psi0.7": (self.generate(self.fixed_z, 0.7), 8),
        }
