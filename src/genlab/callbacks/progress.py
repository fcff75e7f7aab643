"""Progress in images seen: with several optimizers Lightning's global_step counts optimizer steps."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities.data import extract_batch_size

from genlab.logs import writes_this_step


class ImagesSeen(L.Callback):
    """Logs ``train/kimg``: thousands of training images seen across all processes."""

    def __init__(self):
        self.images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.images += extract_batch_size(batch) * trainer.world_size
        if writes_this_step(trainer):
            pl_module.log("train/kimg", self.images / 1000.0, on_step=True, on_epoch=False, rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images = state_dict["images"]
