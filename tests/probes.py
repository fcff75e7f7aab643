"""Callbacks that tests add to a ``train.py`` run in another process (``+callbacks.<name>._target_=tests.probes.X``)
to see what happened inside it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class BuffersAtEnd(L.Callback):
    """When training ends (after the callbacks configured before it), writes each rank's buffers
    to ``<dirpath>/buffers-rank<r>.pt``."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer, pl_module) -> None:
        buffers = {name: b.detach().cpu().clone() for name, b in pl_module.named_buffers()}
        torch.save(buffers, self.dirpath / f"buffers-rank{trainer.global_rank}.pt")
