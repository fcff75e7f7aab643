"""``python -m genlab.bench gan_vs_vae``: its budget, table, rate-distortion plot, arguments, and the
scoring of one real (tiny) run. The seven trainings themselves are the lead's timed run, not a test."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import train
from genlab.bench import gan_vs_vae as bench
from genlab.bench.plot import MARKER, line_plot
from genlab.config import compose_evaluate, compose_train
from tests.conftest import FAST


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_table_leaves_blank_what_a_row_cannot_do_and_keeps_the_two_nlls_apart():
    rows = [
        {"row": "DCGAN", "train_s": 360.4, "epochs": "212", "fid": 12.3456, "precision": 0.8, "recall": 0.31},
        {"row": "VAE", "psnr": 18.25, "ssim": 0.7512, "iw_nll": 260.04, "recall": 0.75},
        {"row": "VQ-VAE + prior", "epochs": "120+30", "psnr": 21.0, "code_nll": 2.3456},
    ]
    lines = bench.table(rows).splitlines()
    header = cells(lines[0])
    assert header[:4] == ["model", "train s", "epochs", "kimg"]
    dcgan, vae, prior = (dict(zip(header, cells(line))) for line in lines[1:])
    assert dcgan["train s"] == "360" and dcgan["FID"] == "12.35" and dcgan["prec"] == "0.800"
    for column in ("kimg", "KID", "IS", "PSNR dB", "SSIM", "IW-NLL(1)", "code NLL(2)"):
        assert dcgan[column] == "-", column
    assert vae["IW-NLL(1)"] == "260.0" and vae["code NLL(2)"] == "-" and vae["SSIM"] == "0.751"
    assert prior["code NLL(2)"] == "2.346" and prior["IW-NLL(1)"] == "-" and prior["epochs"] == "120+30"
    assert len({len(line) for line in lines}) == 1  # aligned: every line as wide as the header


def test_columns_read_evaluates_protocol_keys():
    values = {
        "fid1000[classifier]": 30.0,
        "kid1000[classifier]": 0.01,
        "kid1000_std[classifier]": 0.001,
        "precision1000[classifier]": 0.7,
        "recall1000[classifier]": 0.4,
        "psnr180": 19.0,
        "ssim180": 0.8,
        "mse180": 0.05,
        "iw_nll180_k1000": 250.0,
        "iw_nll180_k10": 999.0,  # another k: not the table's
    }
    out = bench.columns(values, {"n_fake": 1000}, "classifier", n_val=180, iw_k=1000)
    assert out == {
        "fid": 30.0,
        "kid": 0.01,
        "precision": 0.7,
        "recall": 0.4,
        "psnr": 19.0,
        "ssim": 0.8,
        "iw_nll": 250.0,
    }
    assert bench.columns({"psnr180": 19.0}, {}, "classifier", n_val=32, iw_k=1000) == {}


@pytest.mark.parametrize(
    ("text", "kind", "amount"),
    [("6m", "time", 360), ("90s", "time", 90), ("1.5min", "time", 90), ("60ep", "epochs", 60)],
)
def test_budget_parses_time_and_epochs(text, kind, amount):
    assert bench.Budget.parse(text) == bench.Budget(amount, kind)


@pytest.mark.parametrize("text", ["6", "soon", "-5m", "0s", "6 hours"])
def test_budget_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="positive time"):
        bench.Budget.parse(text)


def test_time_budget_composes_into_lightnings_timer_with_the_priors_share():
    import lightning as L
    from lightning.pytorch.callbacks import Timer

    budget = bench.Budget.parse("6m")
    first = compose_train(["experiment=vqvae_digits", *bench.BENCH, *budget.stage(0.55)])
    prior = compose_train(["experiment=vqvae_prior_digits", *bench.BENCH, *budget.stage(0.45), "model.vqvae_ckpt=x"])
    assert first.trainer.max_epochs == -1 and prior.trainer.max_epochs == -1  # time alone stops them
    assert first.callbacks.sample_quality is None and first.callbacks.periodic_checkpoint is None
    seconds = []
    for cfg in (first, prior):
        trainer = L.Trainer(max_time=cfg.trainer.max_time, max_epochs=cfg.trainer.max_epochs, logger=False)
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        seconds.append(timer._duration)
    assert seconds == [198, 162]  # 55 % and 45 % of 360 s


def test_epoch_budget_splits_epochs_between_the_stages():
    budget = bench.Budget.parse("60ep")
    first = compose_train(["experiment=vqgan_digits", *budget.stage(0.55)])
    prior = compose_train(["experiment=vqgan_prior_digits", *budget.stage(0.45), "model.vqvae_ckpt=x"])
    assert (first.trainer.max_epochs, prior.trainer.max_epochs) == (33, 27)
    assert "max_time" not in first.trainer


def blobs(path) -> list[tuple[float, float]]:
    """Centres (x, y) of the connected regions of the marker colour in a PNG, left to right."""
    from scipy import ndimage

    pixels = np.asarray(Image.open(path).convert("RGB"))
    labels, count = ndimage.label((pixels == MARKER).all(axis=2))
    centres = ndimage.center_of_mass(labels > 0, labels, range(1, count + 1))
    return sorted((x, y) for y, x in centres)


def test_rate_distortion_plot_marks_every_point_where_its_numbers_put_it(tmp_path):
    points = [
        {"beta": 4.0, "rate": 5.0, "distortion": 300.0},
        {"beta": 1.0, "rate": 15.0, "distortion": 200.0},
        {"beta": 0.25, "rate": 35.0, "distortion": 150.0},
    ]
    found = blobs(bench.plot_rate_distortion(points, tmp_path / "rd.png"))
    assert len(found) == 3
    (xa, ya), (xb, yb), (xc, yc) = found
    assert ya < yb < yc  # more distortion is higher up
    # Linear axes: rate gaps 10 and 20 are pixel gaps 1:2, distortion gaps 100 and 50 are 2:1.
    assert (xc - xb) / (xb - xa) == pytest.approx(2.0, rel=0.03)
    assert (yb - ya) / (yc - yb) == pytest.approx(2.0, rel=0.03)


def test_plot_refuses_unlabelled_or_non_finite_points(tmp_path):
    with pytest.raises(ValueError, match="one label per point"):
        line_plot(tmp_path / "a.png", [(1.0, 2.0)], [], title="", xlabel="", ylabel="")
    with pytest.raises(ValueError, match="non-finite"):
        line_plot(tmp_path / "a.png", [(1.0, float("nan"))], ["x"], title="", xlabel="", ylabel="")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "soon"], "budget 'soon'"),
        (["--prior-share", "1.5"], "--prior-share 1.5"),
        (["--rows", "dcgan,gan"], "unknown row(s) ['gan']"),
        (["--rows", "none"], "leaves nothing to do"),
        (["--beta-sweep", "1,x"], "separated by commas"),
        (["--beta-sweep", "0,1"], "positive"),
        (["--vae-ckpt", "/nonexistent/last.ckpt"], "--vae-ckpt /nonexistent/last.ckpt: no such file"),
        (["--vqgan-prior-ckpt", "/nonexistent/p.ckpt"], "--vqgan-prior-ckpt /nonexistent/p.ckpt: no such file"),
    ],
)
def test_argument_errors_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        bench.parse_args(argv)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_panel_puts_each_row_of_originals_over_its_reconstructions():
    originals = torch.arange(16.0).view(16, 1, 1, 1)
    grid = bench.interleave(originals, -originals, 8)
    assert grid.flatten().tolist() == [*range(8), *(-x for x in range(8)), *range(8, 16), *(-x for x in range(8, 16))]
    with pytest.raises(ValueError, match="whole rows of 8"):
        bench.interleave(originals[:12], -originals[:12], 8)


def test_a_trained_vae_is_scored_in_every_column_its_surfaces_allow(tmp_path):
    overrides = [*FAST, "experiment=vae_digits", "data.batch_size=8", "model.kl_warmup_steps=0", *bench.BENCH]
    cfg = compose_train(overrides, output_dir=tmp_path / "vae")
    train.run(cfg)
    ckpt = tmp_path / "vae" / "checkpoints" / "last.ckpt"
    trained = bench.Trained(bench.ROWS[1], [bench.Stage("vae_digits", ckpt, 12.5)])
    ecfg = compose_evaluate(["n=16", "iw_k=2", "allow_few_samples=true"])
    reference = bench.quality.describe_dataset(bench.data_of(ckpt), "train")
    row, panels = bench.score_row(trained, ecfg, torch.device("cpu"), reference)
    for column in ("fid", "kid", "is", "precision", "recall", "psnr", "ssim", "iw_nll"):
        assert np.isfinite(row[column]), column
    assert "code_nll" not in row
    assert row["train_s"] == 12.5 and row["kimg"] == "0.016"  # 2 batches of 8 images
    assert row["epochs"] == "0.0099"  # 16 of the 1617 training digits
    assert panels["samples"].shape == (64, 1, 32, 32) and panels["reconstructions"].shape == (64, 1, 32, 32)
    assert 0.1 < row["params_m"] < 10 and row["samples_per_s"] > 0
    with pytest.raises(bench.UserError, match="other data"):
        bench.score_row(trained, ecfg, torch.device("cpu"), "SomeOtherData (...)")
