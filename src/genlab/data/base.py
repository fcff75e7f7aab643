"""The DataModule base every image dataset shares: splits, loaders and early, clear errors."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genlab.data.degradations import Degradation, DegradedPairs
from genlab.errors import UserError


class DataError(UserError, RuntimeError):
    """Missing, empty or corrupt data. The message names the path and the fix."""


class ImageDataModule(L.LightningDataModule):
    """Images NCHW in [-1, 1] with ``image_size`` and ``channels`` that models interpolate.

    Subclasses implement :meth:`build` returning ``(train_set, val_set)``; items are
    ``(image, label)`` tuples (label -1 where a dataset has none). With a ``degradation``
    (restoration), both sets are wrapped in :class:`~genlab.data.degradations.DegradedPairs` and
    items become dicts ``{"clean", "degraded", "mask" (inpainting), ...}``: fresh draws for
    training, draws fixed by (degradation seed, index) for validation.
    """

    batches = "images"  # what the loaders give; models declare what they consume the same way

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        batch_size: int = 64,
        num_workers: int = 0,  # 0 = load in the training process (right for in-memory sets)
        val_batch_size: int | None = None,  # None = batch_size
        degradation: Degradation | None = None,  # None = plain images (every non-restoration model)
    ):
        super().__init__()
        # Caught here, before any model or logger exists, rather than by torch after the model summary.
        require_int("batch_size", batch_size, 1, "images per training batch")
        if val_batch_size is not None:
            require_int("val_batch_size", val_batch_size, 1, "images per validation batch (or null: data.batch_size)")
        require_int("num_workers", num_workers, 0, "loader worker processes (0: load in the training process)")
        require_int("image_size", image_size, 1, "the image side in pixels")
        if channels not in (1, 3):
            raise ValueError(f"data.channels={channels!r} is not valid: 1 (grey) or 3 (RGB)")
        self.image_size = image_size
        self.channels = channels
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_batch_size = val_batch_size or batch_size
        self.degradation = degradation
        if degradation is not None:
            if self.batches == "domains":
                raise ValueError(
                    f"{type(self).__name__} has two image domains; degradations need a single-domain dataset"
                )
            if image_size % degradation.scale:
                raise ValueError(
                    f"data.image_size={image_size} is not divisible by degradation.scale={degradation.scale}: "
                    f"the low-resolution input needs whole pixels; use a multiple of {degradation.scale}"
                )
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def build(self) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set, self.val_set = self.build()
        if self.degradation is not None:
            self.train_set = DegradedPairs(self.train_set, self.degradation, fixed=False)
            self.val_set = DegradedPairs(self.val_set, self.degradation, fixed=True)
        if len(self.train_set) < self.batch_size:
            raise DataError(
                f"{type(self).__name__}: only {len(self.train_set)} training images but "
                f"data.batch_size={self.batch_size}; lower data.batch_size or add images"
            )

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,  # equal batches keep batch norm and the GAN losses well behaved
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, train=False)


def require_int(key: str, value, minimum: int, meaning: str) -> None:
    """A ``data.<key>`` that must be an integer >= ``minimum``; the error names the key and what is valid."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{key}={value!r} is not valid: {meaning} must be an integer >= {minimum}")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic (train, val) split of range(n) that depends only on ``seed``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]
