"""Exponential moving average of a module's weights, parameterised as the StyleGAN papers do.

Karras et al. (2018, 2020) evaluate a generator whose weights are an EMA of the trained ones, and
give its speed as a half-life in images rather than a per-step decay, so that it does not change
with the batch size: after ``ema_kimg`` thousand images an old weight has half its influence left.
With an optional ramp-up the half-life is at most ``ramp`` times the images seen so far, so early
averages forget the random initialisation quickly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """An averaged copy of ``module``. Per update on a batch of B images (all processes together):

        β = 0.5 ^ (B / ema_nimg),   ema_nimg = ema_kimg · 1000        (or min(that, images_seen · ramp))
        θ_ema ← β · θ_ema + (1 − β) · θ,    buffers copied as they are

    ``decay`` instead fixes β per update (the older ``ema_decay`` convention). The copy is a
    submodule, so it is saved in and restored from the checkpoint with the model's state.
    """

    def __init__(
        self,
        module: nn.Module,
        ema_kimg: float | None = None,  # half-life in thousands of images
        ramp: float | None = None,  # half-life at most ramp × images seen; None = no ramp-up
        decay: float | None = None,  # fixed β per update instead of ema_kimg
    ):
        super().__init__()
        if (ema_kimg is None) == (decay is None):
            raise ValueError("EMA takes exactly one of ema_kimg (half-life) and decay (fixed β per update)")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.ema_kimg, self.ramp, self.decay = ema_kimg, ramp, decay
        self.average = copy.deepcopy(module).requires_grad_(False).eval()

    def beta(self, batch_size: int, images_seen: int) -> float:
        """The weight of the old average for this update (``images_seen`` before this batch)."""
        if self.decay is not None:
            return self.decay
        ema_nimg = self.ema_kimg * 1000
        if self.ramp is not None:
            ema_nimg = min(ema_nimg, images_seen * self.ramp)
        return 0.5 ** (batch_size / max(ema_nimg, 1e-8))

    @torch.no_grad()
    def update(self, module: nn.Module, batch_size: int = 1, images_seen: int = 0) -> None:
        beta = self.beta(batch_size, images_seen)
        for p_ema, p in zip(self.average.parameters(), module.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for b_ema, b in zip(self.average.buffers(), module.buffers(), strict=True):
            b_ema.copy_(b)

    def train(self, mode: bool = True) -> EMA:  # an evaluator: batch-norm statistics are copied, not learned
        return super().train(False)

    def forward(self, *args, **kwargs):
        return self.average(*args, **kwargs)
