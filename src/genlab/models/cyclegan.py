"""CycleGAN: unpaired image-to-image translation with two generators, two discriminators and a cycle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_warn

from genlab import losses
from genlab.logs import writes_this_step
from genlab.metrics import paired
from genlab.models.adversarial import AdversarialModule, evaluating


class ImagePool:
    """History of generated images (Shrivastava et al. 2017, arXiv:1612.07828), as CycleGAN uses it:
    D is updated on a mix of current fakes and fakes from earlier generator states, which damps
    oscillation. Until ``size`` images are stored every fake is stored and returned; afterwards
    each fake is, with probability ½, swapped for a random stored one (which is returned), and
    otherwise returned as is."""

    def __init__(self, size: int = 50):
        self.size = size  # stored images; 0 = no pool
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()  # D's update must not reach back into G
        if self.size == 0:
            return images
        if self.images and self.images[0].device != images.device:  # restored from a checkpoint read on the CPU
            self.images = [image.to(images.device) for image in self.images]
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor:
        """The stored images as one (n, C, H, W) tensor (n = 0: an empty tensor), for the checkpoint:
        a resumed run must see the history the uninterrupted one sees."""
        return torch.stack(self.images) if self.images else torch.empty(0)

    def load(self, images: torch.Tensor) -> None:
        if len(images) > self.size:
            raise ValueError(
                f"the checkpoint's image pool holds {len(images)} images but model.pool_size={self.size}; "
                "resume with the pool_size the run was trained with"
            )
        self.images = list(images.unbind(0))


class CycleGAN(AdversarialModule):
    """CycleGAN (Zhu, Park, Isola & Efros 2017, arXiv:1703.10593).

    Names follow the paper's reference code: G_A = ``g_a`` maps A→B, G_B = ``g_b`` maps B→A,
    D_A = ``d_a`` judges domain B (G_A's outputs), D_B = ``d_b`` judges domain A. With
    fake_b = G_A(a), rec_a = G_B(fake_b), fake_a = G_B(b), rec_b = G_A(fake_a), the generators minimise

        L_G = L_adv(D_A(fake_b)) + L_adv(D_B(fake_a))                            (loss_g_adv_a/b)
            + λ_cycle · (‖rec_a − a‖₁ + ‖rec_b − b‖₁)                              (loss_cycle_a/b)
            + λ_identity · λ_cycle · (‖G_A(b) − b‖₁ + ‖G_B(a) − a‖₁)              (loss_idt_a/b)

    and each discriminator minimises half its adversarial loss on real images and on fakes drawn
    from a history pool of 50:  L_D_A = ½ L_D(D_A(b), D_A(pool_b(fake_b))),  L_D_B likewise.
    LSGAN losses by default (``model/loss=lsgan``): L_adv(l) = E[(l − 1)²], L_D = E[(l_real − 1)²] + E[l_fake²].
    Adam(2e-4, β₁ = 0.5); the LR is constant for ``n_epochs`` and decays linearly to 0 over
    ``n_epochs_decay`` (stepped per epoch).
    """

    def __init__(
        self,
        generator: Mapping[str, Any],  # one config, two instances: G_A and G_B
        discriminator: Mapping[str, Any],  # one config, two instances: D_A and D_B
        loss: Mapping[str, Any],
        optimizer_g: Mapping[str, Any],
        optimizer_d: Mapping[str, Any],
        lambda_cycle: float = 10.0,  # λ of the cycle loss, both directions
        lambda_identity: float = 0.5,  # identity loss weight relative to λ_cycle; 0 = off
        pool_size: int = 50,  # fakes kept per discriminator; 0 = no pool
        n_epochs: int = 100,  # epochs at the initial LR
        n_epochs_decay: int = 100,  # epochs of linear decay to 0 after those
        grad_clip: float | None = None,
    ):
        super().__init__(grad_clip=grad_clip)
        self.save_hyperparameters()
        self.g_a, self.g_b = instantiate(generator), instantiate(generator)
        self.d_a, self.d_b = instantiate(discriminator), instantiate(discriminator)
        self.init_losses(loss)
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)  # fake_a and fake_b history

    batches = "domains"  # {"a": ..., "b": ...} batches of two unpaired domains

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The pools are plain lists, not buffers: their size changes, and generate.py needs none of it.
        checkpoint["image_pools"] = {"a": self.pool_a.state(), "b": self.pool_b.state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        pools = checkpoint.get("image_pools")  # absent from checkpoints written before pools were saved
        if pools is not None:
            self.pool_a.load(pools["a"])
            self.pool_b.load(pools["b"])

    sample = None  # translates; draws no images from noise

    def configure_optimizers(self):
        # One optimizer per side, over both networks of that side, as in the reference code; Adam is
        # per parameter, so this is the same as one Adam per network.
        opt_g = self.build_optimizer(self.hparams.optimizer_g, [*self.g_a.parameters(), *self.g_b.parameters()])
        opt_d = self.build_optimizer(self.hparams.optimizer_d, [*self.d_a.parameters(), *self.d_b.parameters()])
        schedulers = self.linear_decay_schedulers((opt_g, opt_d), self.hparams.n_epochs, self.hparams.n_epochs_decay)
        return [opt_g, opt_d], schedulers

    def on_train_start(self) -> None:
        planned = self.hparams.n_epochs + self.hparams.n_epochs_decay
        if self.trainer.max_epochs not in (planned, -1, None):
            rank_zero_warn(
                f"trainer.max_epochs={self.trainer.max_epochs} but model.n_epochs + model.n_epochs_decay = "
                f"{planned}: the LR will not end at 0 at the end of training"
            )

    def generator_losses(
        self, real_a: torch.Tensor, real_b: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The weighted terms of L_G, and (fake_a, fake_b) for the discriminators' turn."""
        lambda_cycle = self.hparams.lambda_cycle
        lambda_idt = self.hparams.lambda_identity * lambda_cycle
        fake_b = self.g_a(real_a)
        rec_a = self.g_b(fake_b)
        fake_a = self.g_b(real_b)
        rec_b = self.g_a(fake_a)
        terms = {
            "loss_g_adv_a": self.g_loss(self.d_a(fake_b)),
            "loss_g_adv_b": self.g_loss(self.d_b(fake_a)),
            "loss_cycle_a": losses.cycle_loss(rec_a, real_a) * lambda_cycle,
            "loss_cycle_b": losses.cycle_loss(rec_b, real_b) * lambda_cycle,
        }
        if lambda_idt > 0:
            terms["loss_idt_a"] = losses.identity_loss(self.g_a(real_b), real_b) * lambda_idt
            terms["loss_idt_b"] = losses.identity_loss(self.g_b(real_a), real_a) * lambda_idt
        return terms, fake_a, fake_b

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["a"], batch["b"]
        opt_g, opt_d = self.optimizers()

        with self.toggled_optimizer(opt_g):  # D_A and D_B frozen: G's loss flows through them
            terms, fake_a, fake_b = self.generator_losses(real_a, real_b)
            terms["loss_g"] = sum(terms.values())
            self.update(opt_g, terms["loss_g"])

        with self.toggled_optimizer(opt_d):  # on detached fakes, current or from the history pools
            terms["loss_d_a"] = 0.5 * self.d_loss(self.d_a(real_b), self.d_a(self.pool_b.query(fake_b)))
            terms["loss_d_b"] = 0.5 * self.d_loss(self.d_b(real_a), self.d_b(self.pool_a.query(fake_a)))
            self.update(opt_d, terms["loss_d_a"] + terms["loss_d_b"])

        if writes_this_step(self.trainer):
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()})

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Paired metrics where the data knows the true translation (``b_true``, e.g. shapes_unpaired)."""
        if "b_true" not in batch:
            return
        fake_b = self.g_a(batch["a"])
        metrics = paired.scores(fake_b, batch["b_true"], ("psnr", "ssim"), tag="_a2b")
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=len(fake_b), sync_dist=True)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """Images [N, C, H, W] in [-1, 1] of one domain to the other, same shape: ``a2b`` runs G_A,
        ``b2a`` runs G_B. Any H, W: padded by reflection to the generator's size multiple, then
        cropped back."""
        generators = {"a2b": self.g_a, "b2a": self.g_b}
        if direction not in generators:
            raise ValueError(f"direction={direction!r}: use 'a2b' or 'b2a'")
        generator = generators[direction]
        h, w = x.shape[-2:]
        m = generator.size_multiple  # and at least 2m: instance norm needs > 1 pixel at the bottleneck
        pad_h, pad_w = max(-h % m, 2 * m - h), max(-w % m, 2 * m - w)
        # Reflection needs the pad to be smaller than the side; tiny images fall back to replication.
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x.to(self.device), (0, pad_w, 0, pad_h), mode=mode)
        with evaluating(generator):
            return generator(x)[..., :h, :w]

    @torch.no_grad()
    def previews(self, batch: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
        """One row per image: real_a | fake_b | rec_a, and real_b | fake_a | rec_b."""
        grids = {}
        with evaluating(self):
            for name, real, forward, backward in (
                ("a2b", batch["a"], self.g_a, self.g_b),
                ("b2a", batch["b"], self.g_b, self.g_a),
            ):
                fake = forward(real)
                grids[name] = (torch.stack([real, fake, backward(fake)], dim=1).flatten(0, 1), 3)
        return grids
