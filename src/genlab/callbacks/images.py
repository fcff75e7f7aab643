"""Image grids from the model's ``previews`` to PNG files and to the active loggers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image


def to_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """[-1, 1] NCHW -> one [0, 1] CHW grid."""
    return make_grid(images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow, padding=2)


class ImagePreview(L.Callback):
    """Every ``every_n_epochs`` writes ``<dirpath>/<name>_epoch<E>.png`` for each grid the model's
    ``previews(batch)`` returns (fixed noise for generators; a fixed validation batch otherwise)."""

    def __init__(self, dirpath: str, every_n_epochs: int = 1, n_batch: int = 8):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs  # 0 = only at the end of training
        self.n_batch = n_batch  # images of the fixed batch handed to previews()
        self._batch = None

    def _fixed_batch(self, trainer):
        if self._batch is None:
            loaders = trainer.datamodule.val_dataloader() if trainer.datamodule is not None else None
            batch = next(iter(loaders)) if loaders is not None else None
            self._batch = _head(batch, self.n_batch)
        return self._batch

    @rank_zero_only
    def write(self, trainer, pl_module, tag: str) -> None:
        batch = move_data_to_device(self._fixed_batch(trainer), pl_module.device)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name, (images, nrow) in pl_module.previews(batch).items():
            grid = to_grid(images, nrow)
            save_image(grid, self.dirpath / f"{name}_{tag}.png")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(f"samples/{name}", grid, global_step=trainer.current_epoch)
                elif isinstance(logger, WandbLogger):
                    logger.log_image(key=f"samples/{name}", images=[grid], step=trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self.write(trainer, pl_module, f"epoch{epoch:04d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, "final")


def _head(batch, n: int):
    """The first ``n`` items of a (possibly nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch[:n]
    if isinstance(batch, (list, tuple)):
        return type(batch)(_head(b, n) for b in batch)
    if isinstance(batch, dict):
        return {k: _head(v, n) for k, v in batch.items()}
    return batch
