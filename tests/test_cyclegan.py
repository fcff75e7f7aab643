"""CycleGAN: networks, losses, pool, schedule, data, translate CLI, DDP."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from genlab import train, translate
from genlab.checkpoint import load_model
from genlab.data.base import DataError
from genlab.models.adversarial import linear_decay
from genlab.models.cyclegan import CycleGAN, ImagePool
from genlab.networks import patchgan, resnet
from tests.conftest import ROOT, run_script, train_ddp_on_cpu

# A CycleGAN small enough for a few CPU steps in seconds.
TINY = [
    "model=cyclegan",
    "data=shapes_unpaired",
    "data.image_size=16",
    "data.n_train=16",
    "data.n_val=8",
    "data.batch_size=2",
    "model.generator.ngf=4",
    "model.generator.n_blocks=1",
    "model.discriminator.ndf=4",
    "model.discriminator.n_layers=2",  # a 34x34 PatchGAN: 16 px is too small for the 70x70 one
    "callbacks.sample_quality.metrics=[kid]",  # target-domain KID of translate(val A) vs val B at the end
    "+callbacks.sample_quality.kid_subset_size=4",  # (FID needs more than 8 images)
]


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- networks ----------------------------------------------------------------------------------


def test_parameter_counts_match_the_reference_implementation():
    # The authors' code prints "Total number of parameters : 11.378 M" for resnet_9blocks and
    # "2.765 M" for the basic (n_layers=3) PatchGAN, ngf = ndf = 64, instance norm.
    assert round(n_params(resnet.Generator(3, ngf=64, n_blocks=9)) / 1e6, 3) == 11.378
    assert round(n_params(patchgan.Discriminator(3, ndf=64, n_layers=3)) / 1e6, 3) == 2.765
    # Each residual block holds two 3x3 convs of 256 channels with biases: 2 * (256*256*9 + 256).
    six, nine = resnet.Generator(3, n_blocks=6), resnet.Generator(3, n_blocks=9)
    assert n_params(nine) - n_params(six) == 3 * 2 * (256 * 256 * 9 + 256)


@pytest.mark.parametrize("image_size, blocks", [(64, 6), (128, 6), (256, 9), (512, 9)])
def test_residual_blocks_follow_the_paper_unless_set(image_size, blocks):
    from genlab.config import compose_train

    cfg = compose_train(
        ["model=cyclegan", "data=unpaired_folder", f"data.path={ROOT}", f"data.image_size={image_size}"]
    )
    assert cfg.model.generator.n_blocks == blocks
    cfg = compose_train(["model=cyclegan", "data=shapes_unpaired", "model.generator.n_blocks=9"])
    assert cfg.model.generator.n_blocks == 9


@pytest.mark.parametrize("size", [(16, 16), (24, 40)])
def test_generator_keeps_the_image_shape_and_range(size):
    g = resnet.Generator(3, ngf=8, n_blocks=2)
    y = g(torch.randn(2, 3, *size))
    assert y.shape == (2, 3, *size) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.randn(1, 3, 18, 16))


def test_resize_convolution_keeps_a_flat_colour_flat_where_transposed_convs_draw_a_checkerboard():
    """A flat input stays flat through every reflection-padded layer; a stride-2 transposed 3x3 conv
    gives even and odd output pixels different numbers of kernel taps (Odena et al. 2016). Only the
    centre counts: the zero-padded downsampling convs make the border differ in both."""
    torch.manual_seed(0)
    flat = torch.full((1, 3, 64, 64), 0.3)
    centre = (..., slice(24, 40), slice(24, 40))
    for upsample, is_flat in (("nearest", True), ("transpose", False)):
        out = resnet.Generator(3, ngf=8, n_blocks=1, upsample=upsample)(flat)[centre]
        assert (out.std(dim=(2, 3)).max() < 1e-6) == is_flat, upsample
    with pytest.raises(ValueError, match="upsample='bilinear'"):
        resnet.Generator(3, upsample="bilinear")


@pytest.mark.parametrize("downsampling", [0, 1, 3])
def test_downsampling_sets_the_bottleneck_and_the_size_multiple(downsampling):
    g = resnet.Generator(3, ngf=4, n_blocks=1, downsampling=downsampling)
    blocks = [m for m in g.net if isinstance(m, resnet.ResidualBlock)]
    seen = {}
    blocks[0].register_forward_hook(lambda module, args, out: seen.update(shape=out.shape))
    assert g(torch.randn(1, 3, 16, 24)).shape == (1, 3, 16, 24)
    assert seen["shape"] == (1, 4 * 2**downsampling, 16 // 2**downsampling, 24 // 2**downsampling)
    assert g.size_multiple == 2**downsampling
    if downsampling:
        with pytest.raises(ValueError, match=f"multiples of {2**downsampling}"):
            g(torch.randn(1, 3, 16 + 2 ** (downsampling - 1), 16))
    with pytest.raises(ValueError, match="downsampling=-1"):
        resnet.Generator(3, downsampling=-1)


def test_patchgan_sees_70x70_patches():
    assert patchgan.receptive_field(3) == 70
    # Without instance norm (which mixes the whole image), one logit depends on a 70x70 window.
    d = patchgan.Discriminator(3, ndf=4, n_layers=3, norm="none")
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = d(x)
    assert logits.shape == (1, 1, 128 // 8 - 2, 128 // 8 - 2)
    logits[0, 0, 7, 7].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


# --- objective -----------------------------------------------------------------------------------


def small_model(**overrides) -> CycleGAN:
    cfg = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).parents[1] / "conf" / "model" / "cyclegan.yaml"), resolve=False
    )
    cfg.pop("defaults")
    cfg.pop("_target_")
    cfg["generator"].update(channels=3, ngf=4, n_blocks=1)
    cfg["discriminator"].update(channels=3, ndf=4, n_layers=2)
    cfg["loss"] = {
        "d": {"_target_": "genlab.losses.d_lsgan_loss", "_partial_": True},
        "g": {"_target_": "genlab.losses.g_lsgan_loss", "_partial_": True},
    }
    return CycleGAN(**{**cfg, **overrides})


def test_cycle_and_identity_losses_of_identity_generators_are_zero():
    model = small_model()
    model.g_a, model.g_b = nn.Identity(), nn.Identity()
    real_a, real_b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    terms, fake_a, fake_b = model.generator_losses(real_a, real_b)
    for k in ("loss_cycle_a", "loss_cycle_b", "loss_idt_a", "loss_idt_b"):
        assert terms[k] == 0
    assert torch.equal(fake_b, real_a) and torch.equal(fake_a, real_b)


def test_cycle_and_identity_weights():
    # G_A = G_B = negation: rec = x, so the cycle is exact; the identity loss is L1(-b, b) = 2 E|b|.
    model = small_model(lambda_cycle=10.0, lambda_identity=0.5)
    model.g_a = model.g_b = _Negate()
    real_a, real_b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    terms, _, _ = model.generator_losses(real_a, real_b)
    assert terms["loss_cycle_a"] == 0 and terms["loss_cycle_b"] == 0
    assert terms["loss_idt_a"] == pytest.approx(float(2 * real_b.abs().mean() * 10 * 0.5), rel=1e-5)
    assert terms["loss_idt_b"] == pytest.approx(float(2 * real_a.abs().mean() * 10 * 0.5), rel=1e-5)
    off, _, _ = small_model(lambda_identity=0.0).generator_losses(real_a, real_b)
    assert "loss_idt_a" not in off and "loss_idt_b" not in off


class _Negate(nn.Module):
    def forward(self, x):
        return -x


def test_image_pool_returns_stored_fakes_half_the_time_once_full():
    torch.manual_seed(0)
    pool = ImagePool(50)
    first = torch.arange(50.0).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first[:20]), first[:20])  # filling: every fake comes back as is
    assert torch.equal(pool.query(first[20:]), first[20:])
    stored, n = 0, 4000
    for i in range(n):
        new = torch.full((1, 1, 1, 1), 1000.0 + i)
        before = {float(x) for x in pool.images}
        out = float(pool.query(new))
        if out != 1000.0 + i:
            stored += 1
            assert out in before and (1000.0 + i) in {float(x) for x in pool.images}  # swapped in
        assert len(pool.images) == 50
    assert abs(stored / n - 0.5) < 4 * (0.25 / n) ** 0.5  # binomial(n, 1/2) within 4 sigma
    fake = torch.ones(2, 3, requires_grad=True) * 2
    assert not ImagePool(0).query(fake).requires_grad and not ImagePool(5).query(fake).requires_grad


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_lr_is_constant_then_decays_linearly_to_zero():
    n, n_decay = 3, 4
    factors = [linear_decay(e, n, n_decay) for e in range(n + n_decay + 1)]
    assert factors == pytest.approx([1, 1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0])
    model = small_model(n_epochs=n, n_epochs_decay=n_decay)
    (opt_g, opt_d), schedulers = model.configure_optimizers()
    lrs = []
    for _ in range(n + n_decay):  # one step at each epoch end
        lrs.append(opt_g.param_groups[0]["lr"])
        for s in schedulers:
            s.step()
    assert lrs[:n] == [2e-4] * n and lrs[n - 1] > lrs[n] > lrs[-1] > 0
    assert opt_g.param_groups[0]["lr"] == 0 and opt_d.param_groups[0]["lr"] == 0


# --- training --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CycleGAN trained 2 epochs (1 + 1 decay) on shapes_unpaired; its run directory."""
    from genlab.config import compose_train
    from tests.conftest import FAST

    out = tmp_path_factory.mktemp("cyclegan") / "run"
    cfg = compose_train(
        [*FAST, *TINY, "trainer.max_epochs=2", "model.n_epochs=1", "model.n_epochs_decay=1"], output_dir=out
    )
    train.run(cfg)
    return out


