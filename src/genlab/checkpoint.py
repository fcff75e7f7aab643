"""Checkpoints that survive a kill and rebuild their model from the file alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

MODEL_CLASS_KEY = "genlab_model_class"
CONFIG_KEY = "genlab_config"  # the whole resolved run config (data, model, trainer, ...)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to ``<path>.tmp`` then renames: a kill mid-write leaves the previous file intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class RecordRun(L.Callback):
    """Stores the LightningModule's import path, and the run's resolved config, in every checkpoint:
    ``load_model`` needs nothing but the file, and ``load_run_config`` rebuilds the data side."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        cls = type(pl_module)
        checkpoint[MODEL_CLASS_KEY] = f"{cls.__module__}.{cls.__qualname__}"
        if self.config is not None:
            checkpoint[CONFIG_KEY] = self.config


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass ckpt=<run dir>/checkpoints/last.ckpt")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if MODEL_CLASS_KEY not in checkpoint:
        raise ValueError(f"{path} was not written by genlab's train.py (no '{MODEL_CLASS_KEY}' entry)")
    return checkpoint


def load_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The resolved config of the run that wrote the checkpoint (e.g. its ``data`` section)."""
    config = read_checkpoint(path).get(CONFIG_KEY)
    if config is None:
        raise ValueError(f"{path} carries no run config; it was saved outside train.py")
    return config


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """Rebuild a trained genlab model (hyper-parameters, weights) from a checkpoint file."""
    checkpoint = read_checkpoint(path, map_location)
    cls = get_class(checkpoint[MODEL_CLASS_KEY])
    model = cls(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval()


class EpochCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``{epoch}`` in ``filename`` is 1-based: after 10 epochs the file is
    ``epoch0010.ckpt``, the number ``samples_epoch0010.png`` and ``trainer.max_epochs`` use.

    Lightning fills ``{epoch}`` with the 0-based index of the epoch in progress, which named the
    checkpoint written after ten epochs ``epoch0009.ckpt``, beside a grid ``samples_epoch0010.png``
    of the same weights. Mid-epoch saves (on an exception, every n steps) carry the number of the
    epoch in progress, counted from 1 as well. Its own class also gives it a state key apart from the
    plain ``ModelCheckpoint`` of ``last.ckpt``, which Lightning refused at equal ``every_n_epochs``.
    """

    def format_checkpoint_name(
        self, metrics: dict[str, Any], filename: str | None = None, ver: int | None = None, prefix: str | None = None
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename=filename, ver=ver, prefix=prefix)
