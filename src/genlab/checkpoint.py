"""Checkpoints that survive a kill, rebuild their model from the file alone, and never run code.

A checkpoint is a file users share, so it is read as data. Unpickled freely (``torch.load`` with
the weights-only guard off), a crafted file runs any command the moment
``python generate.py ckpt=downloaded.ckpt`` opens it: its pickle can call any Python function. And
the names it carries (the model class, the ``_target_`` of every network, optimizer and data
module, loss functions) are imported and called to rebuild the model: ``_target_: os.system`` would
run too. So every read unpickles tensors and plain containers only (``weights_only=True``), and
every name must be one of the building blocks below; anything else raises
:class:`UnsafeCheckpointError` before a single object is built.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, get_object
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from genlab.data.degradations import Degradation
from genlab.errors import ConfigError, MissingFile, UserError

MODEL_CLASS_KEY = "genlab_model_class"
CONFIG_KEY = "genlab_config"  # the whole resolved run config (data, model, trainer, ...)
WANDB_ID_KEY = "genlab_wandb_run_id"  # the W&B run a resumed run continues

# The packages a checkpoint may name code in (checked before anything is imported) ...
TRUSTED_PACKAGES = ("genlab", "lightning", "torch", "torchvision")
# ... and what those names may be: classes to build a run from, never a loader or a runner
# (torch.load, torch.hub.load and genlab.train.run live in these packages too).
BUILDING_BLOCKS = (
    torch.nn.Module,
    torch.optim.Optimizer,
    torch.optim.lr_scheduler.LRScheduler,
    torch.utils.data.Dataset,
    L.LightningDataModule,
    L.Callback,
    Logger,
    L.Trainer,
    Degradation,  # what a restoration run's data undoes (noise, masks, ...): pure tensor transforms
)
FUNCTION_MODULES = ("genlab.losses",)  # loss and likelihood functions that configs name
DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


class UnsafeCheckpointError(UserError, ValueError):
    """A checkpoint that could run code when loaded: genlab refuses it whatever its source."""


def refused(path: str | os.PathLike, reason: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"refused to load {path}: {reason}. Checkpoints are data: genlab reads tensors and plain values "
        "from them and builds only its own building blocks, because a checkpoint from an untrusted source "
        "could otherwise run any command on this machine. If you trust this file, see 'Checkpoints are "
        "data' in README.md for how to re-save it."
    )


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
    ``load_model`` needs nothing but the file, and ``load_run_config`` rebuilds the data side.
    Both are plain (a string, and dicts of plain values) so that ``weights_only=True`` reads them."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        cls = type(pl_module)
        checkpoint[MODEL_CLASS_KEY] = f"{cls.__module__}.{cls.__qualname__}"
        if self.config is not None:
            checkpoint[CONFIG_KEY] = self.config
        # A resumed run logs into the same W&B run (train.py passes it as wandb.init(id=..., resume="allow")).
        wandb_ids = [logger.version for logger in trainer.loggers if type(logger).__name__ == "WandbLogger"]
        if wandb_ids and wandb_ids[0]:
            checkpoint[WANDB_ID_KEY] = str(wandb_ids[0])


def importable(package: str) -> bool:
    """Whether ``package`` names a top-level module here (found without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # e.g. __main__, whose spec is None: a module all the same
        return True


def names_in(entry: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(where, name) for every value of ``entry`` that may name code: every ``_target_``, and every
    other string that reads as ``package.attr...`` of an importable package (loss names, the model class,
    ``vqvae_class``). File names like ``last.ckpt`` are not names: ``last`` is no package."""
    if isinstance(entry, Mapping):
        for key, value in entry.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                yield here, value
            else:
                yield from names_in(value, here)
    elif isinstance(entry, list | tuple):
        for i, value in enumerate(entry):
            yield from names_in(value, f"{where}[{i}]")
    elif isinstance(entry, str) and DOTTED_NAME.fullmatch(entry) and importable(entry.partition(".")[0]):
        yield where, entry


def is_building_block(obj: Any) -> bool:
    if inspect.isclass(obj):
        return issubclass(obj, BUILDING_BLOCKS)
    return inspect.isfunction(obj) and obj.__module__ in FUNCTION_MODULES


def check_names(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Refuse a checkpoint that names anything but a building block of a trusted package."""
    for where, name in names_in(checkpoint):
        if not isinstance(name, str) or name.partition(".")[0] not in TRUSTED_PACKAGES:
            raise refused(path, f"{where} names {name!r}, outside {', '.join(TRUSTED_PACKAGES)}")
        try:
            obj = get_object(name)
        except (ImportError, AttributeError, ValueError):
            continue  # names nothing, so nothing runs; whoever needs it fails with its own error
        if callable(obj) and not is_building_block(obj):
            raise refused(
                path,
                f"{where} names {name}, which is not a network, optimizer, scheduler, dataset, data module, "
                f"degradation, callback, logger, trainer or a function of {', '.join(FUNCTION_MODULES)}",
            )


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A genlab checkpoint's contents, read as data (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"checkpoint {path} does not exist; pass ckpt=<run dir>/checkpoints/last.ckpt")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        held = f"a pickled {found.group(1)}" if found else "pickled Python objects"
        raise refused(path, f"it holds {held}, which genlab will not unpickle") from None
    if not isinstance(checkpoint, dict) or MODEL_CLASS_KEY not in checkpoint:
        raise ConfigError(f"{path} was not written by genlab's train.py (no '{MODEL_CLASS_KEY}' entry)")
    check_names(checkpoint, path)
    return checkpoint


def load_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The resolved config of the run that wrote the checkpoint (e.g. its ``data`` section)."""
    config = read_checkpoint(path).get(CONFIG_KEY)
    if config is None:
        raise ConfigError(f"{path} carries no run config; it was saved outside train.py")
    return config


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """Rebuild a trained genlab model (hyper-parameters, weights) from a checkpoint file."""
    checkpoint = read_checkpoint(path, map_location)
    cls = get_class(checkpoint[MODEL_CLASS_KEY])
    if not issubclass(cls, L.LightningModule):
        raise refused(path, f"{MODEL_CLASS_KEY} names {cls.__qualname__}, which is not a LightningModule")
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
