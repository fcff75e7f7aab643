"""Differentiable augmentation of the images a GAN discriminator sees, for training on small data.

Why: with a few thousand images D memorises the training set within a few thousand steps and its
feedback to G collapses. Augmenting every image D sees, real and fake, with ops that are
differentiable (so G's gradient passes through them) keeps D from memorising without leaking the
augmentations into G's samples. Two policies over the same ops:

- ``DiffAugment`` (Zhao et al. 2020, arXiv:2006.10738): every op on every image.
- ``AdaptiveAugment`` (ADA, Karras et al. 2020, arXiv:2006.06676): each op on each image with
  probability p, where p follows the overfitting heuristic r_t = E[sign D(real)] towards 0.6.

Ops (DiffAugment's, for images in [-1, 1]): colour = brightness + U(-0.5, 0.5), saturation x
U(0, 2) about the pixel's channel mean, contrast x U(0.5, 1.5) about the image mean; translation by
up to 1/8 of the size with zero fill; cutout of a square half the size, zero fill. Randomness is
per sample from torch's global generator (``seed`` makes it reproducible). ``DiffAugment(policy=())``
is the identity, for ``augment=none``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

POLICIES = ("color", "translation", "cutout")


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """out[n, :, i, j] = x[n, :, i - shift[n, 0], j - shift[n, 1]], zero where that is outside."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) - shift[:, :1]  # [N, H] source row of each output row
    cols = torch.arange(w, device=x.device) - shift[:, 1:]
    x = x.gather(2, rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    x = x.gather(3, cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    inside = ((rows >= 0) & (rows < h)).view(n, 1, h, 1) & ((cols >= 0) & (cols < w)).view(n, 1, 1, w)
    return x * inside.to(x.dtype)


def cut_out(x: Tensor, top_left: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero the ``size`` box at ``top_left`` [N, 2] (clipped to the image) in each sample."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) - top_left[:, :1]
    cols = torch.arange(w, device=x.device) - top_left[:, 1:]
    box = ((rows >= 0) & (rows < size[0])).view(n, h, 1) & ((cols >= 0) & (cols < size[1])).view(n, 1, w)
    return x * (~box).unsqueeze(1).to(x.dtype)


class DiffAugment(nn.Module):
    """Zhao et al. 2020 (arXiv:2006.10738): T(x) applied to real and fake alike, D(T(x)), D(T(G(z))).

    ``adjust`` does nothing here, so that a training step can treat every policy alike.
    """

    def __init__(
        self,
        policy: Sequence[str] = POLICIES,  # any of "color", "translation", "cutout"; () = identity
        translation_ratio: float = 0.125,  # largest shift, as a fraction of the image size
        cutout_ratio: float = 0.5,  # side of the cut-out square, as a fraction of the image size
    ):
        super().__init__()
        unknown = [name for name in policy if name not in POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown} in policy {list(policy)}; choose from {list(POLICIES)}")
        self.policy = tuple(policy)
        self.translation_ratio, self.cutout_ratio = translation_ratio, cutout_ratio
        self.register_buffer("p", torch.tensor(1.0 if self.policy else 0.0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images [N, C, H, W], got {tuple(x.shape)}")
        n, _, h, w = x.shape

        def uniform(*shape: int) -> Tensor:  # float32 even for low-precision images: integer draws stay uniform
            return torch.rand(n, *shape, device=x.device)

        def chosen() -> Tensor:  # which samples an op applies to, each with probability p
            return torch.rand(n, 1, 1, 1, device=x.device) < self.p

        if "color" in self.policy:
            x = torch.where(chosen(), x + (uniform(1, 1, 1) - 0.5).to(x.dtype), x)
            mean = x.mean(dim=1, keepdim=True)
            x = torch.where(chosen(), (x - mean) * (uniform(1, 1, 1) * 2).to(x.dtype) + mean, x)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = torch.where(chosen(), (x - mean) * (uniform(1, 1, 1) + 0.5).to(x.dtype) + mean, x)
        if "translation" in self.policy:
            limit = [int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)]
            limit = torch.tensor(limit, device=x.device)
            shift = (uniform(2) * (2 * limit + 1)).floor() - limit  # integers uniform in [-limit, limit]
            x = translate(x, (shift * chosen().view(n, 1)).long())
        if "cutout" in self.policy:
            size = (int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5))
            # DiffAugment's centres: [0, H) for odd sizes, [0, H] for even ones; the box is clipped
            centres = torch.tensor([h + 1 - size[0] % 2, w + 1 - size[1] % 2], device=x.device)
            top_left = (uniform(2) * centres).long() - torch.tensor([size[0] // 2, size[1] // 2], device=x.device)
            x = torch.where(chosen(), cut_out(x, top_left, size), x)
        return x

    def adjust(self, sign_mean: Tensor | float, batch_size: int) -> None:
        """No-op: only ``AdaptiveAugment`` tunes its probability."""


class AdaptiveAugment(DiffAugment):
    """ADA (Karras et al. 2020, arXiv:2006.06676): each op applied to each image with probability p.

    Every ``interval`` calls of ``adjust`` (one per D step, with E[sign D(real)] of that batch):
        r_t = E[sign D(real)] over the images since the last update,
        p <- clamp(p + sign(r_t - target) * images / (speed_kimg * 1000), 0, 1),
    so p can cross [0, 1] in ``speed_kimg`` thousand images. p and the running sums are buffers:
    they travel in the state_dict and a resumed run continues exactly. Under DDP pass the global
    mean and batch (e.g. after ``LightningModule.all_gather``) so that every rank moves p alike.
    """

    def __init__(
        self,
        policy: Sequence[str] = POLICIES,
        target: float = 0.6,  # r_t above this means D overfits: raise p
        speed_kimg: float = 500.0,  # thousands of images for p to move by 1
        interval: int = 4,  # D steps between updates of p
        p_init: float = 0.0,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ):
        super().__init__(policy, translation_ratio, cutout_ratio)
        self.target, self.speed_kimg, self.interval = target, speed_kimg, interval
        self.register_buffer("p", torch.tensor(float(p_init)))
        self.register_buffer("stats", torch.zeros(3))  # sum of signs, images, D steps since the last update

    @torch.no_grad()
    def adjust(self, sign_mean: Tensor | float, batch_size: int) -> None:
        sign_mean = torch.as_tensor(sign_mean, dtype=self.stats.dtype, device=self.stats.device)
        self.stats += torch.stack([sign_mean * batch_size, self.stats.new_tensor(batch_size), self.stats.new_ones(())])
        # branch-free, so that a GPU step never waits on reading the counter back
        due = self.stats[2] >= self.interval
        r_t = self.stats[0] / self.stats[1]
        step = torch.sign(r_t - self.target) * self.stats[1] / (self.speed_kimg * 1000)
        self.p.copy_(torch.where(due, (self.p + step).clamp(0, 1), self.p))
        self.stats.copy_(torch.where(due, torch.zeros_like(self.stats), self.stats))
