"""StyleGAN2 as a family: lazy phases, truncation, state that survives resume, generate's figures, DDP."""

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from genlab import generate, surfaces, train
from genlab.checkpoint import load_model
from genlab.config import compose_train
from tests.conftest import train_ddp_on_cpu

# 8 px grey digits, 16 channels: a StyleGAN2 small enough for a test.
TINY = [
    "model=stylegan2",
    "data.image_size=8",
    "data.batch_size=8",
    "model.generator.z_dim=16",
    "model.generator.w_dim=16",
    "model.generator.mapping_layers=2",
    "model.generator.channel_base=64",
    "model.generator.channel_max=16",
    "model.discriminator.channel_base=64",
    "model.discriminator.channel_max=16",
    "model.n_preview=16",
    "callbacks.sample_quality=null",
]


def tiny_model(*overrides: str):
    cfg = compose_train([*TINY, *overrides])
    return instantiate(cfg.model, _recursive_=False, _convert_="all")


def test_lazy_phases_fire_at_their_global_batches(make_cfg):
    """4 batches: G and D main each batch (8 steps), path length at batches 2 and 4, R1 at batch 4."""
    cfg = make_cfg(*TINY, "trainer.limit_train_batches=4", "model.pl_interval=2", "model.r1_interval=4")
    train.run(cfg)
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4 * 2 + 2 + 1
    assert float(saved["state_dict"]["pl_mean"]) > 0  # the path-length mean moved off 0


def test_lazy_regularisation_corrects_adam():
    model = tiny_model("model.pl_interval=4", "model.r1_interval=16")
    opt_g, opt_d = model.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))


def test_truncation_psi_zero_gives_one_image_and_one_changes_nothing():
    model = tiny_model().eval()
    with torch.no_grad():
        model.generator.mapping.w_avg.normal_()
    same = model.sample(4, torch.Generator().manual_seed(0), truncation_psi=0.0)
    assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6)
    plain = model.sample(4, torch.Generator().manual_seed(1))
    assert torch.equal(plain, model.sample(4, torch.Generator().manual_seed(1), truncation_psi=1.0))
    assert not torch.allclose(plain[0], plain[1])


class AtTrainStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.clone() for k, v in pl_module.state_dict().items() if k in STATE}


STATE = ["augment.p", "augment.stats", "generator.mapping.w_avg", "pl_mean", "images_seen", "batches_seen"]


def test_resume_restores_ada_p_w_avg_path_length_mean_and_counters(make_cfg, tmp_path):
    ada = ["model/augment=ada", "model.augment.speed_kimg=0.1", "model.augment.interval=1", "model.augment.p_init=0.5"]
    ada += ["model.pl_interval=1"]
    first = make_cfg(*TINY, *ada)
    train.run(first)
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    assert float(saved["augment.p"]) != 0.5 and float(saved["pl_mean"]) > 0 and int(saved["images_seen"]) == 16
    second = make_cfg(*TINY, *ada, "trainer.max_epochs=2", f"ckpt_path={ckpt}")
    second.paths.output_dir = str(tmp_path / "resumed")
    start = AtTrainStart()
    train.run(second, callbacks=[start])
    for key in STATE:
        assert torch.equal(start.state[key], saved[key]), key


def test_generate_writes_truncated_samples_mixing_grid_and_interpolations(make_cfg, tmp_path):
    cfg = make_cfg(*TINY)
    train.run(cfg)
    ckpt = str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")

    def run(**options):
        base = {"ckpt": ckpt, "n": 8, "out": str(tmp_path / "g"), "seed": 0, "batch_size": 8, "device": "cpu"}
        return generate.run(OmegaConf.create({**base, "nrow": 4, "mode": "samples", "truncation_psi": None, **options}))

    out = run(truncation_psi=0.7)
    assert len(list(out.glob("*.png"))) == 8
    mixing = Image.open(run(mode="mixing") / "mixing.png")
    assert mixing.size == (5 * 8 + 6 * 2, 3 * 8 + 4 * 2)  # (1 + 4) columns x (1 + 2) rows of 8 px, 2 px padding
    strip = Image.open(run(mode="interpolate") / "interpolate.png")
    assert strip.size == (4 * 8 + 5 * 2, 2 * 8 + 3 * 2)
    gan = make_cfg("data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8")
    gan.paths.output_dir = str(tmp_path / "gan")
    train.run(gan)
    with pytest.raises(surfaces.MissingSurface, match="cannot truncate, mix styles"):
        run(ckpt=str(tmp_path / "gan" / "checkpoints" / "last.ckpt"), mode="mixing")


def test_ddp_two_cpu_processes(tmp_path):
    saved = train_ddp_on_cpu(tmp_path, *TINY, "model/augment=ada", batches=2)
    assert int(saved["state_dict"]["images_seen"]) == 2 * 8 * 2  # both processes counted
    assert load_model(tmp_path / "checkpoints" / "last.ckpt").sample(2).shape == (2, 1, 8, 8)
