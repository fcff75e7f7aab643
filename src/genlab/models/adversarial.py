"""The one thin base the adversarial families share: manual optimisation and an EMA generator."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn


class AdversarialModule(L.LightningModule):
    """Base for games of several players trained with Lightning manual optimisation.

    Subclasses build ``self.generator`` and call :meth:`init_ema` once it exists; ``sample`` and
    previews then use the exponential moving average of the generator weights when
    ``ema_decay`` > 0 (Karras et al. 2018 evaluate that copy, and so do we).
    """

    def __init__(self, ema_decay: float = 0.0, grad_clip: float | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.ema_decay = ema_decay  # per optimizer step of G; 0 = no EMA copy
        self.grad_clip = grad_clip  # max global grad norm per update; None = no clipping
        self.generator_ema: nn.Module | None = None

    def init_ema(self) -> None:
        if self.ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - self.ema_decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    @property
    def sampler(self) -> nn.Module:
        """The generator that evaluation and sampling use: the EMA copy when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def update(self, opt, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``. Call inside ``self.toggled_optimizer(opt)`` wrapping the
        forward pass, so the other players' weights are frozen before their graph is built."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.grad_clip is not None:
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        opt.step()

    @staticmethod
    def build_optimizer(config: Mapping, params) -> torch.optim.Optimizer:
        """Optimizers are ``_partial_`` factories in the config (``optimizer_g``, ``optimizer_d``)."""
        return instantiate(config)(params)
