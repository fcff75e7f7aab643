"""model=restoration, restore.py, evaluate.py's hole metrics and area bins, the restoration bench and data=folder's
restoration options."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from genlab import losses, train
from genlab.checkpoint import load_model, load_run_config
from genlab.config import compose_train
from genlab.data.base import DataError
from genlab.errors import ConfigError, MissingFile, UserError
from genlab.metrics import paired
from genlab.networks import features
from genlab.restore import restore_tiled
from tests.conftest import FAST, run_script, train_ddp_on_cpu

TINY_UNET = ["model.network.width=8", "model.network.depth=2"]
# name -> overrides of a tiny run: grey inpainting, RGB denoising with a small receptive field, grey x2 upscaling.
RUNS = {
    "inpaint": ["data=digits", "degradation=inpaint_box", *TINY_UNET],
    "denoise": [
        "data=shapes",
        "degradation=noise",
        "model/network=dncnn",
        "model.network.depth=3",
        "model.network.width=8",
    ],
    "sr": [
        "data=digits",
        "degradation=downsample",
        "model/network=dncnn",
        "model.network.depth=3",
        "model.network.width=8",
    ],
}


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of three tiny restoration runs of 2 batches each."""
    out = {}
    for name, overrides in RUNS.items():
        run = tmp_path_factory.mktemp(name)
        train.run(compose_train([*FAST, "model=restoration", "data.batch_size=8", *overrides], output_dir=run))
        out[name] = run / "checkpoints" / "last.ckpt"
    return out


def build(*overrides: str):
    cfg = compose_train(["model=restoration", *overrides])
    return instantiate(cfg.model, _recursive_=False, _convert_="all").eval()


# --- losses -----------------------------------------------------------------------------------------------


def test_pixel_losses_weigh_hole_and_known_pixels_apart():
    target = torch.zeros(1, 1, 2, 2)
    output = torch.tensor([[[[1.0, 1.0], [0.5, 0.5]]]])  # error 1 in the hole (top row), 0.5 outside
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert losses.pixel_l1_loss(output, target, mask, hole_weight=6, valid_weight=1) == pytest.approx(
        (6 + 6 + 0.5 + 0.5) / 4
    )
    assert losses.pixel_l2_loss(output, target, mask, hole_weight=6, valid_weight=1) == pytest.approx(
        (6 + 6 + 0.25 + 0.25) / 4
    )
    assert losses.pixel_l1_loss(output, target, mask, hole_weight=0, valid_weight=10) == pytest.approx(10 * 1.0 / 4)
    assert losses.pixel_l1_loss(output, target, None, hole_weight=6, valid_weight=2) == pytest.approx(2 * 3.0 / 4)


def test_feature_matching_is_the_mean_over_layers_and_leaves_the_targets_alone():
    fake = [torch.ones(1, 2, 2, 2, requires_grad=True), torch.zeros(1, 3, 1, 1, requires_grad=True)]
    real = [torch.zeros(1, 2, 2, 2, requires_grad=True), torch.full((1, 3, 1, 1), 2.0, requires_grad=True)]
    assert losses.feature_matching_loss(fake, real, power=1).item() == pytest.approx((1 + 2) / 2)
    loss = losses.feature_matching_loss(fake, real, power=2)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None


# --- the model ----------------------------------------------------------------------------------------------


def test_known_pixels_are_kept_exactly_and_the_hole_content_is_ignored():
    torch.manual_seed(0)
    model = build("data=shapes", "degradation=inpaint_box", *TINY_UNET)
    y = torch.rand(2, 3, 21, 27) * 2 - 1  # odd sizes: padded to multiples of 4, cropped back
    mask = (torch.rand(2, 1, 21, 27) > 0.6).float()
    out = model.restore(y, mask)
    assert out.shape == y.shape
    known = (mask == 0).expand_as(y)
    assert torch.equal(out[known], y[known])
    assert not torch.equal(out[~known], y[~known])
    garbage = torch.where(mask.bool(), torch.randn_like(y), y)  # what a photo holds under its mask is not read
    assert torch.equal(model.restore(garbage, mask), out)


