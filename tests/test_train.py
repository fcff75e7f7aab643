"""End-to-end: the real configs, the real Trainer, a few real optimizer steps."""

import signal
import time
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException

from genlab import generate, train
from genlab.checkpoint import load_model
from genlab.config import config_dir
from tests.conftest import run_script, train_ddp_on_cpu

MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (config_dir() / "model" / "loss").glob("*.yaml"))
# The embedded dataset each family trains on in tests; anything unlisted uses digits.
DATA_FOR = {"cyclegan": "shapes_unpaired"}
# Second stages that start from another trained model: model -> (fixture giving its checkpoint, key).
CKPT_FOR = {"vqvae_prior": ("vqvae_ckpt", "model.vqvae_ckpt")}


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_trains(make_cfg, model, request):
    fixture, key = CKPT_FOR.get(model, (None, None))
    needs = [f"{key}={request.getfixturevalue(fixture)}"] if fixture else []
    cfg = make_cfg(f"model={model}", f"data={DATA_FOR.get(model, 'digits')}", "data.batch_size=8", *needs)
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "samples").glob("*final.png")
    trained = load_model(ckpt)
    fresh = load_model(ckpt)
    fresh.load_state_dict(type(trained)(**trained.hparams).state_dict())  # untrained weights
    changed = [k for k, v in params_of(trained).items() if not torch.equal(v, params_of(fresh)[k])]
    assert changed, "no parameter moved: no optimizer step happened"
    assert all(torch.isfinite(v).all() for v in params_of(trained).values())


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
    train.run(second)
    resumed = torch.load(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 3 * 2 * 2
    # Adam moments continued from the checkpoint rather than restarting at step 0.
    steps = [s["step"] for s in resumed["optimizer_states"][0]["state"].values()]
    assert all(float(s) == 6 for s in steps)
    kimg = resumed["callbacks"]["ImagesSeen"]["images"]
    assert kimg == 3 * 2 * 16


def test_generate_writes_n_images_and_grid(make_cfg, tmp_path):
    cfg = make_cfg("data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8")
    train.run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    out = tmp_path / "gen"
    result = run_script("generate.py", f"ckpt={ckpt}", "n=10", f"out={out}", "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(10)] + ["grid.png"]
    # Same seed, same images; another seed, other images.
    from omegaconf import OmegaConf

    again = generate.run(
        OmegaConf.create(
            {
                "ckpt": str(ckpt),
                "n": 10,
                "out": str(tmp_path / "g2"),
                "seed": 3,
                "batch_size": 4,
                "device": "cpu",
                "nrow": 5,
            }
        )
    )
    assert (again / "7.png").read_bytes() == (out / "7.png").read_bytes()


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


def test_sigterm_leaves_a_loadable_last_checkpoint(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "train.py"),
            f"hydra.run.dir={tmp_path}",
            "trainer=cpu",
            "trainer.max_epochs=1000",
            "callbacks.progress_bar=null",
            "model.generator.width=8",
            "model.discriminator.width=8",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.stdout.read() if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0 or "SIGTERM" in output
    model = load_model(last)
    assert model.sample(2).shape == (2, 1, 32, 32)
    assert not list(tmp_path.rglob("*.tmp"))


def test_ddp_two_cpu_processes(tmp_path):
    small = ["data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8"]
    saved = train_ddp_on_cpu(tmp_path, *small, batches=3)
    assert saved["global_step"] == 3 * 2
    assert saved["callbacks"]["ImagesSeen"]["images"] == 3 * 16 * 2  # both processes counted


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
