"""Training-health monitors: say in words, while a run trains, that it has gone wrong.

A GAN whose discriminator has won, a VAE whose posterior has collapsed or a codebook down to a
handful of codes trains on for hours while its loss curves look unremarkable to anyone not watching
for that failure; a non-finite update ruins every weight it touches, and Lightning's save-on-exception
would then write that state over the last good ``last.ckpt``. :class:`TrainingHealth` watches the
signals the families already log (and the gradients their optimizers are about to apply), warns once
per kind in the run's log with what to try, logs a ``health/...`` flag (0/1) or value for each check so
the onset can be plotted, and stops a run on non-finite gradients *before* the optimizer applies them,
saving nothing.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from genlab import surfaces
from genlab.errors import UserError
from genlab.logs import writes_this_step
from genlab.metrics import extractors

log = logging.getLogger("genlab")

CLASSIFIER = "genlab.metrics.extractors.Classifier"


class TrainingDiverged(UserError):
    """Non-finite gradients: the run stopped before applying them and saved nothing."""


class Alarm:
    """A condition checked again and again; it fires (once) after ``patience`` bad checks in a row."""

    def __init__(self, key: str, patience: int = 1):
        self.key = key  # health/<kind>, logged 0/1 at every check
        self.patience = max(1, patience)
        self.count = 0  # consecutive bad checks
        self.fired = False

    def record(self, values: dict[str, float], bad: bool) -> bool:
        """Writes this check's 0/1 flag into ``values`` (what the loggers get), then :meth:`check`."""
        values[self.key] = float(bad)
        return self.check(bad)

    def check(self, bad: bool) -> bool:
        """Record one check; True exactly once, when the alarm goes off."""
        self.count = self.count + 1 if bad else 0
        if self.count >= self.patience and not self.fired:
            self.fired = True
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "fired": self.fired}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.count, self.fired = int(state["count"]), bool(state["fired"])


def class_coverage(logits: torch.Tensor, min_share: float) -> int:
    """Classes that receive at least ``min_share`` of the images (by the classifier's argmax)."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
    return int((counts >= min_share * len(logits)).sum())


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance between the feature vectors of distinct images (0 for duplicates)."""
    n = len(features)
    features = features.double()
    return float(torch.cdist(features, features).sum() / (n * (n - 1)))


