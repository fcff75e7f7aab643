"""Adversarial losses, regularisers and divergences as small pure functions.

Discriminator losses take the raw (pre-sigmoid) outputs ``logits_real`` / ``logits_fake``;
generator losses take ``logits_fake``. Every adversarial loss returns a scalar (the batch mean);
the divergences and likelihoods at the end return one value per sample ([N], nats).
A model config names a pair by dotted path (see ``conf/model/loss/``), so adding a loss is one
function here and one YAML file there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# --- Goodfellow et al. 2014: min_G max_D E[log D(x)] + E[log(1 - D(G(z)))] ------------------


def d_nonsaturating_loss(logits_real: Tensor, logits_fake: Tensor, real_label: float = 1.0) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], the discriminator side of the original game.

    ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016, arXiv:1606.03498 §3.4):
    D's target for real images is ``real_label`` (binary cross-entropy against it), for fakes still 0,
    so D gains nothing by growing ever surer of the real images.
    """
    real = real_label * F.softplus(-logits_real) + (1 - real_label) * F.softplus(logits_real)
    return real.mean() + F.softplus(logits_fake).mean()


def g_nonsaturating_loss(logits_fake: Tensor) -> Tensor:
    """-E[log D(G(z))]: the heuristic generator loss with strong early gradients."""
    return F.softplus(-logits_fake).mean()


def g_minimax_loss(logits_fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))]: the generator minimises the original minimax value.

    log(1 - sigmoid(l)) = -softplus(l), so the loss is -softplus(l); it saturates when D wins.
    """
    return -F.softplus(logits_fake).mean()


# --- Lim & Ye 2017 / Miyato et al. 2018: hinge ------------------------------------------------


def d_hinge_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()


def g_hinge_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()


# --- Arjovsky et al. 2017: Wasserstein critic (pair it with gradient_penalty) -----------------


def d_wasserstein_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return logits_fake.mean() - logits_real.mean()


def g_wasserstein_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()


# --- Mao et al. 2017: least squares (a = 0, b = c = 1), as CycleGAN uses it --------------------


def d_lsgan_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return F.mse_loss(logits_real, torch.ones_like(logits_real)) + F.mse_loss(
        logits_fake, torch.zeros_like(logits_fake)
    )


def g_lsgan_loss(logits_fake: Tensor) -> Tensor:
    return F.mse_loss(logits_fake, torch.ones_like(logits_fake))


# --- Regularisers -------------------------------------------------------------------------------


def gradient_penalty(critic: torch.nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """Gulrajani et al. 2017: E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat on real-fake segments."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(logits_real: Tensor, real: Tensor) -> Tensor:
    """Mescheder et al. 2018: E[||grad_x D(x)||^2] on real data (``real`` must require grad).

    Multiply by r1_gamma / 2 at the call site, as the paper writes it.
    """
    (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


# --- Zhu et al. 2017 (CycleGAN): cycle consistency and identity, L1 on images ----------------


def cycle_loss(rec: Tensor, real: Tensor) -> Tensor:
    """‖F(G(x)) − x‖₁ (mean over pixels): a translated image translated back should be the input."""
    return F.l1_loss(rec, real)


def identity_loss(idt: Tensor, real: Tensor) -> Tensor:
    """‖G(y) − y‖₁ for y already in G's target domain: G should leave it alone (keeps colours)."""
    return F.l1_loss(idt, real)


# --- van den Oord et al. 2017 (VQ-VAE, eq. 3): codebook and commitment, sg = stop-gradient ------


def vq_codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """‖sg[z_e] − e‖² (mean): moves the chosen codes e = z_q towards the encoder outputs."""
    return F.mse_loss(z_q, z_e.detach())


def vq_commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """‖z_e − sg[e]‖² (mean): keeps the encoder's outputs near their codes (weighted by β)."""
    return F.mse_loss(z_e, z_q.detach())


# --- Kingma & Welling 2013: the VAE's KL term -----------------------------------------------------


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) summed over latent dims, per sample (shape [N])."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


# --- Likelihoods of autoencoders: -log p(x | z) in nats per image (shape [N]) ----------------
# Both take the decoder's pre-sigmoid output ``logits`` and targets ``x`` in [0, 1], and sum over
# pixels: per-image sums are what a (negative) ELBO and bits/dim are made of.


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-Σ_pixels [x log σ(l) + (1 − x) log(1 − σ(l))]: binary cross-entropy, exact for binary x.

    For grey-level x in [0, 1] this is the usual "Bernoulli" VAE loss of the MNIST literature, a
    cross-entropy rather than the likelihood of a distribution over grey levels.
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def gaussian_nll(logits: Tensor, x: Tensor, sigma: float = 0.1) -> Tensor:
    """-log N(x; μ, σ²I) with μ = σ(logits) in [0, 1] and a fixed σ (in [0, 1] pixel units).

    = Σ_pixels [(x − μ)² / (2σ²) + log σ + ½ log 2π]: a continuous density, so its bits/dim are
    continuous ones (add 8 for the discrete 8-bit equivalent of uniformly dequantised data).
    """
    mean = torch.sigmoid(logits)
    per_pixel = 0.5 * ((x - mean) / sigma).pow(2) + math.log(sigma) + 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(dim=1)


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the latent dims (shape [...] without the last)."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(dim=-1)


