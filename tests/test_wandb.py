"""W&B dashboards worth opening: what an offline run of train.py with ``logger=wandb`` leaves in its run
folder (read back with tests/wandb_offline.py): the resolved config, every ``<stage>/<name>`` scalar,
image grids each epoch, a table of labelled samples, the final metrics in the summary, checkpoints as
artifacts. Sweep groups are checked by the multirun test in test_cluster.py."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from genlab import train
from genlab.callbacks import SampleTable
from genlab.config import compose_train
from genlab.metrics.extractors import Classifier
from tests.conftest import FAST
from tests.wandb_offline import OfflineRun, offline_runs

wandb = pytest.importorskip("wandb")

TINY_GAN = ["data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8"]
STAGE_KEY = re.compile(r"^(train|val|test)/")


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory) -> tuple[Path, OfflineRun]:
    """Two epochs of a tiny DCGAN on digits logged to CSV and (offline) W&B, checkpoints as artifacts."""
    out = tmp_path_factory.mktemp("wandb") / "run"
    cfg = compose_train(
        [
            *FAST,
            *TINY_GAN,
            "logger=[csv,wandb]",
            "logger.wandb.log_model=true",
            "trainer.max_epochs=2",
            "model.optimizer_g.lr=3e-4",
            "callbacks.sample_quality.n=100",
            "callbacks.sample_table.n=16",
        ],
        output_dir=out,
    )
    train.run(cfg)
    (run,) = offline_runs(out)
    return out, run


def csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_config_is_the_resolved_config_train_py_saved(dcgan):
    out, run = dcgan
    saved = OmegaConf.to_container(OmegaConf.load(out / "config.yaml"))
    assert {k: v for k, v in run.config.items() if k != "_wandb"} == saved
    assert run.config["model"]["optimizer_g"]["lr"] == 3e-4
    assert run.config["paths"]["output_dir"] == str(out)  # interpolations resolved
    assert "generator" not in run.config  # the module's arguments are under model, not beside it


def test_every_stage_scalar_reaches_wandb_as_it_reaches_the_csv(dcgan):
    out, run = dcgan
    rows = csv_rows(out)
    in_csv = {k for k in rows[0] if STAGE_KEY.match(k)}
    in_wandb = {k for row in run.history for k in row if STAGE_KEY.match(k)}
    assert {"train/loss_d", "train/loss_g", "train/kimg", "val/fid100[classifier]"} <= in_csv
    assert in_wandb == in_csv
    last_csv = [float(r["train/loss_d"]) for r in rows if r["train/loss_d"]][-1]
    assert run.rows_with("train/loss_d")[-1]["train/loss_d"] == pytest.approx(last_csv, rel=1e-6)


def test_sample_grid_each_epoch_holds_the_pixels_of_its_png(dcgan):
    out, run = dcgan
    logged = run.rows_with("images/samples")
    assert len(logged) == 2  # one per epoch; the final grid is the last epoch's, not logged twice
    assert [row["trainer/global_step"] for row in logged] == sorted({row["trainer/global_step"] for row in logged})
    for epoch, row in enumerate(logged, start=1):
        (media,) = row["images/samples"]["filenames"]
        shown = np.asarray(Image.open(run.folder / "files" / media).convert("RGB"))
        written = np.asarray(Image.open(out / "samples" / f"samples_epoch{epoch:04d}.png").convert("RGB"))
        assert np.array_equal(shown, written)


def test_sample_table_labels_are_the_digit_classifiers(dcgan):
    _, run = dcgan
    columns, rows = run.table("images/sample_table")
    assert columns == ["sample", "image", "label", "p_label"]
    assert [row[0] for row in rows] == list(range(16))
    # The table's PNGs, read back and classified by the shipped digits classifier, give its labels.
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(row[1]))) for row in rows])
    assert pixels.shape == (16, 32, 32)  # grey digits at data.image_size
    probabilities = Classifier("digits")(pixels[:, None].float() / 127.5 - 1)["logits"].softmax(dim=1)
    p_label, label = probabilities.max(dim=1)
    assert [row[2] for row in rows] == label.tolist()
    assert [row[3] for row in rows] == pytest.approx(p_label.tolist(), abs=1e-5)


def test_final_sample_quality_is_in_the_summary(dcgan):
    out, run = dcgan
    rows = csv_rows(out)
    for key in ("val/fid100[classifier]", "val/is100[classifier]"):
        final = [float(r[key]) for r in rows if r.get(key)][-1]
        assert run.summary[key] == pytest.approx(final, rel=1e-6)


def test_last_checkpoint_is_a_model_artifact(dcgan):
    out, run = dcgan
    models = [a for a in run.artifacts if a.type == "model"]
    by_file = {json.loads(a.metadata)["original_filename"]: a for a in models}
    assert "last.ckpt" in by_file
    (entry,) = by_file["last.ckpt"].manifest.contents
    assert entry.path == "model.ckpt"
    assert Path(entry.local_path).read_bytes() == (out / "checkpoints" / "last.ckpt").read_bytes()


def test_run_is_finished_so_the_next_run_in_this_process_gets_its_own(dcgan):
    _, run = dcgan
    assert run.exit_code == 0
    assert wandb.run is None


@pytest.mark.parametrize(
    ("overrides", "panels"),
    [
        (
            [
                "model=cyclegan",
                "data=shapes_unpaired",
                "data.batch_size=4",
                "data.n_train=8",
                "data.n_val=8",
                "data.val_batch_size=8",
                "model.generator.ngf=8",
                "model.generator.n_blocks=1",
                "model.discriminator.ndf=8",
                "model.discriminator.n_layers=2",
                "model.n_epochs=1",
                "model.n_epochs_decay=0",
            ],
            {"images/a2b", "images/b2a"},
        ),
        (
            ["model=vqvae", "data.batch_size=8", "model.encoder.hidden=16", "model.encoder.residual_hidden=8"],
            {"images/reconstructions"},
        ),
    ],
    ids=["cyclegan", "vqvae"],
)
def test_translation_and_reconstruction_panels_each_epoch(make_cfg, overrides, panels):
    cfg = make_cfg(*overrides, "logger=wandb", "callbacks.sample_quality=null", "trainer.limit_train_batches=1")
    train.run(cfg)
    (run,) = offline_runs(Path(cfg.paths.output_dir))
    images = {k for row in run.history for k in row if k.startswith("images/")}
    assert images == panels  # and no sample table: these models do not sample
    for key in panels:
        assert len(run.rows_with(key)) == 1  # one epoch


@pytest.fixture(scope="module")
def tiny_sampler():
    cfg = compose_train([*TINY_GAN, "data=shapes"])
    return instantiate(cfg.model, _recursive_=False, _convert_="all")


class NoClassifierData:
    """A datamodule of a domain no classifier ships for (a user's folder of images)."""


def test_sample_table_without_a_classifier_for_the_data_has_images_only(tiny_sampler):
    with pytest.warns(UserWarning, match="no classifier ships for NoClassifierData"):
        columns, rows = SampleTable(n=3).table(tiny_sampler, NoClassifierData())
    assert columns == ["sample", "image"]
    assert len(rows) == 3 and all(isinstance(row[1], wandb.Image) for row in rows)


def test_sample_table_skips_labels_of_a_classifier_of_other_images(tiny_sampler):
    """RGB shapes samples and the grey digits classifier: no labels, and the message says why."""
    with pytest.warns(UserWarning, match="takes 1-channel images, the samples have 3"):
        columns, _ = SampleTable(n=2, classifier="digits").table(tiny_sampler, NoClassifierData())
    assert columns == ["sample", "image"]