class TrainingHealth(L.Callback):
    """Warns once per kind when a run goes wrong; every check also logs a ``health/...`` key.

    - ``health/d_wins``: D winning outright, mean D(real) > 1 − ``d_wins_margin`` (under label smoothing,
      where D's best answer on real images is the loss's ``real_label`` t and its mean jitters about it:
      D(real) > t − (1 − t)) and D(fake) < ``d_wins_margin`` (``train/d_real``, ``train/d_fake``) on ``d_wins_patience``
      consecutive logged steps. Only where those are probabilities (the model's ``loss.probability``:
      the logistic losses); raw hinge / least-squares / Wasserstein outputs have no value that means
      "won", so the check is off there.
    - ``health/grad_norm_<players>``: the global L2 norm of the gradients an optimizer is about to
      apply (after the model's own clipping), logged on the steps the loggers write;
      ``health/grad_explosion`` when it exceeds ``grad_norm_factor`` × the median of the run's earlier
      logged norms of that optimizer, ``grad_norm_patience`` logged steps in a row.
    - Non-finite gradients (from a NaN/inf loss or an overflow), checked at every optimizer step before
      the update: the run stops with :class:`TrainingDiverged`, and no checkpoint is written from the
      diverged state (Lightning's save-on-exception is switched off first), so the last good
      ``last.ckpt`` stays. Under a GradScaler (``precision=16-mixed``) overflowing steps are routine
      and skipped by the scaler; the run stops only after ``scaler_patience`` of them in a row.
    - ``health/mode_collapse`` / ``health/near_duplicates``: each ``every_n_epochs`` the domain
      classifier (the data's shipped one, as the sample-quality metrics use; none, no check) labels
      ``n_samples`` samples of fixed noise. ``health/class_coverage`` counts the classes with at least
      ``min_class_share`` of them: mode collapse when it falls below ``coverage_drop`` × the run's best,
      once that best reached half the real images' coverage. ``health/sample_diversity`` is the
      samples' mean pairwise feature distance over the real images': near duplicates when it falls
      below ``min_diversity`` after having reached 0.5. (An untrained G draws one texture whatever the
      noise; a run that never produced varied samples shows in its grids and FID, not here.) The
      checks take at most ``max_overhead`` of the training time: slow samplers (an autoregressive
      prior) are checked less often than ``every_n_epochs``.
    - ``health/posterior_collapse``: ``val/active_units`` below ``min_active_units``.
    - ``health/codebook_collapse``: ``val/perplexity`` below ``perplexity_drop`` × its best so far,
      or below ``min_perplexity``.

    Epoch-level checks need ``epoch_patience`` bad epochs in a row. Any threshold set to null turns its
    check off.
    """

    def __init__(
        self,
        check_nonfinite: bool = True,  # stop on non-finite gradients (costs one device sync per step)
        scaler_patience: int = 20,  # under a GradScaler: consecutive non-finite steps before stopping
        d_wins_margin: float | None = 0.002,  # D(real) > 1 − margin and D(fake) < margin; None = off
        d_wins_patience: int = 10,  # consecutive logged steps
        grad_norm_factor: float | None = 1000.0,  # × median of earlier logged norms; None = off
        grad_norm_patience: int = 3,  # consecutive logged steps
        grad_norm_warmup: int = 10,  # logged norms of an optimizer before it is compared with them
        n_samples: int = 256,  # fixed-noise samples classified per check; 0 = no sample checks
        every_n_epochs: int = 1,  # sample checks every this many epochs ...
        max_overhead: float | None = 0.02,  # ... while they take at most this share of the time; None = always
        classifier: str = "auto",  # the data's shipped classifier, or digits | shapes | a file
        min_class_share: float = 0.02,  # a class is covered with at least this share of the samples
        coverage_drop: float | None = 0.5,  # mode collapse: coverage < this × the run's best; None = off
        min_diversity: float | None = 0.1,  # near duplicates: sample / real pairwise distance; None = off
        min_active_units: int | None = 1,  # posterior collapse: val/active_units below this; None = off
        perplexity_drop: float | None = 0.25,  # codebook collapse: < this × the best perplexity; None = off
        min_perplexity: float | None = 2.0,  # ... or below this many effective codes; None = off
        epoch_patience: int = 2,  # consecutive bad epoch-level checks before warning
        seed: int = 0,  # the fixed noise of the sample checks
    ):
        self.check_nonfinite, self.scaler_patience = check_nonfinite, scaler_patience
        self.d_wins_margin = d_wins_margin
        self.grad_norm_factor, self.grad_norm_warmup = grad_norm_factor, grad_norm_warmup
        self.n_samples, self.every_n_epochs, self.classifier = n_samples, every_n_epochs, classifier
        self.max_overhead = max_overhead
        self.min_class_share, self.coverage_drop, self.min_diversity = min_class_share, coverage_drop, min_diversity
        self.min_active_units = min_active_units
        self.perplexity_drop, self.min_perplexity = perplexity_drop, min_perplexity
        self.seed = seed
        self.alarms = {
            "d_wins": Alarm("health/d_wins", d_wins_patience),
            "grad_explosion": Alarm("health/grad_explosion", grad_norm_patience),
            "mode_collapse": Alarm("health/mode_collapse", epoch_patience),
            "near_duplicates": Alarm("health/near_duplicates", epoch_patience),
            "posterior_collapse": Alarm("health/posterior_collapse", epoch_patience),
            "codebook_collapse": Alarm("health/codebook_collapse", epoch_patience),
        }
        self.grad_norms: dict[str, list[float]] = {}  # logged norms per optimizer, for the median
        self.best_coverage = 0
        self.best_diversity = 0.0
        self.best_perplexity = 0.0
        self.nonfinite_steps = 0  # consecutive, under a GradScaler
        self._names: dict[int, str] = {}  # id(optimizer) -> the players it trains
        self._extractor: torch.nn.Module | None = None
        self._real_distance: float | None = None
        self._real_coverage = 0  # classes the real images cover by the same rule
        self._validated = False  # a (non-sanity) validation ran since the last epoch-level check
        self._started = 0.0  # time.monotonic() at the start of training
        self._check_seconds = 0.0  # spent on sample checks since then

    # --- set-up ---------------------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started, self._check_seconds = time.monotonic(), 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._names = optimizer_names(pl_module, trainer.optimizers)
        if self.n_samples and self._extractor is None and surfaces.can(pl_module, surfaces.Sampler):
            self._extractor = self.build_classifier(trainer, pl_module)

    def build_classifier(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.nn.Module | None:
        """The domain classifier and the real images' mean pairwise feature distance; None (and a
        note) when there is none for this data."""
        datamodule = trainer.datamodule
        try:
            extractor = extractors.for_data({"_target_": CLASSIFIER, "weights": self.classifier}, datamodule)
        except (ValueError, FileNotFoundError) as err:
            log.info("TrainingHealth: no mode-collapse checks in this run: %s", err)
            return None
        channels = getattr(datamodule, "channels", extractor.net.channels)
        loader = datamodule.val_dataloader() if datamodule is not None else None
        if channels != extractor.net.channels or loader is None:
            log.info("TrainingHealth: no mode-collapse checks: the classifier does not fit this data")
            return None
        extractor.to(pl_module.device)
        with torch.random.fork_rng(devices=[]):  # reading the loader must not move the run's randomness
            real = first_images(loader, self.n_samples).to(pl_module.device)
        if len(real) < 2:
            return None
        out = extractor(real)
        self._real_distance = mean_pairwise_distance(out["features"])
        self._real_coverage = class_coverage(out["logits"], self.min_class_share)
        return extractor

    # --- per step -------------------------------------------------------------------------------

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        logged = writes_this_step(trainer)
        if not (self.check_nonfinite or logged):
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        norm = float(torch.nn.utils.get_total_norm(grads))  # one sync with the device
        name = self._names.get(id(optimizer), "")
        if self.check_nonfinite and not math.isfinite(norm):
            self.nonfinite(trainer, pl_module, name)
            return
        self.nonfinite_steps = 0
        if logged and math.isfinite(norm):
            key = f"health/grad_norm_{name}" if name else "health/grad_norm"
            pl_module.log(key, norm, on_step=True, on_epoch=False)
            if self.grad_norm_factor:
                self.check_grad_norm(trainer, pl_module, name, norm)

    def check_grad_norm(self, trainer: L.Trainer, pl_module: L.LightningModule, name: str, norm: float) -> None:
        history = self.grad_norms.setdefault(name, [])
        median = statistics.median(history) if len(history) >= self.grad_norm_warmup else None
        bad = median is not None and norm > self.grad_norm_factor * median
        history.append(norm)
        alarm = self.alarms["grad_explosion"]
        pl_module.log(alarm.key, float(bad), on_step=True, on_epoch=False)
        if alarm.check(bad):
            who = f"the {name} optimizer's" if name else "the"
            warn(
                f"gradient explosion at step {trainer.global_step}: {who} gradient norm is {norm:.3g}, "
                f"{norm / median:.0f}× the median of the run's earlier logged norms ({median:.3g}), on "
                f"{alarm.patience} logged steps in a row; lower the learning rate or clip the gradients "
                "(model.grad_clip=1.0 for the adversarial families)"
            )

    def nonfinite(self, trainer: L.Trainer, pl_module: L.LightningModule, name: str) -> None:
        """Stop before the optimizer applies non-finite gradients, saving nothing."""
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.nonfinite_steps += 1
        if scaler is not None and self.nonfinite_steps < self.scaler_patience:
            return  # the scaler skips this step and lowers its scale
        # What is in memory is the diverged state (and batch-norm statistics may already hold inf):
        # Lightning's save-on-exception must not write it over the last good checkpoint.
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_on_exception = False
        log_now(trainer, {"health/nonfinite": 1.0})
        who = f"the {name} optimizer's" if name else "the"
        kept = saved_checkpoints(trainer)
        rates = ", ".join(f"model.{k}.lr" for k in pl_module.hparams if k.startswith("optimizer")) or "the lr"
        raise TrainingDiverged(
            f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch + 1}): {who} gradients "
            "are not finite (a NaN or inf loss). The run stopped before applying them and saved nothing from this "
            "state; "
            + (f"the last good checkpoint is {', '.join(kept)}. " if kept else "no checkpoint had been saved yet. ")
            + f"Lower the learning rate ({rates}) or clip gradients (model.grad_clip=1.0), then resume with "
            "ckpt_path=<last good checkpoint> or start again"
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.d_wins_margin is None or not writes_this_step(trainer) or not d_outputs_probabilities(pl_module):
            return
        metrics = trainer.callback_metrics
        if "train/d_real" not in metrics or "train/d_fake" not in metrics:
            return
        d_real, d_fake = float(metrics["train/d_real"]), float(metrics["train/d_fake"])
        target = d_real_target(pl_module)  # under label smoothing D(real) jitters about it by up to its smoothing
        bad = d_real > target - max(self.d_wins_margin, 1 - target) and d_fake < self.d_wins_margin
        alarm = self.alarms["d_wins"]
        pl_module.log(alarm.key, float(bad), on_step=True, on_epoch=False)
        if alarm.check(bad):
            warn(
                f"the discriminator is winning outright at step {trainer.global_step}: mean D(real) = {d_real:.4f} "
                f"and D(fake) = {d_fake:.4f} on {alarm.patience} logged steps in a row, so G learns little from it. "
                "Try a lower D learning rate (model.optimizer_d.lr), R1 (model.r1_gamma=0.1), spectral norm "
                "(model.discriminator.spectral_norm=true) or a narrower D"
            )

    # --- per epoch ------------------------------------------------------------------------------

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values: dict[str, float] = {}
        if self._validated:  # this epoch's validation metrics (Lightning validates before this hook)
            self._validated = False
            values |= self.check_latents(trainer)
        if self.samples_due(trainer.current_epoch + 1):
            started = time.monotonic()
            values |= self.check_samples(trainer, pl_module)
            self._check_seconds += time.monotonic() - started
        for key, value in values.items():
            # Identical on every rank (synced validation metrics, the same samples); sync_dist says so.
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True)

    def samples_due(self, epoch: int) -> bool:
        if self._extractor is None or not self.every_n_epochs or epoch % self.every_n_epochs:
            return False
        budget = None if self.max_overhead is None else self.max_overhead * (time.monotonic() - self._started)
        return budget is None or self._check_seconds <= budget

    def check_latents(self, trainer: L.Trainer) -> dict[str, float]:
        """Posterior and codebook collapse from the validation metrics the autoencoders log."""
        metrics, epoch, values = trainer.callback_metrics, trainer.current_epoch + 1, {}
        if self.min_active_units is not None and "val/active_units" in metrics:
            active = int(metrics["val/active_units"])
            alarm = self.alarms["posterior_collapse"]
            if alarm.record(values, active < self.min_active_units):
                warn(
                    f"posterior collapse after epoch {epoch}: {active} active latent units (val/active_units) for "
                    f"{alarm.patience} epochs: the decoder ignores z and samples all look alike. Lower the KL weight "
                    "(model.beta), warm it up (model.kl_warmup_steps=500) or weaken the decoder"
                )
        if "val/perplexity" in metrics and (self.perplexity_drop is not None or self.min_perplexity is not None):
            perplexity = float(metrics["val/perplexity"])
            usage = float(metrics["val/code_usage"]) if "val/code_usage" in metrics else None
            best, self.best_perplexity = self.best_perplexity, max(self.best_perplexity, perplexity)
            fell = self.perplexity_drop is not None and perplexity < self.perplexity_drop * best
            low = self.min_perplexity is not None and perplexity < self.min_perplexity
            alarm = self.alarms["codebook_collapse"]
            if alarm.record(values, fell or low):
                used = f", {usage:.1%} of the codes used" if usage is not None else ""
                warn(
                    f"codebook collapse after epoch {epoch}: val/perplexity = {perplexity:.2f} effective codes{used} "
                    f"(best so far {best:.2f}) for {alarm.patience} epochs. Try the EMA quantizer "
                    "(model/quantizer=ema), a lower learning rate or a smaller code_dim"
                )
        return values

    @torch.no_grad()
    def check_samples(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Mode collapse and near duplicates among ``n_samples`` samples of fixed noise."""
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        out = self._extractor(pl_module.sample(self.n_samples, generator=generator))
        coverage = class_coverage(out["logits"], self.min_class_share)
        diversity = mean_pairwise_distance(out["features"]) / max(self._real_distance, 1e-12)
        epoch, classes = trainer.current_epoch + 1, out["logits"].shape[1]
        best, self.best_coverage = self.best_coverage, max(self.best_coverage, coverage)
        best_diversity, self.best_diversity = self.best_diversity, max(self.best_diversity, diversity)
        values = {"health/class_coverage": float(coverage), "health/sample_diversity": diversity}
        if self.coverage_drop is not None:
            # Armed once the samples have covered half the classes the real images do: an untrained G
            # puts everything in one class, and early coverage wanders.
            fell = 2 * best >= self._real_coverage and coverage < self.coverage_drop * best
            alarm = self.alarms["mode_collapse"]
            if alarm.record(values, fell):
                warn(
                    f"mode collapse after epoch {epoch}: {self.n_samples} fixed-noise samples fall in {coverage} of "
                    f"the classifier's {classes} classes (≥ {self.min_class_share:.0%} each), down from {best}, for "
                    f"{alarm.patience} checks. GANs: lower the learning rates, add R1 (model.r1_gamma) or an EMA "
                    "generator; resume from an earlier checkpoint"
                )
        if self.min_diversity is not None:
            # Samples of a barely trained G are near duplicates too (one texture whatever z): only a
            # fall from samples that were once half as varied as real images counts.
            varied = best_diversity >= 0.5
            alike = varied and diversity < self.min_diversity
            alarm = self.alarms["near_duplicates"]
            if alarm.record(values, alike):
                warn(
                    f"near-duplicate samples after epoch {epoch}: the mean feature distance between samples is "
                    f"{diversity:.3f} of that between real images (best so far {best_diversity:.3f}), for "
                    f"{alarm.patience} checks: the model draws (nearly) the same image whatever the noise"
                )
        return values

    # --- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "alarms": {kind: alarm.state_dict() for kind, alarm in self.alarms.items()},
            "grad_norms": self.grad_norms,
            "best_coverage": self.best_coverage,
            "best_diversity": self.best_diversity,
            "best_perplexity": self.best_perplexity,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for kind, state in state_dict["alarms"].items():
            self.alarms[kind].load_state_dict(state)
        self.grad_norms = {k: list(v) for k, v in state_dict["grad_norms"].items()}
        self.best_coverage, self.best_diversity = state_dict["best_coverage"], state_dict["best_diversity"]
        self.best_perplexity = state_dict["best_perplexity"]


@rank_zero_only
def warn(message: str) -> None:
    log.warning("training health: %s", message)


def log_now(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Straight to the loggers: for a value the run will not live to flush through ``self.log``."""
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()


def d_outputs_probabilities(pl_module: L.LightningModule) -> bool:
    """Whether the logged D outputs are probabilities: the loss config says so (``probability: true``)."""
    loss = pl_module.hparams.get("loss")
    return isinstance(loss, Mapping) and bool(loss.get("probability", False))


def d_real_target(pl_module: L.LightningModule) -> float:
    """What D is trained to answer on real images: 1, or the smoothed label of its loss (``loss.d.real_label``)."""
    d_loss = pl_module.hparams["loss"].get("d")
    return float(d_loss.get("real_label", 1.0)) if isinstance(d_loss, Mapping) else 1.0


def optimizer_names(pl_module: L.LightningModule, optimizers) -> dict[int, str]:
    """id(optimizer) -> the top-level submodules it trains (``generator``, ``g_a+g_b``); '' when the
    model has a single optimizer."""
    if len(optimizers) < 2:
        return {id(opt): "" for opt in optimizers}
    owner = {id(p): name for name, child in pl_module.named_children() for p in child.parameters()}
    names = {}
    for i, opt in enumerate(optimizers):
        players = dict.fromkeys(owner.get(id(p), "") for g in opt.param_groups for p in g["params"])
        names[id(opt)] = "+".join(p for p in players if p) or str(i)
    return names


def first_images(loader, n: int) -> torch.Tensor:
    """The first ``n`` images of an (image, label) loader."""
    images, count = [], 0
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        images.append(x[: n - count])
        count += len(images[-1])
        if count >= n:
            break
    return torch.cat(images) if images else torch.empty(0)


def saved_checkpoints(trainer: L.Trainer) -> list[str]:
    """The checkpoint files the run has written so far (they are left as they are)."""
    paths = []
    for callback in trainer.checkpoint_callbacks:
        for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")):
            if path and Path(path).is_file() and path not in paths:
                paths.append(path)
    return paths