def test_prefill_gives_the_network_the_holes_filled_from_their_surroundings():
    model = build("data=shapes", "degradation=inpaint_box", *TINY_UNET, "model.prefill=true")
    seen = []
    model.generator.register_forward_pre_hook(lambda net, args: seen.append(args[0]))
    y = torch.full((1, 3, 16, 16), 0.5)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    model.restore(y, mask)
    assert torch.allclose(seen[-1], y)  # a flat photo's hole is flat, not grey
    model.hparams.prefill = False
    model.restore(y, mask)
    assert torch.equal(seen[-1][..., 4:12, 4:12], torch.zeros(1, 3, 8, 8))


def test_an_inpainting_model_needs_the_mask_and_the_others_refuse_one():
    with pytest.raises(UserError, match="needs to know where they are"):
        build("data=digits", "degradation=inpaint_box", *TINY_UNET).restore(torch.zeros(1, 1, 8, 8))
    with pytest.raises(UserError, match="takes no mask"):
        build("data=digits", "degradation=noise", *TINY_UNET).restore(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8))


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolution_restores_any_size_at_scale_times(scale):
    model = build("data=digits", "degradation=downsample", f"degradation.scale={scale}", *TINY_UNET)
    assert model.restore(torch.rand(1, 1, 13, 7) * 2 - 1).shape == (1, 1, 13 * scale, 7 * scale)
    batch = {"clean": torch.zeros(2, 1, 8 * scale, 8 * scale), "degraded": torch.zeros(2, 1, 8, 8)}
    grid, nrow = model.previews(batch)["restorations"]
    assert nrow == 3 and grid.shape == (6, 1, 8 * scale, 8 * scale)  # degraded (enlarged) | restored | clean


def test_recurrent_loss_on_the_last_or_every_step():
    clean = torch.zeros(1, 1, 4, 4)
    estimates = [torch.full((1, 1, 4, 4), v) for v in (3.0, 2.0, 1.0)]
    last = build("data=digits", "degradation=noise", "model/network=recurrent")
    every = build("data=digits", "degradation=noise", "model/network=recurrent", "model.every_step=true")
    assert last.pixel_term(estimates, clean, None) == pytest.approx(1.0)
    assert every.pixel_term(estimates, clean, None) == pytest.approx(2.0)


def test_feature_matching_on_the_discriminator_needs_the_adversarial_term():
    with pytest.raises(Exception, match="model.lambda_adv > 0"):
        build("data=digits", "degradation=noise", "model.lambda_feature=1")
    assert build("data=digits", "degradation=noise", "model.lambda_adv=0").discriminator is None


def test_adversarial_r1_and_feature_matching_terms_train(make_cfg):
    cfg = make_cfg(
        "model=restoration",
        "data=digits",
        "data.batch_size=4",
        "degradation=inpaint_box",
        *TINY_UNET,
        "model.lambda_adv=1",
        "model.r1_gamma=1",
        "model.lambda_feature=1",
        "model.discriminator.ndf=8",
        "model.discriminator.n_layers=2",
    )
    train.run(cfg)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"train/loss_d", "train/r1", "train/loss_feature", "train/loss_g_adv", "train/loss_pixel"} <= logged
    assert {"val/psnr", "val/ssim", "val/l1", "val/psnr_hole", "val/l1_hole"} <= logged


def vgg16_block1(path: Path) -> dict[str, torch.Tensor]:
    """The first two convolutions of a VGG-16 state dict with torchvision's key names (random weights)."""
    torch.manual_seed(0)
    state = {
        "features.0.weight": torch.randn(64, 3, 3, 3) * 0.1,
        "features.0.bias": torch.randn(64) * 0.1,
        "features.2.weight": torch.randn(64, 64, 3, 3) * 0.05,
        "features.2.bias": torch.randn(64) * 0.1,
        "classifier.0.weight": torch.zeros(1),  # other keys of the whole model are ignored
    }
    torch.save(state, path)
    return state


