"""Exact resume: 1 epoch, then ``ckpt_path=`` to 2 epochs, ends with the weights of a 2-epoch run.

One case per model config, so a new family is tested as soon as its yaml exists. Bit-identical,
not close: any state the checkpoint forgets (RNG streams and data order, EMA counters, image pools,
ADA's p, optimizer moments) shows up as a difference in some tensor."""

from pathlib import Path

import pytest
import torch

from genlab import train
from genlab.callbacks.rng import rng_states, set_rng_states
from tests.test_stylegan2 import TINY as STYLEGAN2_TINY
from tests.test_train import MODELS, model_overrides

# Per family: the smallest networks that train, and the state worth exercising (dcgan's EMA,
# stylegan2's ADA, a CycleGAN pool small enough to fill and start swapping in the first epoch).
SMALL = {
    "cyclegan": [
        "data.image_size=16",
        "data.batch_size=2",
        "model.pool_size=2",
        "model.generator.ngf=4",
        "model.generator.n_blocks=1",
        "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2",
    ],
    "dcgan": ["model.generator.width=8", "model.discriminator.width=8", "model.ema_decay=0.99"],
    "sngan": ["model.generator.width=8", "model.discriminator.width=8"],
    "wgan_gp": ["model.generator.width=8", "model.discriminator.width=8"],
    "stylegan2": [o for o in STYLEGAN2_TINY if not o.startswith(("model=", "callbacks.", "data.batch"))]
    + ["model/augment=ada"],
    "vae": ["model.encoder.width=8", "model.decoder.width=8"],
    "vqvae": ["model.encoder.hidden=16", "model.encoder.residual_hidden=8"],
    "vqvae_prior": ["model.transformer.dim=16", "model.transformer.depth=1", "model.transformer.heads=2"],
}


def last_weights(cfg) -> dict[str, torch.Tensor]:
    return torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("model", MODELS)
def test_resume_from_an_epoch_end_continues_bit_identically(make_cfg, model, request, tmp_path):
    common = [
        *model_overrides(model, request),
        *SMALL.get(model, []),
        "trainer.deterministic=true",
        "callbacks.sample_quality=null",
    ]

    def run(name: str, *overrides: str):
        cfg = make_cfg(*common, *overrides)
        cfg.paths.output_dir = str(tmp_path / name)
        train.run(cfg)
        return cfg

    straight = last_weights(run("straight", "trainer.max_epochs=2"))
    first = run("first", "trainer.max_epochs=1")
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = last_weights(run("resumed", "trainer.max_epochs=2", f"ckpt_path={ckpt}"))

    assert resumed.keys() == straight.keys()
    differ = {k: float((resumed[k].double() - v.double()).abs().max()) for k, v in straight.items()}
    differ = {k: d for k, d in differ.items() if d != 0.0}
    assert not differ, f"{len(differ)} of {len(straight)} tensors differ after resume: {differ}"


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path):
    """The states survive torch.save / torch.load(weights_only=True) and set every generator back."""
    import random

    import numpy as np

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # a cached Gaussian is part of numpy's state
    torch.save({"rng": rng_states()}, tmp_path / "s.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    set_rng_states(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    again = (torch.rand(3), np.random.standard_normal(3), random.random())
    assert torch.equal(again[0], expected[0])
    assert np.array_equal(again[1], expected[1])
    assert again[2] == expected[2]


def test_resumed_into_its_run_directory_the_logs_continue(make_cfg):
    """CSV keeps the epochs before the checkpoint and appends; TensorBoard writes on in the same folder."""
    import csv

    tiny = ["data.batch_size=4", "model.generator.width=8", "model.discriminator.width=8", "logger=many"]
    first = make_cfg(*tiny, "trainer.limit_train_batches=2")
    train.run(first)
    run = Path(first.paths.output_dir)
    train.run(
        make_cfg(
            *tiny,
            "trainer.limit_train_batches=2",
            "trainer.max_epochs=2",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        )
    )
    rows = [row for row in csv.DictReader((run / "csv" / "metrics.csv").open()) if row["train/loss_d"]]
    assert [(row["epoch"], row["step"]) for row in rows] == [("0", "0"), ("0", "1"), ("1", "2"), ("1", "3")]
    events = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 2  # one file per process, side by side: TensorBoard shows one run


def test_resumed_run_logs_to_the_same_wandb_run(make_cfg):
    pytest.importorskip("wandb")
    from tests.wandb_offline import offline_runs

    tiny = ["data.batch_size=4", "model.generator.width=8", "model.discriminator.width=8", "logger=wandb"]
    first = make_cfg(*tiny, "trainer.limit_train_batches=1", "callbacks.sample_quality=null")
    train.run(first)
    run = Path(first.paths.output_dir)
    ckpt = run / "checkpoints" / "last.ckpt"
    run_id = torch.load(ckpt, weights_only=True)["genlab_wandb_run_id"]
    train.run(
        make_cfg(
            *tiny,
            "trainer.limit_train_batches=1",
            "callbacks.sample_quality=null",
            "trainer.max_epochs=2",
            f"ckpt_path={ckpt}",
        )
    )
    folders = [r.folder.name for r in offline_runs(run)]
    # Offline, each process writes a folder of its own; `wandb sync` uploads both into the run with that id.
    assert len(folders) == 2 and all(name.endswith(f"-{run_id}") for name in folders), (run_id, folders)
