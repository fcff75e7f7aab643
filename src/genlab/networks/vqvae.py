"""VQ-VAE networks (van den Oord, Vinyals & Kavukcuoglu 2017, arXiv:1711.00937).

Encoder and decoder follow the paper's section 4.1: stride-2 4x4 convolutions (``downsample`` of
them, 2 = H/4 x W/4 latents), a 3x3 convolution and residual blocks (ReLU, 3x3 conv, ReLU, 1x1
conv). Two quantisers share nearest-neighbour assignment and dead-code restarts:

- :class:`Quantizer` learns the codebook by gradient through ‖sg[z_e] − e‖² (the paper's eq. 3);
- :class:`EMAQuantizer` moves each code to the exponential moving average of the encoder outputs
  assigned to it (the paper's appendix A.1), with Laplace-smoothed cluster sizes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from genlab import losses


class Residual(nn.Module):
    def __init__(self, hidden: int, residual_hidden: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(), nn.Conv2d(hidden, residual_hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(residual_hidden, hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def check_divisible(x: torch.Tensor, factor: int) -> None:
    """Encoders that downsample by ``factor`` need image sides that are multiples of it."""
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by {factor} (data.image_size)")


class Encoder(nn.Module):
    """image [N, channels, H, W] -> z_e [N, code_dim, H / 2^downsample, W / 2^downsample]."""

    def __init__(
        self,
        channels: int = 3,
        code_dim: int = 64,
        hidden: int = 128,
        residual_hidden: int = 32,
        n_residual: int = 2,
        downsample: int = 2,  # stride-2 convolutions; the latent grid is 2^downsample times smaller
    ):
        super().__init__()
        self.factor = 2**downsample
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(downsample):
            c_out = hidden if i == downsample - 1 else hidden // 2
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
            c_in = c_out
        layers += [nn.Conv2d(c_in, hidden, 3, 1, 1)]
        layers += [Residual(hidden, residual_hidden) for _ in range(n_residual)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor)
        return self.net(x)


class Decoder(nn.Module):
    """z_q [N, code_dim, h, w] -> image [N, channels, h * 2^downsample, w * 2^downsample] (unbounded)."""

    def __init__(
        self,
        channels: int = 3,
        code_dim: int = 64,
        hidden: int = 128,
        residual_hidden: int = 32,
        n_residual: int = 2,
        downsample: int = 2,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, 1, 1)]
        layers += [Residual(hidden, residual_hidden) for _ in range(n_residual)]
        layers += [nn.ReLU()]
        c_in = hidden
        for i in range(downsample):
            last = i == downsample - 1
            c_out = channels if last else hidden // 2
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)] + ([] if last else [nn.ReLU()])
            c_in = c_out
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> torch.Tensor:
        """The output layer's weight, where VQGAN balances its loss terms' gradients."""
        return self.net[-1].weight

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over DDP processes (in place) so every replica keeps the same codebook statistics."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class Quantizer(nn.Module):
    """Nearest-neighbour vector quantisation with a codebook learned by gradient.

    ``forward(z_e)`` returns the straight-through quantised map z_e + sg[e − z_e] (its value is e,
    its gradient w.r.t. z_e the identity), the code indices, and the two loss terms

        codebook   = ‖sg[z_e] − e‖²      (moves the codes; 0 for the EMA variant)
        commitment = ‖z_e − sg[e]‖²      (the model weights it by β = commitment_weight)

    as means over elements. A code whose usage (an EMA, decay ``usage_decay``, of how many vectors
    it received per training batch) is below ``restart_threshold`` is moved onto a random encoder
    output of the current batch and its usage reset to 1. Usage starts at 0, so the first training
    batch initialises the whole codebook on encoder outputs (a data-dependent init). With the
    default threshold of 1 (as Jukebox, Dhariwal et al. 2020) a code survives while it wins, on
    average, at least one vector per batch; a restarted code wins at least the vector it was copied
    from, in the same batch.
    """

    def __init__(
        self,
        num_codes: int = 512,  # K
        code_dim: int = 64,  # D
        restart_threshold: float = 1.0,  # assignments per batch (EMA); 0 = never restart dead codes
        usage_decay: float = 0.99,
    ):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.restart_threshold, self.usage_decay = restart_threshold, usage_decay
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes))
        self.register_buffer("usage", torch.zeros(num_codes))

    @property
    def weight(self) -> torch.Tensor:
        return self.codebook

    @torch.no_grad()
    def nearest(self, z_flat: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (Euclidean) for each row of z_flat [M, D] -> [M]."""
        e = self.weight
        distances = z_flat.pow(2).sum(1, keepdim=True) - 2 * z_flat @ e.t() + e.pow(2).sum(1)[None]
        return distances.argmin(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``indices`` [N, h, w] as a map [N, D, h, w]."""
        return F.embedding(indices, self.weight).permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f"expected z_e of shape [N, {self.code_dim}, h, w], got {tuple(z_e.shape)}")
        n, _, h, w = z_e.shape
        z_flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        if self.training:
            self.restart_dead_codes(z_flat.detach())
        flat_indices = self.nearest(z_flat.detach())
        indices = flat_indices.view(n, h, w)
        z_q = self.lookup(indices)
        if self.training:  # after the lookup: this batch is quantised with the codes that chose it
            counts = _all_reduce_sum(torch.bincount(flat_indices, minlength=self.num_codes).float())
            self.usage.lerp_(counts, 1 - self.usage_decay)
            self.update_codebook(z_flat.detach(), flat_indices, counts)
        terms = {
            "codebook": self.codebook_loss(z_e, z_q),
            "commitment": losses.vq_commitment_loss(z_e, z_q),
        }
        return z_e + (z_q - z_e).detach(), indices, terms

    def codebook_loss(self, z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        return losses.vq_codebook_loss(z_e, z_q)

    def update_codebook(self, z_flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """Non-gradient codebook updates (the EMA variant); here the optimizer moves the codes."""

    @torch.no_grad()
    def restart_dead_codes(self, z_flat: torch.Tensor) -> torch.Tensor:
        """Move codes with usage below the threshold onto random rows of z_flat; returns their indices."""
        dead = (self.usage < self.restart_threshold).nonzero().flatten()
        if len(dead) == 0:
            return dead
        m = len(z_flat)  # distinct rows when the batch has enough of them
        pick = torch.randperm(m, device=z_flat.device)[: len(dead)] if m >= len(dead) else torch.randint(m, dead.shape)
        new = z_flat[pick.to(z_flat.device)]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(new, 0)  # every replica restarts with rank 0's vectors
        self.reset_codes(dead, new)
        self.usage[dead] = 1.0
        return dead

    def reset_codes(self, dead: torch.Tensor, new: torch.Tensor) -> None:
        self.codebook[dead] = new


class EMAQuantizer(Quantizer):
    """Codebook as exponential moving averages (van den Oord et al. 2017, appendix A.1):

        N_k ← γ N_k + (1 − γ) n_k,    m_k ← γ m_k + (1 − γ) Σ_{i: k(i) = k} z_e,i,    e_k = m_k / Ñ_k

    with γ = ``decay``, n_k the batch's assignments to code k, and Ñ_k = (N_k + ε) / (N + Kε) · N
    (N = Σ_k N_k) the Laplace-smoothed cluster size, as in Sonnet's VectorQuantizerEMA, which keeps
    e_k finite for codes that stop receiving vectors. N_k starts at 1 and m_k at e_k, so an unused
    code keeps its vector instead of collapsing to 0. The codebook loss is 0; only the commitment
    term trains the encoder.
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        decay: float = 0.99,  # γ
        epsilon: float = 1e-5,  # Laplace smoothing ε of the cluster sizes
        restart_threshold: float = 1.0,
        usage_decay: float = 0.99,
    ):
        super().__init__(num_codes, code_dim, restart_threshold, usage_decay)
        self.decay, self.epsilon = decay, epsilon
        init = self.codebook.detach().clone()
        del self.codebook
        self.register_buffer("codebook", init)
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("embed_sum", init.clone())

    def codebook_loss(self, z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        return z_e.new_zeros(())

    @torch.no_grad()
    def update_codebook(self, z_flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, z_flat)
        _all_reduce_sum(sums)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_sum.lerp_(sums, 1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    def reset_codes(self, dead: torch.Tensor, new: torch.Tensor) -> None:
        self.codebook[dead] = new
        self.embed_sum[dead] = new
        self.cluster_size[dead] = 1.0
