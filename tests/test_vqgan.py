"""VQGAN: the adaptive weight, the adversarial switch, perceptual terms, its codes under a prior, DDP."""

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from genlab import losses, surfaces, train
from genlab.checkpoint import load_model
from genlab.config import compose_train
from genlab.errors import MissingFile
from genlab.models.vqgan import VQGAN
from genlab.networks import patchgan, perceptual, vqgan
from tests.conftest import FAST, train_ddp_on_cpu

TINY = ["model=vqgan", "data.batch_size=8", "model.encoder.hidden=16", "model.encoder.residual_hidden=8"]
TINY += ["model.discriminator.ndf=8", "model.quantizer.num_codes=32", "model.quantizer.code_dim=8"]


def toy_decoder() -> nn.Sequential:
    """x -> h = (1, 2)·x (fixed first layer) -> y = W h with W = (0.5, 0.5): y = 1.5 at x = 1."""
    decoder = nn.Sequential(nn.Linear(1, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        decoder[0].weight.copy_(torch.tensor([[1.0], [2.0]]))
        decoder[1].weight.copy_(torch.tensor([[0.5, 0.5]]))
    return decoder


def test_adaptive_weight_matches_a_hand_computation():
    decoder = toy_decoder()
    y = decoder(torch.ones(1, 1)).squeeze()
    rec_loss = (y - 3.0) ** 2  # ∇_W = 2 (y − 3) h = −3 (1, 2): norm 3√5
    gan_loss = -2.0 * y  # ∇_W = −2 h: norm 2√5
    weight = losses.adaptive_weight(rec_loss, gan_loss, decoder[1].weight)
    assert float(weight) == pytest.approx(3 * math.sqrt(5) / (2 * math.sqrt(5) + 1e-4), rel=1e-6)
    assert not weight.requires_grad
    (rec_loss + weight * gan_loss).backward()  # both graphs are still there for the update
    assert decoder[1].weight.grad is not None


def test_adaptive_weight_is_clamped_when_the_adversarial_gradient_vanishes():
    decoder = toy_decoder()
    y = decoder(torch.ones(1, 1)).squeeze()
    flat = 0.0 * y  # a GAN loss with no gradient at the last layer: λ = 3√5 / 1e-4 before the clamp
    assert float(losses.adaptive_weight((y - 3.0) ** 2, flat, decoder[1].weight, max_weight=10.0)) == 10.0
    assert float(losses.adaptive_weight((y - 3.0) ** 2, flat, decoder[1].weight)) == pytest.approx(1e4)


class DiscriminatorSteps(L.Callback):
    """Per training batch: whether D's weights changed."""

    def __init__(self):
        self.changed: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before = [p.detach().clone() for p in pl_module.discriminator.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        after = list(pl_module.discriminator.parameters())
        self.changed.append(any(not torch.equal(a, b) for a, b in zip(after, self.before)))


def test_disc_start_switches_the_adversarial_term_on_at_that_batch_of_the_run(make_cfg):
    # 2 epochs of 2 batches, disc_start=3: batches 1-3 reconstruct only, the 4th (batch_idx 1 of the
    # second epoch) is adversarial. A schedule on batch_idx would never get there.
    steps = DiscriminatorSteps()
    cfg = make_cfg(*TINY, "model.disc_start=3", "trainer.max_epochs=2")
    train.run(cfg, callbacks=[steps])
    assert steps.changed == [False, False, False, True]
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    adversarial = [bool(row["train/g_adv"]) for row in rows if row.get("train/l1")]
    assert adversarial == [False, False, False, True]
    assert all(row["train/adaptive_weight"] for row in rows if row.get("train/g_adv"))


def test_feature_matching_is_zero_for_a_perfect_reconstruction_and_reaches_the_reconstruction():
    torch.manual_seed(0)
    d = patchgan.Discriminator(channels=1, ndf=4, n_layers=2, norm="batch").requires_grad_(False)
    real = torch.rand(2, 1, 16, 16) * 2 - 1
    distance = perceptual.FeatureMatching()
    assert float(distance(real.clone(), real, d)) == 0.0
    recon = (real + 0.3 * torch.randn_like(real)).requires_grad_(True)
    value = distance(recon, real, d)
    value.backward()
    assert value > 0 and recon.grad.abs().sum() > 0


def test_lpips_without_the_backbone_says_where_to_put_it(tmp_path):
    missing = tmp_path / "vgg16-397923af.pth"
    distance = perceptual.LPIPS(net="vgg", backbone_weights=str(missing))
    with pytest.raises(MissingFile, match="does not download") as err:
        distance.prepare()
    assert str(missing) in str(err.value) and "FeatureMatching" in str(err.value)
    assert not missing.exists()


def test_lpips_reads_the_given_backbone_and_stays_out_of_the_checkpoint(tmp_path):
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "squeeze.pth"
    torch.save(backbone.state_dict(), path)
    distance = perceptual.LPIPS(net="squeeze", backbone_weights=str(path))
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    recon = (real + 0.2 * torch.randn_like(real)).clamp(-1, 1).requires_grad_(True)
    assert float(distance(real, real)) == pytest.approx(0.0, abs=1e-6)
    value = distance(recon, real)
    value.backward()
    assert value > 0 and recon.grad.abs().sum() > 0
    first = dict(distance._lpips.net.named_modules())["slices.0.0"]
    assert torch.equal(first.weight, backbone.features[0].weight)  # the file's weights, not a fresh init
    assert distance.state_dict() == {} and not list(distance.parameters())


class CountBatches(L.Callback):
    def __init__(self):
        self.started = 0

    def on_train_batch_start(self, *args):
        self.started += 1


def test_a_missing_lpips_backbone_stops_training_before_the_first_step(make_cfg, tmp_path):
    missing = tmp_path / "nowhere.pth"
    cfg = make_cfg(*TINY, "model/perceptual=lpips", f"model.perceptual.backbone_weights={missing}")
    count = CountBatches()
    with pytest.raises(MissingFile, match="nowhere.pth"):
        train.run(cfg, callbacks=[count])
    assert count.started == 0
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


def test_taming_networks_downsample_by_their_factor_and_attend_where_asked():
    kwargs = {"channels": 3, "code_dim": 8, "image_size": 32, "ch": 8, "ch_mult": (1, 2, 2), "groups": 4}
    encoder = vqgan.Encoder(**kwargs, num_res_blocks=1, attn_resolutions=(8,), z_channels=16)
    decoder = vqgan.Decoder(**kwargs, num_res_blocks=1, attn_resolutions=(8,), z_channels=16)
    z = encoder(torch.randn(2, 3, 32, 32))
    assert encoder.factor == 4 and z.shape == (2, 8, 8, 8)
    assert decoder(z).shape == (2, 3, 32, 32)
    # Attention after each block at 8 px only, plus one in the middle: 1 + 1 in the encoder, 2 + 1 in the decoder.
    assert sum(isinstance(m, vqgan.Attention) for m in encoder.modules()) == 2
    assert sum(isinstance(m, vqgan.Attention) for m in decoder.modules()) == 3
    assert decoder.last_layer is decoder.net[-1].weight


def test_vqgan_is_a_coder_and_its_recipes_build():
    model = instantiate(compose_train(["experiment=vqgan_digits"]).model, _recursive_=False, _convert_="all")
    assert surfaces.surfaces(model) == [surfaces.Autoencoder, surfaces.Coder]
    assert model.code_shape == (8, 8) and model.image_size == 32
    cfg = compose_train(["experiment=vqgan_ffhq", "data.path=/nonexistent"])
    assert cfg.model.encoder.ch_mult == [1, 1, 2, 2, 4] and cfg.model.quantizer.num_codes == 1024
    ffhq = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert ffhq.code_shape == (16, 16) and isinstance(ffhq.encoder, vqgan.Encoder)


@pytest.fixture(scope="module")
def vqgan_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vqgan")
    train.run(compose_train([*FAST, *TINY], output_dir=out))
    return out / "checkpoints" / "last.ckpt"


def test_the_prior_trains_on_vqgan_codes_unchanged(vqgan_ckpt, tmp_path):
    overrides = [*FAST, "model=vqvae_prior", f"model.vqvae_ckpt={vqgan_ckpt}", "data.batch_size=8"]
    overrides += ["model.transformer.dim=16", "model.transformer.depth=1", "model.n_preview=4"]
    train.run(compose_train(overrides, output_dir=tmp_path / "prior"))
    prior = load_model(tmp_path / "prior" / "checkpoints" / "last.ckpt")
    first = load_model(vqgan_ckpt)
    assert isinstance(prior.vqvae, VQGAN)
    for key, value in first.state_dict().items():  # the frozen first stage is the one it was given
        assert torch.equal(prior.vqvae.state_dict()[key], value), key
    codes = prior.sample_codes(2, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (2, 8, 8) and codes.max() < 32
    images = prior.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 32, 32) and images.abs().max() <= 1


def test_a_prior_over_a_model_without_codes_says_what_that_model_can_do():
    from genlab.models.vqvae_prior import VQVAEPrior

    prior_cfg = compose_train(["model=vqvae_prior", "model.vqvae_ckpt=gan.ckpt"]).model
    gan_cfg = compose_train(["model=dcgan"]).model
    with pytest.raises(surfaces.MissingSurface, match="GAN has no discrete codes.*GAN can: sample new images"):
        VQVAEPrior(
            vqvae_ckpt="gan.ckpt",
            transformer=prior_cfg.transformer,
            optimizer=prior_cfg.optimizer,
            vqvae_class="genlab.models.gan.GAN",
            vqvae_hparams={k: v for k, v in gan_cfg.items() if k != "_target_"},
        )


def test_ddp_two_cpu_processes(tmp_path):
    saved = train_ddp_on_cpu(tmp_path, *TINY, "model.disc_start=1", batches=2)
    assert saved["callbacks"]["ImagesSeen"]["images"] == 2 * 8 * 2  # both processes counted
    assert int(saved["state_dict"]["batches_seen"]) == 2
    assert saved["global_step"] == 1 + 2  # AE steps on both batches, D on the second (disc_start=1)
