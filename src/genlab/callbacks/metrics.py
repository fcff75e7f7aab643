"""FID / KID / IS / P&R of the model's samples during training, on a named feature extractor."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch import nn

from genlab.metrics import extractors, quality


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
        self.disabled: str | None = None  # why this run gets no metrics (said once)
        self._last_step = -1

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.extractor is not None or self.disabled:
            return
        if not (callable(getattr(pl_module, "sample", None)) or quality.is_translator(pl_module)):
            self.disable(
                f"{type(pl_module).__name__} has neither sample(n) nor translate(x), so there is nothing to score"
            )
            return
        self.split = self.split or quality.default_split(pl_module)
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
        dataset = getattr(trainer.datamodule, f"{self.split}_set", None)
        if dataset is not None:  # a bad request fails now, not after the first epoch of training
            try:
                quality.check_request(self.metrics, *self.counts(pl_module, dataset), self.extractor, self.protocol)
            except ValueError as err:
                raise ValueError(
                    f"callbacks.sample_quality: {err} (callbacks.sample_quality=null trains without these metrics)"
                ) from err

    def counts(self, pl_module, dataset) -> tuple[int, int]:
        """(real, generated) images per evaluation."""
        reference, source = quality.scored_sets(pl_module, dataset, self.direction)
        return min(self.n, len(reference)), self.n if source is None else min(self.n, len(source))

    def disable(self, why: str) -> None:
        self.disabled = why
        warnings.warn(f"SampleQuality: no sample-quality metrics in this run: {why}", stacklevel=2)

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
        rank, world = trainer.global_rank, trainer.world_size
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, f"{self.split}_set", None)
        if dataset is None:
            raise ValueError(
                f"SampleQuality: the datamodule has no {self.split}_set; set callbacks.sample_quality.split"
            )
        reference, source = quality.scored_sets(pl_module, dataset, self.direction)
        n_real, n_fake = self.counts(pl_module, dataset)
        quality.check_request(self.metrics, n_real, n_fake, self.extractor, self.protocol)
        split = self.split if source is None else f"{self.split}-{quality.DIRECTIONS[self.direction][1]}"
        device = pl_module.device
        self.extractor.to(device)  # here, not in setup: the strategy moves the model to its device after setup

        image_size = getattr(datamodule, "image_size", 0)
        path = self.cache.path(
            quality.describe_dataset(datamodule, self.split), split, image_size, self.extractor, n_real
        )
        # Rank 0 decides hit or miss for everyone: ranks that disagreed would wait on each other forever.
        hit = trainer.strategy.broadcast(path.is_file(), src=0)
        if hit:
            real = self.cache.load(path)
        else:
            batches = quality.real_batches(reference, n_real, self.batch_size, rank, world)
            real = quality.extract(self.extractor, batches, device)
            if trainer.is_global_zero:
                self.cache.save(path, real)

        generator = torch.Generator(device=device).manual_seed(self.seed + rank)
        fake_batches = quality.model_batches(
            pl_module, source, n_fake, self.batch_size, generator, self.direction, rank, world
        )
        fake = quality.extract(self.extractor, fake_batches, device)
        if len(fake) != n_fake or len(real) != n_real:  # a gather that lost a rank's share would bias everything
            raise RuntimeError(
                f"SampleQuality gathered {len(fake)}/{n_fake} fake and {len(real)}/{n_real} real features"
            )
        tag = "" if source is None else f"_{self.direction}"
        values = quality.compute(self.metrics, real, fake, self.extractor.name, self.protocol, tag)
        return {f"val/{k}": v for k, v in values.items()}
