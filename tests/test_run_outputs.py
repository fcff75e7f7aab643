"""What a run leaves on disk: one epoch numbering for checkpoints and grids; presets write what they need."""

import re
from pathlib import Path

import torch

from genlab import train

TINY = ["data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8", "callbacks.sample_quality=null"]


def epoch_numbers(folder: Path, pattern: str) -> list[int]:
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(pattern, p.name)))


def test_checkpoints_and_grids_count_epochs_alike(make_cfg):
    cfg = make_cfg(*TINY, "trainer.max_epochs=2", "callbacks.periodic_checkpoint.every_n_epochs=1")
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert epoch_numbers(run / "checkpoints", r"epoch(\d{4})\.ckpt") == [1, 2]
    assert epoch_numbers(run / "samples", r"samples_epoch(\d{4})\.png") == [1, 2]
    # epochNNNN.ckpt holds the weights after NNNN epochs: epoch0002 is the final state, epoch0001 half-way.
    steps = {
        name: torch.load(run / "checkpoints" / f"{name}.ckpt", map_location="cpu", weights_only=True)["global_step"]
        for name in ("epoch0001", "epoch0002", "last")
    }
    assert steps["epoch0002"] == steps["last"] == 2 * steps["epoch0001"] > 0