def test_vgg_features_from_a_weights_file(tmp_path):
    state = vgg16_block1(tmp_path / "vgg16.pth")
    net = features.VGG(str(tmp_path / "vgg16.pth"), depth=16, layers=["relu1_1", "relu1_2"])
    x = torch.rand(2, 1, 8, 8) * 2 - 1  # grey: repeated to RGB, then ImageNet-normalised
    rgb = (x.expand(-1, 3, -1, -1) * 0.5 + 0.5 - torch.tensor(features.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        features.IMAGENET_STD
    ).view(1, 3, 1, 1)
    relu1_1 = torch.relu(
        torch.nn.functional.conv2d(rgb, state["features.0.weight"], state["features.0.bias"], padding=1)
    )
    relu1_2 = torch.relu(
        torch.nn.functional.conv2d(relu1_1, state["features.2.weight"], state["features.2.bias"], padding=1)
    )
    out = net(x)
    assert torch.allclose(out[0], relu1_1, atol=1e-5) and torch.allclose(out[1], relu1_2, atol=1e-5)
    with pytest.raises(MissingFile, match="download.pytorch.org"):
        features.VGG(str(tmp_path / "nothing.pth"), depth=16, layers=["relu1_2"])
    with pytest.raises(ConfigError, match="no \\['features.5.weight'"):
        features.VGG(str(tmp_path / "vgg16.pth"), depth=16, layers=["relu2_1"])
    with pytest.raises(ConfigError, match="choose from"):
        features.VGG(str(tmp_path / "vgg16.pth"), depth=16, layers=["relu9_9"])


def test_a_perceptual_network_from_a_file_trains_and_stays_out_of_the_checkpoint(make_cfg, tmp_path):
    vgg16_block1(tmp_path / "vgg16.pth")
    cfg = make_cfg(
        "model=restoration",
        "data=shapes",
        "data.batch_size=4",
        "degradation=noise",
        *TINY_UNET,
        "model.lambda_feature=1",
        "model.feature_power=2",
        f"+model.feature_network={{_target_: genlab.networks.features.VGG, weights: {tmp_path / 'vgg16.pth'}, depth: 16, layers: [relu1_2]}}",
    )
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    assert "train/loss_feature" in (run / "csv" / "metrics.csv").read_text()
    ckpt = run / "checkpoints" / "last.ckpt"
    assert not [k for k in torch.load(ckpt, weights_only=True)["state_dict"] if "feature" in k or "features." in k]
    (tmp_path / "vgg16.pth").unlink()  # restoring needs no weights file
    assert load_model(ckpt).restore(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_the_config_check_names_the_degradations_and_refuses_one_for_other_models():
    with pytest.raises(ConfigError, match="add degradation=.*inpaint_mixed.*noise"):
        train.check_config(compose_train(["model=restoration"]))
    with pytest.raises(ConfigError, match="leave the degradation out"):
        train.check_config(compose_train(["model=dcgan", "degradation=noise"]))


def test_ddp_two_cpu_processes(tmp_path):
    overrides = ["model=restoration", "degradation=inpaint_box", "data.batch_size=4", *TINY_UNET]
    overrides += ["model.lambda_adv=1", "model.discriminator.ndf=8", "model.discriminator.n_layers=2"]
    saved = train_ddp_on_cpu(tmp_path, *overrides, batches=2)
    assert saved["global_step"] == 2 * 2  # two optimizers (network, D) per batch
    assert int(saved["state_dict"]["images_seen"]) == 2 * 4 * 2  # both processes counted


# --- restore.py ---------------------------------------------------------------------------------------------


def write_image(path: Path, shape: tuple[int, ...], seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def restore_cfg(ckpt: Path, input: Path, out: Path, mask: Path | None = None, **extra):
    return OmegaConf.create(
        {"ckpt": str(ckpt), "input": str(input), "mask": str(mask) if mask else None, "out": str(out)}
        | {"tile_pixels": None, "overlap": 8, "device": "cpu", **extra}
    )


def test_restore_py_fills_holes_of_odd_sized_grey_and_rgb_images(ckpts, tmp_path):
    write_image(tmp_path / "in" / "rgb.png", (37, 53, 3), 0)
    write_image(tmp_path / "in" / "sub" / "grey.png", (41, 29), 1)
    holes = {"rgb": (37, 53), "sub/grey": (41, 29)}
    for (name, (h, w)), extension in zip(holes.items(), (".png", ".bmp")):  # matched by name, any extension
        mask = np.zeros((h, w, 3), np.uint8)
        mask[5:15, 7:20, 1] = 255  # non-zero in any channel marks a hole
        (tmp_path / "masks" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}{extension}")
    out = tmp_path / "out"
    result = run_script(
        "restore.py",
        f"ckpt={ckpts['inpaint']}",
        f"input={tmp_path / 'in'}",
        f"mask={tmp_path / 'masks'}",
        f"out={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for name, (h, w) in holes.items():
        restored = Image.open(out / f"{name}.png")
        assert restored.size == (w, h) and restored.mode == "L"  # the model is grey: grey out, input's size
        original = np.asarray(Image.open(tmp_path / "in" / f"{name}.png").convert("L"))
        known = np.ones((h, w), bool)
        known[5:15, 7:20] = False
        assert np.array_equal(np.asarray(restored)[known], original[known])
        assert not np.array_equal(np.asarray(restored)[~known], original[~known])


def test_restore_rgb_model_on_a_grey_image_and_upscaling(ckpts, tmp_path):
    from genlab import restore

    write_image(tmp_path / "in" / "a.png", (19, 23), 2)
    restore.run(restore_cfg(ckpts["denoise"], tmp_path / "in", tmp_path / "den"))
    assert Image.open(tmp_path / "den" / "a.png").mode == "RGB" and Image.open(tmp_path / "den" / "a.png").size == (
        23,
        19,
    )
    restore.run(restore_cfg(ckpts["sr"], tmp_path / "in" / "a.png", tmp_path / "sr"))
    assert Image.open(tmp_path / "sr" / "a.png").size == (46, 38)


@pytest.mark.parametrize("name, scale", [("denoise", 1), ("sr", 2)])
def test_tiles_give_the_image_restored_whole(ckpts, name, scale):
    model = load_model(ckpts[name])
    channels = load_run_config(ckpts[name])["data"]["channels"]
    y = torch.rand(1, channels, 100, 120) * 2 - 1
    calls = []
    restore_fn = model.restore
    model.restore = lambda *a: calls.append(a[0].shape) or restore_fn(*a)
    # Receptive radius: 3 px (3 convs) + the upsampling head's 1.5: below overlap / 4.
    tiled = restore_tiled(model, y, None, scale, tile_pixels=48 * 48, overlap=20)
    assert len(calls) == 12 and max(s[-1] * s[-2] for s in calls) <= 48 * 48  # 3 rows x 4 columns of tiles
    assert torch.allclose(tiled, restore_fn(y), atol=1e-5)  # no seams
    with pytest.raises(ConfigError, match="too small for overlap"):
        restore_tiled(model, y, None, scale, tile_pixels=40 * 40, overlap=20)


def test_tiles_keep_known_pixels_exactly(ckpts):
    model = load_model(ckpts["inpaint"])
    y = torch.rand(1, 1, 45, 38) * 2 - 1
    mask = (torch.rand(1, 1, 45, 38) > 0.8).float()
    out = restore_tiled(model, y, mask, 1, tile_pixels=24 * 24, overlap=8)
    assert torch.equal(out[mask == 0], y[mask == 0])


def test_restore_py_missing_and_mismatched_masks_are_clear_errors(ckpts, tmp_path):
    write_image(tmp_path / "in" / "a.png", (20, 24, 3), 0)
    write_image(tmp_path / "in" / "b.jpg", (20, 24, 3), 1)
    write_image(tmp_path / "masks" / "a.png", (20, 24), 2)
    args = [f"ckpt={ckpts['inpaint']}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'out'}"]
    no_mask = run_script("restore.py", *args, cwd=tmp_path)
    assert no_mask.returncode == 2 and "pass mask=FILE_OR_DIR" in no_mask.stderr and "Traceback" not in no_mask.stderr
    missing = run_script("restore.py", *args, f"mask={tmp_path / 'masks'}", cwd=tmp_path)
    assert missing.returncode == 2 and "no mask for 1 of 2 input image(s)" in missing.stderr
    assert f"{tmp_path / 'masks' / 'b.png'}" in missing.stderr  # where the mask was looked for
    write_image(tmp_path / "masks" / "b.png", (21, 24), 3)
    wrong = run_script("restore.py", *args, f"mask={tmp_path / 'masks'}", cwd=tmp_path)
    assert wrong.returncode == 2 and "is 24x21 px but image" in wrong.stderr and "the size of its image" in wrong.stderr
    assert not (tmp_path / "out" / "b.png").exists()


def test_restore_refuses_a_mask_for_a_model_without_holes(ckpts, tmp_path):
    from genlab import restore

    write_image(tmp_path / "a.png", (8, 8, 3), 0)
    with pytest.raises(UserError, match="takes no mask"):
        restore.run(restore_cfg(ckpts["denoise"], tmp_path / "a.png", tmp_path / "out", mask=tmp_path / "a.png"))


# --- evaluate: hole metrics and area bins ---------------------------------------------------------------------


def test_hole_psnr_by_hand():
    targets = torch.zeros(2, 3, 10, 10)
    mask = torch.zeros(2, 1, 10, 10)
    mask[0, :, :2] = 1  # 20% of image 0
    mask[1, :, :5] = 1  # 50% of image 1
    outputs = targets + 0.1 * mask - 0.3 * (1 - mask) * torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    values = paired.scores(outputs, targets, ("psnr", "l1"), mask)
    # In the hole the error is 0.1 everywhere: MSE 0.01, PSNR = 10 log10(2² / 0.01) for both images.
    assert values["psnr_hole"] == pytest.approx(10 * math.log10(4 / 0.01))
    assert values["l1_hole"] == pytest.approx(0.1)
    # Whole images: image 0 has MSE 0.2·0.01, image 1 has 0.5·0.01 + 0.5·0.09.
    whole = [10 * math.log10(4 / (0.2 * 0.01)), 10 * math.log10(4 / (0.5 * 0.01 + 0.5 * 0.09))]
    assert values["psnr"] == pytest.approx(sum(whole) / 2)


def test_area_bins():
    coverage = [0.0, 0.05, 0.1, 0.25, 0.6, 0.7]
    mask = torch.zeros(len(coverage), 1, 10, 10)
    for i, c in enumerate(coverage):
        mask.view(len(coverage), -1)[i, : round(100 * c)] = 1
    bins = dict(paired.area_bins(mask))
    assert list(bins) == ["0-10", "10-20", "20-30", "30-40", "40-50", "50-60"]
    assert bins["0-10"].tolist() == [False, True, False, False, False, False]  # no hole: in no bin
    assert bins["10-20"].tolist() == [False, False, True, False, False, False]  # 10%: the upper bin
    assert bins["20-30"][3] and bins["50-60"][4] and not any(b[5] for b in bins.values())  # 60% in, 70% out
    outputs = torch.zeros(len(coverage), 1, 10, 10)
    values = paired.scores_by_area(outputs + 0.2 * mask, outputs, ("psnr",), mask, edges=(0.0, 0.2, 0.4))
    assert values["images_area0-20"] == 2 and values["images_area20-40"] == 1
    assert values["psnr_hole_area0-20"] == pytest.approx(10 * math.log10(4 / 0.04))
    assert "psnr_area40-60" not in values


def test_evaluate_reports_hole_metrics_and_bins_of_an_inpainting_checkpoint(ckpts, tmp_path):
    from genlab import evaluate

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "evaluate.yaml")
    cfg.ckpt, cfg.n, cfg.out, cfg.device = str(ckpts["inpaint"]), 20, str(tmp_path), "cpu"
    cfg.pop("defaults")
    cfg.extractor = None
    values = evaluate.run(cfg)
    # By hand, in numpy: the model's restorations of the first 20 held-out items against their clean images.
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpts["inpaint"])["data"]))
    datamodule.setup("validate")
    items = [datamodule.val_set[i] for i in range(20)]
    model = load_model(ckpts["inpaint"])
    psnrs, areas = [], []
    for item in items:
        restored = model.restore(item["degraded"][None], item["mask"][None])[0].double().numpy()
        clean, hole = item["clean"].double().numpy(), item["mask"][0].numpy() > 0
        mse = ((restored - clean)[:, hole] ** 2).mean()
        psnrs.append(10 * np.log10(4 / mse))
        areas.append(hole.mean())
    assert values["psnr_hole20"] == pytest.approx(np.mean(psnrs), rel=1e-6)  # batched vs one by one: float32
    counted = sum(v for k, v in values.items() if k.startswith("images_area"))
    assert counted == sum(0 < a <= 0.6 for a in areas)
    for label in ("0-10", "10-20", "20-30"):
        chosen = [p for p, a in zip(psnrs, areas) if int(label.split("-")[0]) <= 100 * a < int(label.split("-")[1])]
        if chosen:
            assert values[f"psnr_hole_area{label}"] == pytest.approx(np.mean(chosen), rel=1e-6)
    assert {"psnr20", "ssim20", "l1_20", "mse20", "l1_hole20", "ssim_area10-20"} <= set(values)
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"]["psnr_hole20"] == values["psnr_hole20"]


