"""What a run leaves on disk and prints: one epoch numbering for checkpoints and grids; presets write
what they need; no lines the user cannot act on."""

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


# FAST without its callbacks.* entries, which callbacks=none does not have.
QUIET_CPU = [
    "trainer=cpu",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    *TINY[:3],
]


def files_under(run: Path, suffix: str) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob(f"*{suffix}"))


def test_callbacks_none_writes_no_checkpoint(make_cfg):
    cfg = make_cfg(*QUIET_CPU, "callbacks=none", "trainer.max_epochs=1", fast=False)
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "csv" / "metrics.csv").is_file()  # it trained and logged
    assert files_under(run, ".ckpt") == []


def test_debug_overfit_keeps_one_checkpoint_and_its_grids(make_cfg):
    """10 epochs reach the default periodic checkpoint (every 10), which overfit runs do not keep."""
    default = ["callbacks.progress_bar=null", "callbacks.lr_monitor=null", "callbacks.sample_quality=null"]
    cfg = make_cfg(*QUIET_CPU, *default, "debug=overfit", "trainer.max_epochs=10", fast=False)
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert files_under(run, ".ckpt") == ["checkpoints/last.ckpt"]
    assert files_under(run, ".png") == ["samples/samples_final.png"]  # a grid every 20 epochs, and the last


def test_debug_overfit_under_callbacks_none_still_writes_its_grids(make_cfg):
    cfg = make_cfg(*QUIET_CPU, "callbacks=none", "debug=overfit", "trainer.max_epochs=2", fast=False)
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert files_under(run, ".ckpt") == []
    assert files_under(run, ".png") == ["samples/samples_final.png"]


def test_train_py_prints_no_tips_or_wandb_deprecation_noise(tmp_path):
    import pytest

    from tests.conftest import run_script

    pytest.importorskip("wandb")
    result = run_script(
        "train.py",
        "debug=fast",
        "trainer=cpu",
        "logger=wandb",
        *TINY,
        "callbacks.progress_bar=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        timeout=300,
        env={"WANDB_MODE": "offline"},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "GPU available" in out  # Lightning's own messages still reach the user
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))  # and W&B still logs
    assert "Tip: For seamless cloud" not in out
    assert "anonymous setting has no effect" not in out