def test_training_steps_log_every_term_and_end_at_lr_zero(trained):
    import csv

    rows = list(csv.DictReader((trained / "csv" / "metrics.csv").open()))
    logged = {k for row in rows for k, v in row.items() if v}
    for k in ("g_adv_a", "g_adv_b", "cycle_a", "cycle_b", "idt_a", "idt_b", "d_a", "d_b"):
        assert f"train/loss_{k}" in logged
    assert {"val/psnr_a2b", "val/ssim_a2b", "train/kimg", "val/kid8_a2b[classifier]"} <= logged
    saved = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2 * 2 * 2  # 2 epochs x 2 batches x (G + D)
    assert [g["lr"] for opt in saved["optimizer_states"] for g in opt["param_groups"]] == [0.0, 0.0]
    assert saved["callbacks"]["ImagesSeen"]["images"] == 2 * 2 * 2
    model = load_model(trained / "checkpoints" / "last.ckpt")
    fresh = type(model)(**model.hparams)
    for name in ("g_a", "g_b", "d_a", "d_b"):
        trained_w = getattr(model, name).state_dict()
        assert any(not torch.equal(v, getattr(fresh, name).state_dict()[k]) for k, v in trained_w.items())
    grid = Image.open(trained / "samples" / "a2b_final.png")
    assert grid.size[0] == 3 * 16 + 4 * 2  # three columns of 16 px: real_a | fake_b | rec_a


