"""The one thin base the adversarial families share: manual optimisation, counters that never reset,
an EMA generator, fixed-noise previews and sampling."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.data import extract_batch_size
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from genlab.models.ema import EMA


@contextmanager
def evaluating(module: nn.Module):
    """Eval mode (dropout off, batch-norm statistics frozen) inside, the caller's mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def linear_decay(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR factor for 0-based ``epoch``: 1 for ``n_epochs`` epochs, then falling linearly so that it
    is 0 once the ``n_epochs_decay`` decay epochs are done (CycleGAN's reference ``linear`` policy)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


class AdversarialModule(L.LightningModule):
    """Base for games of several players trained with Lightning manual optimisation.

    Counts ``batches_seen`` and ``images_seen`` (all processes) over the whole run, in the
    checkpoint: periodic work (``n_critic``, lazy regularisers) asks :meth:`every`, never
    ``batch_idx``, which restarts each epoch. Generators of images from noise build
    ``self.generator`` (with a ``latent_dim``) and call :meth:`init_generator`; ``sample``, the
    fixed-noise ``previews`` and evaluation then use the EMA copy of G when one is configured
    (Karras et al. 2018 evaluate that copy, and so do we). Families that do not sample set
    ``sample = None``.
    """

    batches = "images"  # what training_step consumes: (image, label) batches
    has_frozen_players = True  # each update freezes the other players: DDP must allow unused parameters

    def __init__(
        self,
        ema_decay: float = 0.0,  # fixed β per G update; 0 = off (or use ema_kimg)
        ema_kimg: float | None = None,  # EMA half-life in thousands of images; None = off
        ema_rampup: float | None = None,  # with ema_kimg: half-life at most this × images seen
        grad_clip: float | None = None,  # max global grad norm per update; None = no clipping
    ):
        super().__init__()
        if ema_decay and ema_kimg:
            raise ValueError(f"set one of model.ema_decay={ema_decay} and model.ema_kimg={ema_kimg}, not both")
        self.automatic_optimization = False
        self.ema_decay, self.ema_kimg, self.ema_rampup = ema_decay, ema_kimg, ema_rampup
        self.grad_clip = grad_clip
        self.generator_ema: EMA | None = None
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.int64))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.int64))

    def init_generator(self, n_preview: int = 64) -> None:
        """Call once ``self.generator`` exists: its EMA copy (if configured) and the preview noise."""
        if self.ema_kimg:
            self.generator_ema = EMA(self.generator, ema_kimg=self.ema_kimg, ramp=self.ema_rampup)
        elif self.ema_decay > 0:
            self.generator_ema = EMA(self.generator, decay=self.ema_decay)
        self.register_buffer("fixed_z", torch.randn(n_preview, self.generator.latent_dim))

    def init_losses(self, loss: Mapping) -> None:
        """The adversarial pair a config names (``conf/model/loss/*.yaml``): ``d_loss``, ``g_loss``, and
        whether D's logits read as probabilities (the logistic losses)."""
        self.d_loss, self.g_loss = instantiate(loss["d"]), instantiate(loss["g"])
        self.d_is_probability = bool(loss.get("probability", False))

    def every(self, interval: int) -> bool:
        """Whether this batch is the interval-th, 2·interval-th, ... of the run (counting from 1)."""
        return (int(self.batches_seen) + 1) % interval == 0

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.batches_seen += 1
        self.images_seen += extract_batch_size(batch) * self.trainer.world_size

    def update_ema(self, batch_size: int) -> None:
        """After a G step on ``batch_size`` images per process."""
        if self.generator_ema is not None:
            world = self.trainer.world_size
            self.generator_ema.update(self.generator, batch_size * world, int(self.images_seen))

    @property
    def sampler(self) -> nn.Module:
        """The generator that evaluation and sampling use: the EMA copy when there is one."""
        return self.generator_ema.average if self.generator_ema is not None else self.generator

    def update(self, opt, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``. Call inside ``self.toggled_optimizer(opt)`` wrapping the
        forward pass, so the other players' weights are frozen before their graph is built."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.grad_clip is not None:
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        opt.step()

    @staticmethod
    def linear_decay_schedulers(optimizers, n_epochs: int, n_epochs_decay: int) -> list[LambdaLR]:
        """Per-epoch schedulers holding each optimizer's LR for ``n_epochs``, then taking it linearly
        to 0 over ``n_epochs_decay``; :meth:`on_train_epoch_end` steps them."""
        return [LambdaLR(opt, lambda epoch: linear_decay(epoch, n_epochs, n_epochs_decay)) for opt in optimizers]

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers() or []  # None, one scheduler, or a list (manual optimisation steps them)
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    @staticmethod
    def build_optimizer(config: Mapping, params) -> torch.optim.Optimizer:
        """Optimizers are ``_partial_`` factories in the config (``optimizer_g``, ``optimizer_d``)."""
        return instantiate(config)(params)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z``, by the sampling generator in eval mode."""
        with evaluating(self.sampler) as sampler:
            return sampler(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [-1, 1] from z ~ N(0, I) (EMA weights when enabled)."""
        z = torch.randn(n, self.generator.latent_dim, device=self.device, generator=generator)
        return self.generate(z)

    @torch.no_grad()
    def previews(self, batch) -> dict[str, tuple[torch.Tensor, int]]:
        return {"samples": (self.generate(self.fixed_z), 8)}
