"""End-to-end: the real configs, the real Trainer, a few real optimizer steps."""

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import ConfigCompositionException
from torchvision.io import read_image

from genlab import train
from genlab.checkpoint import load_model
from genlab.config import compose_train, config_dir
from genlab.metrics import quality
from tests.conftest import run_script, train_ddp_on_cpu

MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (config_dir() / "model" / "loss").glob("*.yaml"))
# The embedded dataset each family trains on in tests; anything unlisted uses digits.
DATA_FOR = {"cyclegan": "shapes_unpaired"}
# Extra overrides a family needs to train in a test (restoration: what it learns to undo), or to train fast.
OVERRIDES_FOR = {
    "restoration": ["degradation=noise", "model.network.width=8", "model.network.depth=2"],
    # the slowest configs at full width (14-16 s per test each); what these tests check needs no width
    "cyclegan": ["model.generator.ngf=8", "model.generator.n_blocks=1", "model.discriminator.ndf=8"],
    "stylegan2": ["model.generator.channel_max=16", "model.discriminator.channel_max=16"],
}
# Second stages that start from another trained model: model -> (fixture giving its checkpoint, key).
CKPT_FOR = {"vqvae_prior": ("vqvae_ckpt", "model.vqvae_ckpt")}
TINY = ["data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8"]


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


class AtTrainStart(L.Callback):
    """Snapshots the weights training starts from (after the strategy set the model up)."""

    def on_train_start(self, trainer, pl_module):
        self.params = params_of(pl_module)


class CountBatches(L.Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, *args):
        self.batches += 1


def model_overrides(model: str, request) -> list[str]:
    """What ``model=<model>`` needs to train in a test: its data, its first stage, enough batches for
    its periodic steps (wgan_gp's generator steps once per n_critic batches)."""
    fixture, key = CKPT_FOR.get(model, (None, None))
    needs = [f"{key}={request.getfixturevalue(fixture)}"] if fixture else []
    n_critic = compose_train([f"model={model}"]).model.get("n_critic", 1)
    needs += OVERRIDES_FOR.get(model, [])
    return [f"model={model}", f"data={DATA_FOR.get(model, 'digits')}", "data.batch_size=8", *needs] + (
        [f"trainer.limit_train_batches={n_critic}"] if n_critic > 2 else []
    )


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_trains(make_cfg, model, request):
    start = AtTrainStart()
    # Sample quality has its own test per model below; here it would only add minutes (the prior samples slowly).
    cfg = make_cfg(*model_overrides(model, request), "callbacks.sample_quality=null")
    train.run(cfg, callbacks=[start])
    run = Path(cfg.paths.output_dir)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and list((run / "samples").glob("*final.png"))
    trained = params_of(load_model(ckpt))
    moved = [k for k, v in trained.items() if not torch.equal(v, start.params[k])]
    assert moved, "no parameter moved: no optimizer step happened"
    if "n_critic" in cfg.model:  # the generator stepped too, not only the discriminator
        assert any(k.startswith("generator.") for k in moved), moved
    assert all(torch.isfinite(v).all() for v in trained.values())


@pytest.mark.parametrize("model", MODELS)
def test_metrics_preset_works_for_every_model(make_cfg, model, request):
    """callbacks=metrics' best checkpoint monitors a key this family really logs."""
    cfg = make_cfg(
        *model_overrides(model, request),
        "callbacks=metrics",
        "callbacks.progress_bar=null",
        "callbacks.lr_monitor=null",
        "callbacks.sample_quality.n=100",
        "callbacks.sample_quality.metrics=[fid]",
    )
    train.run(cfg)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best_fid.ckpt"
    assert best.is_file()


@pytest.mark.parametrize("loss", LOSSES)
def test_every_gan_loss_trains(make_cfg, loss):
    cfg = make_cfg(
        "model=dcgan",
        f"model/loss={loss}",
        "data.batch_size=8",
        "model.generator.width=8",
        "model.discriminator.width=8",
    )
    train.run(cfg)
    metrics = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    assert "train/loss_d" in metrics and "train/loss_g" in metrics and "train/kimg" in metrics