# --- the bench ------------------------------------------------------------------------------------------------


def test_bench_scores_checkpoints_beside_the_classical_methods(ckpts, tmp_path, capsys):
    from genlab.bench import restoration as bench

    argv = [
        "--tasks",
        "inpaint,denoise",
        "--inpaint-ckpt",
        str(ckpts["inpaint"]),
        "--denoise-ckpt",
        str(ckpts["denoise"]),
    ]
    bench.main([*argv, "--n", "4", "--panel-rows", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "restoration.json").read_text())
    inpaint, denoise = report["inpaint"]["methods"], report["denoise"]["methods"]
    assert set(inpaint) == {"opencv_telea", "opencv_ns", "biharmonic", "genlab"}
    assert all(m["s_per_mp"] > 0 and "psnr_hole" in m for m in inpaint.values())
    assert {"tv_chambolle", "bilateral", "wavelet", "nl_means", "genlab"} == set(denoise)
    out = capsys.readouterr().out
    assert "genlab" in out and ("beats every classical method" in out or "does NOT beat" in out)
    panel = Image.open(tmp_path / "panel_denoise.png")  # 2 rows of degraded | best classical | genlab | clean
    assert panel.size == (2 + 4 * (32 + 2), 2 + 2 * (32 + 2))


# --- data=folder for the restoration recipes -----------------------------------------------------------------