def test_evaluate_scores_the_target_domain_and_the_ground_truth(trained, tmp_path):
    import csv

    from hydra import compose, initialize_config_dir

    from genlab import evaluate
    from genlab.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        ev = compose("evaluate", overrides=[f"ckpt={trained / 'checkpoints' / 'last.ckpt'}", "n=8",
                                            "metrics=[kid,psnr,ssim]", "kid_subset_size=4", f"out={tmp_path}"])  # fmt: skip
    values = evaluate.run(ev)
    assert set(values) == {"kid8_a2b[classifier]", "kid8_a2b_std[classifier]", "psnr8_a2b", "ssim8_a2b"}
    rows = list(csv.DictReader((trained / "csv" / "metrics.csv").open()))
    logged = [row for row in rows if row.get("val/psnr_a2b")][-1]  # the model's own validation, same weights
    assert values["psnr8_a2b"] == pytest.approx(float(logged["val/psnr_a2b"]), abs=1e-3)
    assert values["ssim8_a2b"] == pytest.approx(float(logged["val/ssim_a2b"]), abs=1e-3)


@pytest.mark.parametrize("experiment", ["cyclegan_horse2zebra", "cyclegan_shapes"])
def test_experiments_end_their_lr_decay_with_training(experiment):
    from genlab.config import compose_train

    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.model._target_ == "genlab.models.cyclegan.CycleGAN"
    assert cfg.trainer.max_epochs == cfg.model.n_epochs + cfg.model.n_epochs_decay


