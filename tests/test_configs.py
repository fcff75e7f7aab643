"""Every shipped config composes and builds its model and data (GPU recipes are built, not trained)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from genlab.config import compose_train, config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
# Recipes whose model needs an artefact of an earlier stage (e.g. a trained VQ-VAE) to be built.
# Built from checkpoints in test_vqvae_prior.py (a VQ-VAE's) and test_vqgan.py (a VQGAN's).
NEEDS_ARTEFACT = {"vqvae_prior_digits", "vqgan_prior_digits"}


def image_folder(root: Path, size: int = 8) -> Path:
    """A few small images, standing in for the folder a recipe on the user's data points at."""
    from PIL import Image

    root.mkdir()
    for i in range(4):
        Image.new("RGB", (size, size), (60 * i, 0, 0)).save(root / f"{i}.png")
    return root


# GPU recipes on a public dataset the user downloads into a folder: building their data names the folder and the source.
NEEDS_USER_DATA = {
    "inpaint_places": "places2.csail.mit.edu",
    "denoise_bsd": "cszn/DnCNN",
    "sr_div2k": "DIV2K",
    "stylegan2_ffhq256": "ffhq-dataset",
    "stylegan2_folder": "your own collection",
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment, tmp_path):
    cfg = compose_train([f"experiment={experiment}"], output_dir=tmp_path)
    assert cfg.model.get("_target_") and cfg.data.get("_target_")
    if experiment in NEEDS_USER_DATA:  # as shipped: the error names the folder and where to get the images
        with pytest.raises(
            Exception, match=f"data.path={cfg.data.path} is not a directory.*{NEEDS_USER_DATA[experiment]}"
        ):
            instantiate(cfg.data)
    if cfg.data._target_.endswith("FolderDataModule"):  # the user's folder(s): here a stand-in
        folder = image_folder(tmp_path / "images")
        stand_in = [f"data.path={folder}"] + ([f"data.val_path={folder}"] if cfg.data.get("val_path") else [])
        cfg = compose_train([f"experiment={experiment}", *stand_in], output_dir=tmp_path)
    instantiate(cfg.data)
    if experiment not in NEEDS_ARTEFACT:
        model = instantiate(cfg.model, _recursive_=False, _convert_="all")
        assert sum(p.numel() for p in model.parameters()) > 0


def test_default_run_is_the_digits_dcgan(tmp_path):
    default = compose_train([], output_dir=tmp_path)
    spelled = compose_train(["experiment=dcgan_digits"], output_dir=tmp_path)
    for key in ("data", "model"):
        assert default[key] == spelled[key]
    assert default.trainer.max_epochs == spelled.trainer.max_epochs


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "hparams_search"])
def test_every_group_option_composes(group, tmp_path):
    for option in sorted(p.stem for p in (config_dir() / group).glob("*.yaml")):
        if group == "hparams_search":
            pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
        compose_train([f"{group}={option}"], output_dir=tmp_path)


def test_logger_many_writes_csv_and_tensorboard(make_cfg):
    from pathlib import Path

    from genlab import train

    cfg = make_cfg("logger=many", "data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8")
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "csv" / "metrics.csv").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_wandb_logger_runs_offline_without_a_key(make_cfg, monkeypatch):
    from pathlib import Path

    from genlab import train

    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = make_cfg(
        "logger=wandb",
        "logger.wandb.offline=false",
        "data.batch_size=8",
        "model.generator.width=8",
        "model.discriminator.width=8",
    )
    with pytest.warns(UserWarning, match="logging offline"):
        train.run(cfg)
    assert list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