def folder(tmp_path: Path, *overrides: str):
    return instantiate(compose_train(["data=folder", f"data.path={tmp_path / 'train'}", *overrides]).data)


def test_folder_random_crops_at_full_resolution_repeat_and_whole_test_images(tmp_path):
    arrays = [write_image(tmp_path / "train" / f"{i}.png", (30, 40, 3), i) for i in range(4)]
    write_image(tmp_path / "test" / "a.png", (25, 33, 3), 9)
    dm = folder(tmp_path, "data.image_size=16", "data.random_crop=true", "data.repeat=3", "data.batch_size=2")
    dm.setup("fit")
    assert len(dm.train_set) == 3 * 4  # val_fraction of 4 images rounds to 0
    crops = [dm.train_set[0][0] for _ in range(5)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # a fresh position on every access
    windows = [a[t : t + 16, s : s + 16] for a in arrays for t in range(15) for s in range(25)]
    for crop in crops:  # each a window of a photograph at full resolution, not of a resized photograph
        pixels = ((crop.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        assert any(np.array_equal(pixels, w) for w in windows)
    dm = folder(
        tmp_path,
        "data.image_size=16",
        "data.random_crop=true",
        f"data.val_path={tmp_path / 'test'}",
        "degradation=downsample",
        "data.batch_size=2",
    )
    dm.setup("fit")
    assert len(dm.train_set) == 4 and dm.val_set[0]["clean"].shape == (3, 24, 32)  # whole, cropped to even sides


def test_folder_errors_say_where_and_from_where(tmp_path):
    write_image(tmp_path / "train" / "a.png", (20, 20, 3), 0)
    with pytest.raises(
        Exception, match="data.val_path=.*nothing is not a directory.*get the images from https://x.org"
    ):
        folder(tmp_path, f"data.val_path={tmp_path / 'nothing'}", "data.source=https://x.org")
    write_image(tmp_path / "test" / "a.png", (20, 20, 3), 0)
    write_image(tmp_path / "test" / "b.png", (20, 22, 3), 0)
    dm = folder(tmp_path, "data.batch_size=1", f"data.val_path={tmp_path / 'test'}", "data.val_batch_size=2")
    with pytest.raises(DataError, match="set data.val_batch_size=1"):
        dm.setup("fit")