def test_shapes_recipe_trains(make_cfg):
    cfg = make_cfg(
        "experiment=cyclegan_shapes", "data.n_train=16", "data.n_val=8", "callbacks.sample_quality.metrics=[kid]"
    )
    train.run(cfg)
    assert (Path(cfg.paths.output_dir) / "samples" / "b2a_final.png").is_file()


def test_previews_are_real_fake_rec_rows():
    model = small_model()
    batch = {"a": torch.rand(4, 3, 16, 16) * 2 - 1, "b": torch.rand(4, 3, 16, 16) * 2 - 1}
    grids = model.previews(batch)
    images, nrow = grids["a2b"]
    assert nrow == 3 and images.shape == (12, 3, 16, 16)
    assert torch.equal(images[0::3], batch["a"]) and torch.equal(images[3], batch["a"][1])
    assert torch.allclose(images[1::3], model.translate(batch["a"], "a2b"))
    assert torch.allclose(images[2::3], model.translate(images[1::3], "b2a"))
    assert torch.equal(grids["b2a"][0][0::3], batch["b"])


def test_paired_validation_metrics_are_fp32_under_bf16_autocast(monkeypatch):
    from genlab.metrics import functional as M

    model = small_model()
    rng = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(4, 3, 16, 16, generator=rng) * 2 - 1 for k in ("a", "b", "b_true")}
    logged = {}
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kwargs: logged.update(metrics))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what trainer.precision=bf16-mixed runs under
        model.validation_step(batch, 0)
        fake_b = model.g_a(batch["a"]).float()
    assert isinstance(logged["val/ssim_a2b"], float) and isinstance(logged["val/psnr_a2b"], float)  # float64 sums
    assert float(logged["val/ssim_a2b"]) == pytest.approx(M.ssim(fake_b, batch["b_true"]), abs=1e-5)
    assert float(logged["val/psnr_a2b"]) == pytest.approx(M.psnr(fake_b, batch["b_true"]), abs=1e-4)


def test_translate_any_size_keeps_it():
    model = small_model()
    for h, w in [(16, 16), (13, 22), (2, 3)]:
        x = torch.rand(2, 3, h, w) * 2 - 1
        assert model.translate(x, "a2b").shape == x.shape and model.translate(x, "b2a").shape == x.shape
    with pytest.raises(ValueError, match="a2b"):
        model.translate(x, "ab")


