"""Image restoration: a CNN that undoes a degradation, learned from pairs made on the fly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from genlab import losses
from genlab.errors import UserError
from genlab.logs import writes_this_step
from genlab.metrics import paired
from genlab.models.adversarial import AdversarialModule, evaluating
from genlab.networks.restoration import fill_holes, pad_to_multiple

VAL_METRICS = ("psnr", "ssim", "l1")  # + psnr_hole and l1_hole for inpainting (genlab.metrics.paired)


class Restoration(AdversarialModule):
    """Restoration by a CNN f trained on synthetic pairs: x clean, y = degrade(x) drawn afresh for
    every item (``degradation=...``; for inpainting a mask m, 1 = missing pixel, and y = (1 − m) ⊙ x).

    f minimises, on its raw output f(y) (as LaMa does, Suvorov et al. 2022, arXiv:2109.07161),

        L_f = L_pix + λ_feature · L_feat + λ_adv · L_G(D(f(y)))
        L_pix  = mean_pixels w ⊙ |f(y) − x|  (``pixel_loss``: l1; l2 squares it),
                 w = hole_weight · m + valid_weight · (1 − m)
        L_feat = (1/L) Σ_l mean |φ_l(f(y)) − φ_l(x)|^p   (φ: D's layers, feature matching, Wang et al.
                 2018; or a pretrained network from a weights file, the perceptual loss, Johnson et al. 2016)

    and, when λ_adv > 0, a PatchGAN D (Isola et al. 2017, arXiv:1611.07004) minimises
    L_D(D(x), D(f(y))) + γ/2 · E_x‖∇_x D(x)‖²  (R1, Mescheder et al. 2018; ``r1_gamma``=0: off), in
    alternating manual steps. A recurrent network returns T estimates: L_pix is on the last, or
    (``every_step``) the mean over all T (deep supervision, as DRCN). The restored image keeps the
    known pixels exactly: x̂ = m ⊙ f(y) + (1 − m) ⊙ y (validation, :meth:`restore`).

    Validation logs PSNR, SSIM and L1 of x̂ against x (``val/psnr`` picks the best checkpoint), and
    for inpainting PSNR and L1 inside the hole (``val/psnr_hole``, ``val/l1_hole``).
    """

    batches = "degraded"  # {"clean", "degraded", "mask"?} batches (a datamodule with a degradation)
    sample = None  # restores; draws no images from noise
    best_metric = ("val/psnr", "max")  # callbacks=metrics' best checkpoint

    def __init__(
        self,
        network: Mapping[str, Any],  # a genlab.networks RestorationNetwork; in_channels and scale filled in
        pixel_loss: Mapping[str, Any],  # _partial_ of genlab.losses.pixel_l1_loss | pixel_l2_loss
        optimizer: Mapping[str, Any],  # _partial_ optimizer factory for f
        channels: int = 3,
        inpaint: bool = False,  # trained on holes: restore(y, mask) needs the mask
        scale: int = 1,  # the output is scale times larger than y (super-resolution)
        every_step: bool = False,  # recurrent networks: L_pix on every estimate, not only the last
        discriminator: Mapping[str, Any] | None = None,  # PatchGAN; built when lambda_adv > 0
        loss: Mapping[str, Any] | None = None,  # {d, g}: the GAN loss pair of genlab.losses
        optimizer_d: Mapping[str, Any] | None = None,
        lambda_adv: float = 0.0,  # weight of the adversarial term; 0 = no discriminator
        r1_gamma: float = 0.0,  # R1 weight γ (applied as γ/2) on D's real images; 0 = off
        lambda_feature: float = 0.0,  # weight of L_feat; 0 = off
        feature_network: Mapping[str, Any] | None = None,  # null = D's layers; or genlab.networks.features.VGG
        feature_power: int = 1,  # p of L_feat: 1 (pix2pixHD) or 2 (LaMa, perceptual losses)
        scheduler: Mapping[str, Any] | None = None,  # _partial_ LR scheduler stepped per epoch; null = constant
        grad_clip: float | None = None,  # max global grad norm per update; None = off
        prefill: bool = False,  # inpainting: f sees the holes filled smoothly (push-pull + membrane), not grey
        prefill_smoothing: int = 100,  # Jacobi steps of the membrane fill after push-pull
    ):
        super().__init__(grad_clip=grad_clip)
        self.save_hyperparameters()
        if lambda_feature > 0 and feature_network is None and lambda_adv <= 0:
            raise ValueError(
                "model.lambda_feature > 0 on the discriminator's features needs a trained discriminator: set "
                "model.lambda_adv > 0, or give model.feature_network (a pretrained network from a weights file)"
            )
        self.generator = instantiate(network, in_channels=channels, scale=scale)
        self.pixel_loss = instantiate(pixel_loss)
        self.discriminator = instantiate(discriminator) if lambda_adv > 0 else None
        if self.discriminator is not None:
            self.d_loss, self.g_loss = instantiate(loss["d"]), instantiate(loss["g"])
        # Each update freezes the other player: DDP must allow unused parameters only when there are two.
        self.has_frozen_players = self.discriminator is not None
        # Built in setup() for training only, and kept out of the state dict (see feature_net).
        self._feature_net: list[torch.nn.Module] = []

    # ------------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        config = self.hparams.feature_network
        if stage == "fit" and self.hparams.lambda_feature > 0 and config is not None and not self._feature_net:
            self._feature_net = [instantiate(config).requires_grad_(False).eval()]

    @property
    def feature_net(self) -> torch.nn.Module | None:
        """The pretrained network of the perceptual loss: a plain attribute, not a submodule, so that
        checkpoints do not carry hundreds of MB of VGG and restoring needs no weights file."""
        return self._feature_net[0].to(self.device) if self._feature_net else None

    def configure_optimizers(self):
        optimizers = [self.build_optimizer(self.hparams.optimizer, self.generator.parameters())]
        if self.discriminator is not None:
            optimizers.append(self.build_optimizer(self.hparams.optimizer_d, self.discriminator.parameters()))
        if self.hparams.scheduler is None:
            return optimizers
        return optimizers, [instantiate(self.hparams.scheduler)(opt) for opt in optimizers]

    def estimates(self, y: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        """f(y) as a list: T estimates of a recurrent network, one of any other. With ``prefill``, the
        holes of y are first filled from their surroundings (:func:`fill_holes`): f refines a smooth fill
        (the coarse-to-fine split of DeepFill, Yu et al. 2018, with a classical coarse stage), and a
        residual network starts from it instead of from grey."""
        if self.hparams.prefill and mask is not None:
            y = fill_holes(y, mask, self.hparams.prefill_smoothing)
        out = self.generator(y, mask)
        return out if isinstance(out, list) else [out]

    def pixel_term(self, estimates: list[torch.Tensor], clean: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """L_pix of the last estimate, or (``every_step``) its mean over all T estimates."""
        supervised = estimates if self.hparams.every_step else estimates[-1:]
        return sum(self.pixel_loss(e, clean, mask) for e in supervised) / len(supervised)

    def features(self, output: torch.Tensor, clean: torch.Tensor) -> tuple[list, list, torch.Tensor | None]:
        """(φ(f(y)), φ(x), D's logits of f(y) or None) for the generator's turn."""
        logits_fake = None
        if self.discriminator is not None:
            features_fake, logits_fake = self.discriminator.forward_features(output)
        if self.hparams.lambda_feature <= 0:
            return [], [], logits_fake
        if self.feature_net is not None:
            return self.feature_net(output), self.feature_net(clean), logits_fake
        with torch.no_grad():
            features_real, _ = self.discriminator.forward_features(clean)
        return features_fake, features_real, logits_fake

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        clean, degraded, mask = batch["clean"], batch["degraded"], batch.get("mask")
        optimizers = self.optimizers()
        opt_f, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        hp = self.hparams

        with self.toggled_optimizer(opt_f):  # D frozen: the adversarial and feature terms flow through it
            estimates = self.estimates(degraded, mask)
            output = estimates[-1]
            terms = {"loss_pixel": self.pixel_term(estimates, clean, mask)}
            features_fake, features_real, logits_fake = self.features(output, clean)
            if features_fake:
                terms["loss_feature"] = hp.lambda_feature * losses.feature_matching_loss(
                    features_fake, features_real, hp.feature_power
                )
            if logits_fake is not None:
                terms["loss_g_adv"] = hp.lambda_adv * self.g_loss(logits_fake)
            terms["loss_g"] = sum(terms.values())
            self.update(opt_f, terms["loss_g"])

        if opt_d is not None:
            with self.toggled_optimizer(opt_d):
                real = clean.detach().requires_grad_(hp.r1_gamma > 0)
                logits_real = self.discriminator(real)
                loss_d = self.d_loss(logits_real, self.discriminator(output.detach()))
                terms["loss_d"] = loss_d
                if hp.r1_gamma > 0:
                    terms["r1"] = losses.r1_penalty(logits_real, real)
                    loss_d = loss_d + 0.5 * hp.r1_gamma * terms["r1"]
                self.update(opt_d, loss_d)

        if writes_this_step(self.trainer):
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()})

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        clean, mask = batch["clean"], batch.get("mask")
        restored = self.restore(batch["degraded"], mask)
        holes = mask if mask is not None and bool(mask.any()) else None
        metrics = paired.scores(restored, clean, VAL_METRICS, holes)
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=len(clean), sync_dist=True)

    # ------------------------------------------------------------------------------------- surfaces
    @torch.no_grad()
    def restore(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The clean estimate x̂ in [-1, 1] of degraded images y [N, C, h, w] in [-1, 1]: [N, C, h·scale,
        w·scale]. Any h, w: padded by reflection to the network's size multiple, cropped back.
        Inpainting models need ``mask`` [N, 1, h, w] (non-zero = missing): what y holds there is
        ignored (grey, as in training) and every other pixel of y is returned unchanged."""
        hp = self.hparams
        if hp.inpaint and mask is None:
            raise UserError(
                "this model fills holes and needs to know where they are: restore(y, mask) with mask "
                "[N, 1, H, W], non-zero = missing pixel (restore.py: mask=FILE_OR_DIR)"
            )
        if mask is not None and not hp.inpaint:
            raise UserError(f"this model was trained without holes (scale x{hp.scale}); it takes no mask")
        y = y.to(self.device)
        if y.dim() != 4 or y.shape[1] != hp.channels:
            raise ValueError(f"restore: y must be [N, {hp.channels}, H, W] in [-1, 1], got {tuple(y.shape)}")
        h, w = y.shape[-2:]
        if mask is not None:
            if mask.dim() != 4 or mask.shape[0] != y.shape[0] or mask.shape[1] != 1 or mask.shape[-2:] != (h, w):
                raise ValueError(f"restore: mask must be [{y.shape[0]}, 1, {h}, {w}] like y, got {tuple(mask.shape)}")
            mask = (mask.to(self.device) > 0).to(y.dtype)
            y = y * (1 - mask)  # missing pixels grey, as the network saw them in training
        multiple = self.generator.size_multiple
        padded_mask = None if mask is None else pad_to_multiple(mask, multiple)
        with evaluating(self.generator):
            output = self.estimates(pad_to_multiple(y, multiple), padded_mask)[-1]
        output = output[..., : h * hp.scale, : w * hp.scale].clamp(-1, 1)
        return output if mask is None else torch.where(mask > 0, output, y)

    @torch.no_grad()
    def previews(self, batch: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
        """One row per image: degraded | restored | clean (the degraded image enlarged for upscaling)."""
        clean, degraded = batch["clean"], batch["degraded"]
        restored = self.restore(degraded, batch.get("mask"))
        if degraded.shape[-2:] != clean.shape[-2:]:
            degraded = F.interpolate(degraded, size=clean.shape[-2:], mode="nearest")
        return {"restorations": (torch.stack([degraded, restored, clean], dim=1).flatten(0, 1), 3)}
