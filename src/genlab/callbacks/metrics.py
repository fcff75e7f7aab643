"""FID / KID / IS / P&R of the model's samples during training, on a named feature extractor."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from genlab import surfaces
from genlab.errors import ConfigError
from genlab.metrics import extractors, quality

log = logging.getLogger(__name__)


class SampleQuality(L.Callback):
    """Every ``every_n_epochs`` (and once when training ends) compares ``n`` samples from
    ``pl_module.sample`` with the first ``n`` real images of the datamodule's ``split`` and logs
    ``val/fid{n}[extractor]``, ``val/kid{n}[...]``, ``val/is{n}[...]``, ``val/precision{n}[...]``, ...

    Translation models (with ``translate``) are scored on the target domain instead: the first ``n``
    source images of the split translated (``direction``) against that split's target-domain images
    (keys ``val/fid{n}_a2b[extractor]``, ...).

    Under DDP each rank samples and extracts its share; torchmetrics gathers the features, and every
    rank computes the same numbers (so ModelCheckpoint can monitor them on any rank). Real features
    are cached on disk (:class:`genlab.metrics.quality.RealStatsCache`).
    """

    def __init__(
        self,
        extractor: Mapping | nn.Module,  # e.g. {_target_: genlab.metrics.extractors.Classifier, weights: digits}
        metrics: Sequence[str] = ("fid", "is"),
        n: int = 1000,  # generated images per evaluation (real: the first min(n, len(split)))
        every_n_epochs: int = 0,  # 0 = only when training ends
        split: str | None = None,  # the datamodule's set of real images; None: train, or val for translators
        direction: str = "a2b",  # translators: score translate(source, direction) against the target domain
        batch_size: int = 250,
        cache_dir: str | None = None,  # None = $GENLAB_CACHE/stats or ~/.cache/genlab/stats
        seed: int = 0,  # the samples' noise: the same images every evaluation (less variance)
        kid_subsets: int = 100,
        kid_subset_size: int | None = None,  # None = min(1000, n)
        is_splits: int = 10,
        allow_few_samples: bool = False,
    ):
        self.extractor_config = extractor
        self.metrics = list(metrics)
        self.n, self.every_n_epochs, self.split, self.direction = n, every_n_epochs, split, direction
        self.batch_size, self.seed = batch_size, seed
        self.cache = quality.RealStatsCache(cache_dir)
        self.protocol = quality.Protocol(
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            is_splits=is_splits,
            allow_few_samples=allow_few_samples,
        )
        self.extractor: nn.Module | None = None
        self.plan: quality.Plan | None = None  # what is compared, fixed at setup
        self.disabled: str | None = None  # why this run gets no metrics (said once)
        self._last_step = -1

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.extractor is not None or self.disabled:
            return
        if not (surfaces.can(pl_module, surfaces.Sampler) or surfaces.can(pl_module, surfaces.Translator)):
            # A restorer is scored by its own validation (PSNR, SSIM): nothing is wrong, so no warning.
            self.disable(f"nothing to score: {surfaces.describe(pl_module)}", warn=not surfaces.surfaces(pl_module))
            return
        try:
            self.extractor = (
                extractors.for_data(self.extractor_config, trainer.datamodule)
                if isinstance(self.extractor_config, Mapping)
                else self.extractor_config
            )
        except ValueError as err:  # no classifier for this data: train on, without these metrics
            self.disable(str(err))
            return
        channels = getattr(getattr(self.extractor, "net", None), "channels", None)
        data_channels = getattr(trainer.datamodule, "channels", None)
        if channels is not None and data_channels is not None and channels != data_channels:
            self.disable(
                f"the {self.extractor.provenance} takes {channels}-channel images but the data has {data_channels}; "
                "set callbacks.sample_quality.extractor.weights to a classifier of this domain (digits, shapes, "
                "a file) or use genlab.metrics.extractors.Inception"
            )
            return
        # A bad request fails now, not after the first epoch of training (the data is set up by now).
        where = "callbacks.sample_quality"
        self.plan = quality.plan(pl_module, trainer.datamodule, self.n, self.split, self.direction, where)
        try:
            quality.check_request(
                self.metrics, self.plan.n, self.plan.n, self.extractor, self.protocol, self.plan.n_held_out
            )
        except ConfigError as err:
            raise ConfigError(f"{where}: {err} ({where}=null trains without these metrics)") from err

    def key(self, stat: str) -> str | None:
        """The logged key of ``stat`` (``fid``, ``kid_std``, ...), None when this run logs no such number."""
        if self.disabled or self.plan is None:
            return None
        return self.plan.key(stat, self.extractor.name)

    def disable(self, why: str, warn: bool = True) -> None:
        self.disabled = why
        message = f"SampleQuality: no sample-quality metrics in this run: {why}"
        if warn:
            warnings.warn(message, stacklevel=2)
        else:
            log.info(message)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if self.disabled or not self.every_n_epochs or epoch % self.every_n_epochs:
            return
        values = self.evaluate(trainer, pl_module)
        for key, value in values.items():
            # Identical on every rank already; sync_dist (a mean) keeps it so and tells Lightning so.
            pl_module.log(key, value, sync_dist=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.disabled or self._last_step == trainer.global_step:
            return
        values = self.evaluate(trainer, pl_module)
        # self.log is closed after fit; the summary reads callback_metrics, the loggers get the values directly.
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=trainer.global_step)
                logger.save()

    @torch.no_grad()
    def evaluate(self, trainer, pl_module) -> dict[str, float]:
        """All ranks must call this together (feature gathering is a collective)."""
        self._last_step = trainer.global_step
        datamodule = trainer.datamodule
        if trainer.world_size > 1:
            # Each rank updates its own batch-norm statistics between the broadcasts DDP makes before a forward:
            # score the model rank 0 saves, on every rank.
            for buffer in pl_module.buffers():
                torch.distributed.broadcast(buffer, src=0)
        self.extractor.to(pl_module.device)  # here, not in setup: the strategy moves the model after setup
        values, _ = quality.score(
            pl_module,
            self.plan,
            self.extractor,
            self.metrics,
            self.protocol,
            real_name=quality.describe_dataset(datamodule, self.plan.split),
            image_size=getattr(datamodule, "image_size", 0),
            cache=self.cache,
            device=pl_module.device,
            batch_size=self.batch_size,
            seed=self.seed,
            ranks=quality.Ranks.of(trainer),
            stage="val",
        )
        return values


class BestCheckpoint(ModelCheckpoint):
    """``best_<stat>.ckpt``: the checkpoint with the best value of the run's headline number.

    The key is not written in the config because it depends on the run: the SampleQuality
    callback's key for ``stat`` (``val/fid1000[classifier]``, ``val/fid200_a2b[classifier]``, as
    :mod:`genlab.metrics.keys` spells it) when the run scores samples, else the model's own
    ``best_metric`` (a VQ-VAE: ``("val/nmse", "min")``). With neither, it warns and saves nothing.
    """

    def __init__(self, stat: str = "fid", mode: str = "min", **kwargs):
        super().__init__(monitor=None, mode=mode, save_top_k=1, **kwargs)
        self.stat = stat

    def setup(self, trainer, pl_module, stage: str) -> None:
        scorer = next((c for c in trainer.callbacks if isinstance(c, SampleQuality)), None)
        key = scorer.key(self.stat) if scorer is not None else None
        if key is None and getattr(pl_module, "best_metric", None) is not None:
            key, self.mode = pl_module.best_metric
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)  # as ModelCheckpoint sets it
        if key is None:
            warnings.warn(
                f"BestCheckpoint: this run logs no '{self.stat}' (no sample-quality metrics) and "
                f"{type(pl_module).__name__} names no best_metric; no best checkpoint is kept",
                stacklevel=2,
            )
            self.save_top_k = 0
        self.monitor = key
        super().setup(trainer, pl_module, stage)
