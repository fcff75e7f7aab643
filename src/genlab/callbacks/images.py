"""Image grids from the model's ``previews`` to PNG files and to the active loggers, and a W&B table of
labelled samples: what a dashboard shows of a run besides its curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from genlab import surfaces
from genlab.metrics import extractors


def to_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """[-1, 1] NCHW -> one [0, 1] CHW grid."""
    return make_grid(images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow, padding=2)


def grid_pixels(grid: torch.Tensor):
    """A [0, 1] CHW grid as the HWC uint8 array ``save_image`` writes to its PNG (rounded the same way)."""
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()


class ImagePreview(L.Callback):
    """Every ``every_n_epochs`` writes ``<dirpath>/<name>_epoch<E>.png`` for each grid the model's
    ``previews(batch)`` returns (fixed noise for generators; a fixed validation batch otherwise), and
    logs it as ``images/<name>`` to TensorBoard and W&B (the same pixels as the PNG)."""

    def __init__(self, dirpath: str, every_n_epochs: int = 1, n_batch: int = 8):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs  # 0 = only at the end of training
        self.n_batch = n_batch  # images of the fixed batch handed to previews()
        self._batch = None
        self._logged_step = -1  # the loggers get the final grids only when the last epoch's are not the same

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
        to_loggers = trainer.global_step != self._logged_step
        self._logged_step = trainer.global_step
        for name, (images, nrow) in pl_module.previews(batch).items():
            grid = to_grid(images, nrow)
            save_image(grid, self.dirpath / f"{name}_{tag}.png")
            for logger in trainer.loggers if to_loggers else ():
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(f"images/{name}", grid, global_step=trainer.current_epoch)
                elif isinstance(logger, WandbLogger):
                    caption = f"{tag}, step {trainer.global_step}"
                    logger.log_image(f"images/{name}", [grid_pixels(grid)], trainer.global_step, caption=[caption])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self.write(trainer, pl_module, f"epoch{epoch:04d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, "final")


class SampleTable(L.Callback):
    """When training ends, a W&B table ``key`` of ``n`` samples from fixed noise (``seed``), one row each:
    the image and, where a classifier ships for the data's domain (digits, shapes), the class it sees
    (``label``) and that class's probability (``p_label``). Sorted or grouped by label in the dashboard
    it shows which classes the generator covers and which it has dropped.

    Only for runs with a W&B logger and a model that samples; without a classifier for the data (or
    with ``classifier: null``) the table has the images alone.
    """

    def __init__(
        self,
        n: int = 64,
        seed: int = 0,
        key: str = "images/sample_table",
        classifier: str | None = "auto",  # auto = the data's shipped classifier; digits | shapes | a file | null
    ):
        self.n, self.seed, self.key, self.classifier = n, seed, key, classifier

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        runs = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not runs or not surfaces.can(pl_module, surfaces.Sampler):
            return
        columns, rows = self.table(pl_module, trainer.datamodule)
        for run in runs:
            run.log_table(self.key, columns=columns, data=rows, step=trainer.global_step)

    @torch.no_grad()
    def table(self, pl_module, datamodule) -> tuple[list[str], list[list]]:
        """Column names and rows; images as ``wandb.Image`` of the uint8 pixels a PNG of the sample holds."""
        import wandb

        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        images = pl_module.sample(self.n, generator=generator)
        pixels = extractors.to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
        pictures = [wandb.Image(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]
        classifier = self.build_classifier(datamodule, images.shape[1])
        if classifier is None:
            return ["sample", "image"], [[i, picture] for i, picture in enumerate(pictures)]
        probabilities = classifier.to(images.device)(images)["logits"].softmax(dim=1)
        p_label, label = probabilities.max(dim=1)
        rows = [[i, pictures[i], int(label[i]), float(p_label[i])] for i in range(len(pictures))]
        return ["sample", "image", "label", "p_label"], rows

    def build_classifier(self, datamodule, channels: int) -> extractors.Classifier | None:
        """The classifier the labels come from, None (the table without labels) where there is none that fits."""
        if self.classifier is None:
            return None
        config = {"_target_": "genlab.metrics.extractors.Classifier", "weights": self.classifier}
        try:
            classifier = extractors.for_data(config, datamodule)
        except ValueError as err:  # no classifier ships for this data
            warnings.warn(f"SampleTable: samples without labels: {err}", stacklevel=2)
            return None
        if classifier.net.channels != channels:
            warnings.warn(
                f"SampleTable: samples without labels: the {classifier.provenance} takes {classifier.net.channels}-"
                f"channel images, the samples have {channels} (callbacks.sample_table.classifier=FILE for yours)",
                stacklevel=2,
            )
            return None
        return classifier


def _head(batch, n: int):
    """The first ``n`` items of a (possibly nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch[:n]
    if isinstance(batch, (list, tuple)):
        return type(batch)(_head(b, n) for b in batch)
    if isinstance(batch, dict):
        return {k: _head(v, n) for k, v in batch.items()}
    return batch
