"""Variational autoencoder with a convolutional encoder/decoder and a Gaussian latent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from genlab import losses
from genlab.logs import writes_this_step


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1], the scale the likelihoods (and bits/dim) are defined on."""
    return (x + 1) * 0.5


class VAE(L.LightningModule):
    """VAE (Kingma & Welling 2013, arXiv:1312.6114) with β-weighted KL (Higgins et al. 2017) and
    linear KL warm-up (Bowman et al. 2016, arXiv:1511.06349; Sønderby et al. 2016).

    Encoder q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)), prior p(z) = N(0, I), decoder p_θ(x|z) given by
    ``likelihood`` on pixels scaled to [0, 1] (Bernoulli: cross-entropy; Gaussian: fixed σ). Training
    minimises, with one reparameterised sample z = μ + σ ⊙ ε, ε ~ N(0, I),

        L = E_q[−log p_θ(x|z)] + β_t · KL(q_φ(z|x) ‖ p(z)),   β_t = β · min(1, step / kl_warmup_steps)

    Reported, per image, with β = 1 (a bound whatever β trains with):
        val/nelbo = E_q[−log p_θ(x|z)] + KL   (nats; ≥ −log p(x), the negative ELBO)
        val/bpd   = val/nelbo / (C·H·W · ln 2)
    These are in the units of ``likelihood``: for the Gaussian a continuous density on [0, 1]
    pixels (add 8 bits/dim for the discrete 8-bit equivalent of uniformly dequantised data); for the
    Bernoulli a cross-entropy, a likelihood only for binary images. ``val/active_units`` counts
    latent dims u with Cov_x(E_q[z_u]) > ``active_threshold`` over the validation set (Burda et al.
    2015, arXiv:1509.00519); few active units means posterior collapse. The tighter
    importance-weighted bound is :meth:`importance_weighted_nll`.
    """

    def __init__(
        self,
        encoder: Mapping[str, Any],
        decoder: Mapping[str, Any],
        likelihood: Mapping[str, Any],  # a _partial_ of genlab.losses.*_nll(logits, x01) -> [N] nats
        optimizer: Mapping[str, Any],
        latent_dim: int = 32,
        beta: float = 1.0,  # weight of the KL term (1 = the ELBO)
        kl_warmup_steps: int = 0,  # optimizer steps over which β rises linearly from 0; 0 = off
        active_threshold: float = 0.01,  # Burda et al.'s covariance threshold for an active unit
        n_preview: int = 64,  # fixed-noise samples in each preview grid
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = instantiate(encoder, latent_dim=latent_dim)
        self.decoder = instantiate(decoder, latent_dim=latent_dim)
        self.likelihood = instantiate(likelihood)
        self.register_buffer("fixed_z", torch.randn(n_preview, latent_dim))
        self._moments: torch.Tensor | None = None  # validation sums of 1, μ, μ² for active units

    def configure_optimizers(self):
        return instantiate(self.hparams.optimizer)(self.parameters())

    @property
    def beta_now(self) -> float:
        return kl_weight(self.global_step, self.hparams.beta, self.hparams.kl_warmup_steps)

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image −log p(x|z) for one posterior sample, KL(q ‖ p), and the posterior mean."""
        mu, logvar = self.encoder(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        # Sums over pixels and latents in fp32 even under bf16 autocast (on CPU it leaves sums in bf16).
        recon = self.likelihood(self.decoder(z).float(), to_unit(x))
        return {"recon": recon, "kl": losses.kl_divergence(mu.float(), logvar.float()), "mu": mu}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        t = self.terms(batch[0])
        beta = self.beta_now
        loss = (t["recon"] + beta * t["kl"]).mean()
        if writes_this_step(self.trainer):
            self.log_dict(
                {
                    "train/loss": loss.detach(),
                    "train/nelbo": (t["recon"] + t["kl"]).mean().detach(),
                    "train/kl": t["kl"].mean().detach(),
                    "train/beta": beta,
                }
            )
        return loss

    def on_validation_epoch_start(self) -> None:
        self._moments = torch.zeros(3, self.hparams.latent_dim, dtype=torch.float64, device=self.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch[0]
        t = self.terms(x)
        nelbo = t["recon"] + t["kl"]
        mu = t["mu"].double()
        self._moments += torch.stack([torch.ones_like(mu), mu, mu * mu]).sum(dim=1)
        dims = x[0].numel()
        self.log_dict(
            {
                "val/nelbo": nelbo.mean(),
                "val/bpd": nelbo.mean() / (dims * math.log(2)),
                "val/kl": t["kl"].mean(),
                "val/recon": t["recon"].mean(),
            },
            batch_size=x.shape[0],
            sync_dist=True,
        )

    def on_validation_epoch_end(self) -> None:
        count, total, squares = self.trainer.strategy.reduce(self._moments, reduce_op="sum")
        # From sums over every process: the same count on each rank, so the (mean) sync keeps it.
        value = float(active_units(count, total, squares, self.hparams.active_threshold))
        self.log("val/active_units", value, sync_dist=True)

    @torch.no_grad()
    def importance_weighted_nll(
        self, x: torch.Tensor, k: int = 1000, chunk: int = 100, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """−log p(x) estimated with k importance samples from q (Burda et al. 2015), nats per image [N]:

            −log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

        an upper bound on −log p(x) that tightens with k (k = 1 is the negative ELBO).
        ``chunk`` samples are decoded at a time.
        """
        mu, logvar = self.encoder(x)
        target = to_unit(x)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn((m, *mu.shape), device=mu.device, generator=generator)
            z = mu + (0.5 * logvar).exp() * eps  # [m, N, latent]
            logits = self.decoder(z.flatten(0, 1))
            log_px = -self.likelihood(logits, target.repeat(m, 1, 1, 1)).view(m, -1)
            log_pz = losses.gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
            log_qz = losses.gaussian_log_density(z, mu, logvar)
            log_w.append(log_px + log_pz - log_qz)
        return math.log(k) - torch.logsumexp(torch.cat(log_w), dim=0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x|z), in [-1, 1]."""
        return torch.sigmoid(self.decoder(z)) * 2 - 1

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [-1, 1]: the decoder's mean for z ~ N(0, I)."""
        z = torch.randn(n, self.hparams.latent_dim, device=self.device, generator=generator)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean μ(x): deterministic."""
        return self.decode(self.encoder(x)[0])

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        x = batch[0]
        mu = self.encoder(x)[0]
        # Straight lines between the posterior means of pairs (0, 1), (2, 3), ... of the batch.
        steps = torch.linspace(0, 1, 10, device=self.device)[None, :, None]
        pairs = len(mu) // 2
        path = mu[0 : 2 * pairs : 2, None] * (1 - steps) + mu[1 : 2 * pairs : 2, None] * steps
        return {
            "reconstructions": (torch.cat([x, self.decode(mu)]), len(x)),
            "samples": (self.decode(self.fixed_z), 8),
            "interpolation": (self.decode(path.flatten(0, 1)), 10),
        }


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """β_t = β · min(1, step / warmup_steps): linear warm-up from 0 (warmup_steps = 0: β throughout)."""
    return beta * min(1.0, step / warmup_steps) if warmup_steps > 0 else beta


def active_units(count: torch.Tensor, total: torch.Tensor, squares: torch.Tensor, threshold: float) -> int:
    """Number of dims whose posterior mean varies over the data: Var_x(μ_u) > threshold.

    From the sums over the validation set of 1, μ and μ² (so DDP processes can add them up).
    """
    mean = total / count
    variance = squares / count - mean * mean
    return int((variance > threshold).sum())
