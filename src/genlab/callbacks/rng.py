"""Random-number states in the checkpoint, so that a resumed run draws what the uninterrupted run draws.

Training draws from the process-global generators (torch, CUDA, numpy, Python ``random``): the
DataLoader's RandomSampler draws each epoch's order from torch's at the epoch's first batch, the
models draw noise, dropout masks, augmentations and image-pool choices from them. Resuming restores
weights, optimizers and counters but, without this, restarts every generator from ``seed``: the
continuation sees other batches and other noise than the run it claims to continue.

What happens between two epochs is not the same in both runs: the uninterrupted run validates,
previews and saves after the last batch (each may draw), the resumed one runs its sanity check
instead and creates the next epoch's iterator before ``on_train_start``. So the state that matters
is the one at the end of the last training batch. It is kept after every batch, written into the
checkpoint, and set back: on resume before the first iterator is created, and in an uninterrupted
run at each later epoch's start (before that epoch's iterator), so that nothing run between the
epochs shifts the training stream in either run.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def raw_states() -> dict[str, Any]:
    """The global generators' states as each library gives them (cheap: taken after every batch)."""
    return {
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_raw_states(raw: dict[str, Any]) -> None:
    torch.set_rng_state(raw["torch"])
    if raw["torch.cuda"] and torch.cuda.is_available():
        # A checkpoint from another number of GPUs sets those it has states for.
        for device, state in enumerate(raw["torch.cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)
    np.random.set_state(raw["numpy"])
    random.setstate(raw["python"])


def plain(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` as tensors and plain values (a checkpoint is read with ``weights_only=True``, which
    refuses numpy arrays)."""
    kind, keys, pos, has_gauss, gauss = raw["numpy"]
    version, python_state, python_gauss = raw["python"]
    return {
        "torch": raw["torch"],
        "torch.cuda": list(raw["torch.cuda"]),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "state": list(python_state), "gauss": python_gauss},
    }


def unplain(states: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`plain`."""
    saved, python = states["numpy"], states["python"]
    keys = saved["keys"].numpy().astype(np.uint32)
    return {
        "torch": states["torch"],
        "torch.cuda": states["torch.cuda"],
        "numpy": (saved["kind"], keys, saved["pos"], saved["has_gauss"], saved["gauss"]),
        "python": (python["version"], tuple(python["state"]), python["gauss"]),
    }


def rng_states() -> dict[str, Any]:
    """The global generators' states, checkpoint-safe."""
    return plain(raw_states())


def set_rng_states(states: dict[str, Any]) -> None:
    """Set back what :func:`rng_states` returned."""
    set_raw_states(unplain(states))


class RngState(L.Callback):
    """Keeps the generators' states at the end of each training batch, saves the latest in the
    checkpoint, and sets them back where the next training batch of the same run would draw."""

    def __init__(self):
        self.after_batch: dict[str, Any] | None = None  # the states after the latest training batch
        # Set back on resume and no batch trained since: the epoch start must not do it again (the
        # epoch's iterator, created before the hook, drew from the restored states already).
        self.restored = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.after_batch = raw_states()
        self.restored = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # Runs before the epoch's iterator is created (Lightning's fit loop), so the order is drawn
        # from the training stream, not from whatever validation and previews left behind.
        if self.after_batch is not None and not self.restored:
            set_raw_states(self.after_batch)

    def state_dict(self) -> dict[str, Any]:
        return {"after_batch": plain(self.after_batch)} if self.after_batch is not None else {}

    def on_fit_start(self, trainer, pl_module) -> None:
        # Lightning restores callbacks before on_fit_start (after it with strategies that restore after
        # set-up), and callbacks listed before this one may draw in their on_fit_start (building a
        # network draws its initial weights): set the restored states again after them.
        if self.restored and self.after_batch is not None:
            set_raw_states(self.after_batch)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Set now as well: the fit loop creates its first iterator after this, before any epoch hook.
        if state_dict.get("after_batch") is not None:
            self.after_batch = unplain(state_dict["after_batch"])
            set_raw_states(self.after_batch)
            self.restored = True