def test_translate_cli_keeps_a_non_square_size(trained, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(inputs / "wide.png")
    Image.fromarray(rng.integers(0, 256, (20, 9), dtype=np.uint8)).save(inputs / "sub" / "grey.jpg")
    ckpt = trained / "checkpoints" / "last.ckpt"
    out = tmp_path / "out"
    result = run_script("translate.py", f"ckpt={ckpt}", f"input={inputs}", "direction=b2a", f"out={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out / "wide.png").size == (53, 37)
    grey = Image.open(out / "sub" / "grey.png")
    assert grey.size == (9, 20) and grey.mode == "RGB"  # the model's 3 channels
    single = OmegaConf.create(
        {
            "ckpt": str(ckpt),
            "input": str(inputs / "wide.png"),
            "direction": "a2b",
            "out": str(out) + "2",
            "device": "cpu",
        }
    )
    assert Image.open(translate.run(single) / "wide.png").size == (53, 37)


# --- data ------------------------------------------------------------------------------------------


def test_shapes_unpaired_domains_and_ground_truth(make_cfg):
    dm = instantiate(make_cfg(*TINY, "data.image_size=32").data)
    dm.setup("fit")
    val = next(iter(dm.val_dataloader()))
    a, b, b_true = val["a"], val["b"], val["b_true"]
    assert a.shape == b.shape == b_true.shape == (8, 3, 32, 32)  # the whole val set: one batch
    # Same colours, position and area (the square has the circle's area): same mean colour,
    # different pixels (the outline), and B of the val set is another scene.
    assert torch.allclose(a.mean(dim=(2, 3)), b_true.mean(dim=(2, 3)), atol=0.02)
    assert (a - b_true).abs().amax() > 0.5 and not torch.allclose(b, b_true)
    # Circles vs squares: a square fills its bounding box, a circle pi/4 of it.
    for image, fill in ((b_true, 1.0), (a, np.pi / 4)):
        bg = image[:, :, 0, 0][:, :, None, None]  # corners are background (shape never reaches them)
        shape = (image - bg).abs().sum(1) > 0.5
        for mask in shape:
            ys, xs = mask.nonzero(as_tuple=True)
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert mask.sum() / box == pytest.approx(fill, abs=0.12)
    train_set = dm.train_set
    b = train_set[0]["b"]
    pairs = [int(torch.equal(b, train_set.b[j])) for j in range(len(train_set.b))]
    assert sum(pairs) == 1  # B is one of the training squares


def test_unpaired_training_pairs_change_validation_pairs_do_not(make_cfg):
    dm = instantiate(make_cfg(*TINY).data)
    dm.setup("fit")
    torch.manual_seed(0)
    draws = {tuple(dm.train_set[3]["b"].flatten()[:8].tolist()) for _ in range(20)}
    assert len(draws) > 3
    assert torch.equal(dm.val_set[5]["b"], dm.val_set[5]["b"]) and torch.equal(dm.val_set[5]["b"], dm.val_set.b[5])


def write_cyclegan_zip(path: Path, name: str, sizes: dict[str, int]) -> Path:
    """A zip laid out like the canonical CycleGAN archives: <name>/trainA/*.jpg, ..."""
    rng = np.random.default_rng(0)
    archive = path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for folder, n in sizes.items():
            for i in range(n):
                image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
                local = path / f"{folder}_{i}.jpg"
                image.save(local)
                zf.write(local, f"{name}/{folder}/{i}_{folder}.jpg")
    return archive


def test_download_unzips_the_standard_layout_and_loads_it(make_cfg, tmp_path):
    archive = write_cyclegan_zip(tmp_path, "horse2zebra", {"trainA": 3, "trainB": 5, "testA": 2, "testB": 1})
    data_dir = tmp_path / "data"
    cfg = make_cfg(
        "model=cyclegan",
        "data=horse2zebra",
        f"paths.data_dir={data_dir}",
        f"data.url={archive.as_uri()}",
        "data.image_size=32",
        "data.load_size=40",
        "data.num_workers=0",
    )
    dm = instantiate(cfg.data)
    dm.prepare_data()
    assert sorted(p.name for p in (data_dir / "horse2zebra").iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert not list(data_dir.glob("*.zip")) and not list(data_dir.glob(".horse2zebra*"))  # no leftovers
    dm.setup("fit")
    assert len(dm.train_set) == 5 and len(dm.val_set) == 2  # max(|A|, |B|)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"a", "b"} and batch["a"].shape == (1, 3, 32, 32)  # random 32 crop of 40x40
    val = next(iter(dm.val_dataloader()))
    assert val["a"].shape == (1, 3, 32, 32) and val["a"].min() >= -1 and val["a"].max() <= 1
    dm.prepare_data()  # present: no second download (the archive may be gone)
    archive.unlink()
    instantiate(cfg.data).prepare_data()


def test_missing_dataset_says_where_to_put_it(make_cfg, tmp_path):
    data_dir = tmp_path / "data"
    offline = make_cfg("data=horse2zebra", f"paths.data_dir={data_dir}", f"data.url={(tmp_path / 'no.zip').as_uri()}")
    with pytest.raises(DataError, match=str(data_dir / "horse2zebra")) as err:
        instantiate(offline.data).prepare_data()
    assert "trainA" in str(err.value) and "could not be downloaded" in str(err.value)
    never = make_cfg("data=horse2zebra", f"paths.data_dir={data_dir}", "data.download=false")
    with pytest.raises(InstantiationException) as err:  # at config time, before any model exists
        instantiate(never.data)
    assert isinstance(err.value.__cause__, DataError) and "data.download=true" in str(err.value.__cause__)
    folder = make_cfg("data=unpaired_folder", f"data.path={tmp_path}")
    with pytest.raises(InstantiationException) as err:
        instantiate(folder.data)
    assert "missing trainA, trainB, testA, testB" in str(err.value.__cause__)


# --- distributed -------------------------------------------------------------------------------------


def test_ddp_two_cpu_processes(tmp_path):
    saved = train_ddp_on_cpu(tmp_path, *TINY, "+trainer.limit_val_batches=1", batches=2)
    assert saved["global_step"] == 2 * 2
    assert saved["callbacks"]["ImagesSeen"]["images"] == 2 * 2 * 2  # both processes counted


def test_evaluate_defaults_score_what_a_small_val_split_allows(trained, tmp_path):
    """8 held-out images cannot give an FID on 64-dim features; the rest is still computed and the
    skip is explained in metrics.json."""
    from genlab import evaluate
    from tests.test_metrics import compose_evaluate

    values = evaluate.run(compose_evaluate(f"ckpt={trained / 'checkpoints' / 'last.ckpt'}", "n=8", f"out={tmp_path}"))
    assert {"kid8_a2b[classifier]", "psnr8_a2b", "ssim8_a2b"} <= set(values)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert "fid" in report["skipped"] and "FID" in report["skipped"]["fid"]


def test_translate_keeps_outputs_of_inputs_with_the_same_stem_apart(trained, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(inputs / name)
    cfg = {"ckpt": str(trained / "checkpoints" / "last.ckpt"), "input": str(inputs), "direction": "a2b"}
    out = translate.run(OmegaConf.create({**cfg, "out": str(tmp_path / "out"), "device": "cpu"}))
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png", "b.png"]
    assert "wrote 3 translated image(s)" in capsys.readouterr().out


def test_resume_continues_the_lr_decay(trained, tmp_path):
    """Resuming the 2-epoch run to 3 epochs trains one epoch, with the schedule where it stopped."""
    from genlab.config import compose_train
    from tests.conftest import FAST
    from tests.test_train import CountBatches

    overrides = [*FAST, *TINY, "trainer.max_epochs=3", "model.n_epochs=1", "model.n_epochs_decay=2"]
    cfg = compose_train([*overrides, f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}"], output_dir=tmp_path / "run")
    count = CountBatches()
    train.run(cfg, callbacks=[count])
    assert count.batches == 2  # the third epoch only
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert [s["last_epoch"] for s in saved["lr_schedulers"]] == [3, 3]
    assert saved["global_step"] == 3 * 2 * 2