# --- Karras et al. 2020 (StyleGAN2): path length E[(||J_w^T y||_2 - a)^2], y ~ N(0, I) / sqrt(HW) --


def path_length_penalty(
    fake: Tensor, ws: Tensor, mean_path_length: Tensor | float, decay: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Path-length regulariser of StyleGAN2 (arXiv:1912.04958, eq. 4), as NVIDIA computes it.

    ``fake`` = synthesis(``ws``) with ``ws`` [N, num_ws, w_dim] in the graph. The image-space noise y
    is scaled by 1/sqrt(H W) so that lengths do not grow with the resolution; the length per sample
    is sqrt(mean over ws of ||J_w^T y||^2). a, the running mean of lengths, is passed in and
    returned moved by ``decay`` (a pure function: the caller keeps a in a buffer). The penalty uses
    the moved a, which keeps a graph to this batch's lengths, as in NVIDIA's code.

    Returns (penalty = mean_N (length - a)^2, mean length of the batch, new a detached).
    Multiply the penalty by the weight (2) and the lazy interval (4) at the call site.
    """
    noise = torch.randn_like(fake) / math.sqrt(fake.shape[2] * fake.shape[3])
    (grad,) = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    mean = torch.as_tensor(mean_path_length, dtype=lengths.dtype, device=lengths.device)
    new_mean = mean.lerp(lengths.mean(), decay)
    penalty = (lengths - new_mean).square().mean()
    return penalty, lengths.mean().detach(), new_mean.detach()


# --- Restoration: x̂ = f(y) against the clean x, weighted inside and outside the hole ---------------
# ``mask`` is [N, 1, H, W] with 1 on missing pixels; without one (denoising, upscaling, ...) every
# pixel is known. The weights are per pixel, the mean is over all of them (LaMa's convention), so a
# weight of 0 removes a region from the loss without rescaling the other.


def _pixel_weights(mask: Tensor | None, hole_weight: float, valid_weight: float) -> Tensor | float:
    """w = hole_weight · m + valid_weight · (1 − m), or valid_weight everywhere without a mask."""
    if mask is None:
        return valid_weight
    return hole_weight * mask + valid_weight * (1 - mask)


def pixel_l1_loss(
    output: Tensor, target: Tensor, mask: Tensor | None = None, hole_weight: float = 1.0, valid_weight: float = 1.0
) -> Tensor:
    """mean_pixels w ⊙ |x̂ − x|. Partial convolutions (Liu et al. 2018, arXiv:1804.07723) weigh the
    hole 6 and known pixels 1; LaMa (Suvorov et al. 2022) 0 and 10, leaving the hole to its other terms."""
    return (_pixel_weights(mask, hole_weight, valid_weight) * (output - target).abs()).mean()


def pixel_l2_loss(
    output: Tensor, target: Tensor, mask: Tensor | None = None, hole_weight: float = 1.0, valid_weight: float = 1.0
) -> Tensor:
    """mean_pixels w ⊙ (x̂ − x)²: the MSE that PSNR measures (DnCNN's loss, up to its factor ½)."""
    return (_pixel_weights(mask, hole_weight, valid_weight) * (output - target).square()).mean()


def feature_matching_loss(features_fake: list[Tensor], features_real: list[Tensor], power: int = 1) -> Tensor:
    """(1/L) Σ_l mean |φ_l(x̂) − φ_l(x)|^p over the L layers of a feature network φ, targets detached.

    φ = the discriminator's intermediate layers is feature matching (pix2pixHD, Wang et al. 2018,
    arXiv:1711.11585, p = 1; LaMa p = 2); φ = a pretrained classifier is the perceptual loss
    (Johnson et al. 2016, arXiv:1603.08155, p = 2)."""
    if len(features_fake) != len(features_real) or not features_fake:
        raise ValueError(
            f"feature matching needs the same layers on both sides, got {len(features_fake)} and {len(features_real)}"
        )
    terms = [(fake - real.detach()).abs().pow(power).mean() for fake, real in zip(features_fake, features_real)]
    return torch.stack(terms).mean()


# --- Esser, Rombach & Ommer 2021 (VQGAN, eq. 7): the adaptive weight of the adversarial term ----
# λ = ‖∇_L L_rec‖ / (‖∇_L L_GAN‖ + δ) at the decoder's last layer L balances the two gradients there,
# so that the adversarial term neither drowns the reconstruction nor vanishes beside it.


def adaptive_weight(
    rec_loss: Tensor, gan_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4, delta: float = 1e-4
) -> Tensor:
    """λ = ‖∇_L L_rec‖₂ / (‖∇_L L_GAN‖₂ + δ), clamped to [0, max_weight] and detached (a weight, not a
    term to optimise), as taming-transformers computes it; multiply by ``disc_weight`` at the call site.

    ``last_layer`` is the weight tensor L both losses depend on; their graphs are kept for the
    backward pass that follows.
    """
    (grad_rec,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    (grad_gan,) = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)
    return (grad_rec.norm() / (grad_gan.norm() + delta)).clamp(0.0, max_weight).detach()