def test_training_terms_are_logged_on_the_batches_the_loggers_write(make_cfg):
    import csv

    small = ["data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8"]
    cfg = make_cfg(*small, "trainer.limit_train_batches=6", "trainer.log_every_n_steps=3")
    train.run(cfg)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    logged = [row for row in rows if row.get("train/loss_d")]
    assert len(logged) == 2  # batches 3 and 6 of 6
    assert [float(row["train/kimg"]) for row in logged] == pytest.approx([3 * 8 / 1000, 6 * 8 / 1000])
    assert all(row["train/loss_g"] and row["train/d_real"] for row in logged)


def test_resume_continues_at_the_saved_step(make_cfg, tmp_path):
    small = ["data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8", "trainer.max_epochs=2"]
    first = make_cfg(*small)
    train.run(first)
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1 and saved["global_step"] == 2 * 2 * 2  # 2 epochs x 2 batches x (D + G)

    second = make_cfg(*small, "trainer.max_epochs=3", f"ckpt_path={ckpt}")
    second.paths.output_dir = str(tmp_path / "resumed")
    count = CountBatches()
    train.run(second, callbacks=[count])
    assert count.batches == 2  # one epoch of 2 batches: the third; a fresh run would train 3 epochs
    resumed = torch.load(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 3 * 2 * 2
    # Adam moments continued from the checkpoint rather than restarting at step 0.
    steps = [s["step"] for s in resumed["optimizer_states"][0]["state"].values()]
    assert all(float(s) == 6 for s in steps)
    kimg = resumed["callbacks"]["ImagesSeen"]["images"]
    assert kimg == 3 * 2 * 16


def test_generate_writes_n_images_and_grid_of_the_samples_evaluate_scores(make_cfg, tmp_path):
    cfg = make_cfg("data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8")
    train.run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    # Two steps leave batch norm's running statistics at their start, so G's samples are ~1e-4 apart: scale
    # its last layer until the latents show in the 8-bit PNGs.
    state = torch.load(ckpt, weights_only=True)
    last = [k for k, v in state["state_dict"].items() if k.startswith("generator.") and v.dim() == 4][-1]
    state["state_dict"][last] *= 1e4
    torch.save(state, ckpt)
    out = tmp_path / "gen"
    result = run_script("generate.py", f"ckpt={ckpt}", "n=60", f"out={out}", "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The folder holds the samples only (evaluate.py fake=<out> reads all of it); the grid is beside it.
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i:02d}.png" for i in range(60))
    assert (tmp_path / "gen_grid.png").is_file()
    # They are the images evaluate.py ckpt=... seed=3 scores, whatever its batch size (PNG: 8 bits).
    model = load_model(ckpt, map_location="cpu")
    plan = quality.Plan(reference=None, source=None, n=60, split="train")
    scored = torch.cat(list(quality.model_batches(model, plan, 7, 3, "cpu", quality.Ranks())))
    written = torch.stack([read_image(str(out / f"{i:02d}.png"))[0] for i in range(60)])
    expected = (scored[:, 0] * 0.5 + 0.5).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    assert expected.float().std() > 20  # the images differ visibly
    assert (written.int() - expected.int()).abs().max() <= 1
    other = torch.cat(list(quality.model_batches(model, plan, 7, 4, "cpu", quality.Ranks())))
    assert (other - scored).abs().mean() > 0.1  # another seed, other images


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=nosuchmodel", "Could not find 'model/nosuchmodel'"),
        ("data.image_size=48", "data.image_size"),
        ("data=folder", "data.path"),
        ("model.nosuchkey=1", "nosuchkey"),
    ],
)
def test_bad_overrides_fail_before_training_with_the_key(tmp_path, override, expected):
    result = run_script("train.py", override, f"paths.log_dir={tmp_path}", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout
    assert not list(tmp_path.rglob("*.ckpt"))
    assert "Epoch" not in result.stdout


class SigtermAt(L.Callback):
    """Sends this process SIGTERM after the run's ``batch``-th batch, as a cluster scheduler would."""

    def __init__(self, batch: int, ckpt: Path):
        self.batch, self.ckpt, self.seen, self.before = batch, ckpt, 0, None

    def on_train_batch_end(self, *args):
        self.seen += 1
        if self.seen == self.batch:
            self.before = (self.ckpt.stat().st_mtime_ns, torch.load(self.ckpt, weights_only=True)["global_step"])
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_refreshes_last_checkpoint_mid_epoch(make_cfg):
    """last.ckpt is written at each epoch's end; SIGTERM in the middle of an epoch writes it again, at
    the batch the signal came, and it loads."""
    cfg = make_cfg(*TINY, "trainer.limit_train_batches=4", "trainer.max_epochs=3")
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    signal_at = SigtermAt(6, last)  # the second batch of the second epoch
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException ends the run
        train.run(cfg, callbacks=[signal_at])
    assert signal_at.before[1] == 4 * 2  # the end of epoch 1: 4 batches x (D + G)
    saved = torch.load(last, weights_only=True)
    assert last.stat().st_mtime_ns > signal_at.before[0] and saved["global_step"] == 6 * 2
    assert load_model(last).sample(2).shape == (2, 1, 32, 32)
    assert not list(last.parent.glob("*.tmp"))


def test_ddp_two_cpu_processes(tmp_path):
    small = ["data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8"]
    probe = ["+callbacks.probe._target_=tests.probes.BuffersAtEnd", f"+callbacks.probe.dirpath={tmp_path}"]
    saved = train_ddp_on_cpu(tmp_path, *small, *probe, batches=3)
    assert saved["global_step"] == 3 * 2
    assert saved["callbacks"]["ImagesSeen"]["images"] == 3 * 16 * 2  # both processes counted
    # Each rank updates its own batch-norm statistics between DDP's broadcasts; the sample-quality callback
    # hands rank 0's (the checkpoint's) to the others, or rank 1 would score samples of a model no file holds.
    ranks = [torch.load(tmp_path / f"buffers-rank{r}.pt", weights_only=True) for r in (0, 1)]
    running = [k for k in ranks[0] if "running" in k]  # without it they differ (seen)
    assert running and all(torch.equal(ranks[0][k], ranks[1][k]) for k in running)


def test_unknown_choice_lists_alternatives():
    from genlab.config import compose_train

    with pytest.raises(ConfigCompositionException, match="dcgan"):
        compose_train(["model=nosuchmodel"])


def test_checkpoint_carries_the_run_config(make_cfg):
    from genlab.checkpoint import load_run_config

    cfg = make_cfg("data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8", "data.image_size=16")
    train.run(cfg)
    config = load_run_config(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert config["data"]["image_size"] == 16 and config["model"]["generator"]["image_size"] == 16


class WeightsAtTrainStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.weight = pl_module.discriminator.net[2].weight  # D's second convolution: 4-D, several channels


@pytest.mark.parametrize("enabled, channels_last", [("auto", True), ("false", False)])
def test_channels_last_weights_on_cpu_and_checkpoints_that_load_either_way(make_cfg, enabled, channels_last):
    cfg = make_cfg(*TINY, f"callbacks.channels_last.enabled={enabled}")
    seen = WeightsAtTrainStart()
    train.run(cfg, callbacks=[seen])
    assert seen.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert seen.weight.is_contiguous() != channels_last

    loaded = load_model(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    weight = loaded.discriminator.net[2].weight
    assert weight.is_contiguous() and torch.equal(weight, seen.weight)


def test_channels_last_refuses_values_it_does_not_know():
    from genlab.callbacks import ChannelsLast

    with pytest.raises(ValueError, match="auto, true or false"):
        ChannelsLast(enabled="yes")
