"""VAE/GAN: three players, each update moving its own weights only; the feature likelihood; surfaces; DDP."""

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from genlab import surfaces, train
from genlab.config import compose_train
from genlab.models.vaegan import feature_nll
from genlab.networks import vaegan
from tests.conftest import train_ddp_on_cpu

TINY = ["model=vaegan", "data.batch_size=8", "data.image_size=16", "model.latent_dim=4"]
TINY += ["model.encoder.widths=[4,4,4]", "model.encoder.hidden=8", "model.generator.widths=[4,4,4]"]
TINY += ["model.discriminator.width=2", "model.discriminator.widths=[4,4,4]", "model.discriminator.hidden=8"]
PLAYERS = ("encoder", "generator", "discriminator")  # in the order of configure_optimizers


class StepRecorder(L.Callback):
    """For every optimizer step: the index of the optimizer and the top-level modules whose parameters it moved."""

    def __init__(self):
        self.steps: list[tuple[int, set[str]]] = []

    def on_train_start(self, trainer, pl_module):
        for index, opt in enumerate(trainer.optimizers):
            opt.register_step_pre_hook(lambda opt, args, kwargs: self.snapshot(pl_module))
            opt.register_step_post_hook(lambda opt, args, kwargs, index=index: self.record(pl_module, index))

    def snapshot(self, model):
        self.before = {k: p.detach().clone() for k, p in model.named_parameters()}

    def record(self, model, index):
        moved = {k.split(".")[0] for k, p in model.named_parameters() if not torch.equal(p, self.before[k])}
        self.steps.append((index, moved))


def test_each_update_moves_only_its_own_players_weights(make_cfg):
    recorder = StepRecorder()
    train.run(make_cfg(*TINY), callbacks=[recorder])
    # Two batches, each: Enc, Dec, Dis in this order, each moving its own network and nothing else.
    assert recorder.steps == [(i, {PLAYERS[i]}) for i in (0, 1, 2)] * 2


def test_feature_likelihood_is_half_the_squared_distance_per_image():
    recon = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 0.0]]]])  # [2, 1, 1, 2]
    real = torch.tensor([[[[0.0, 0.0]]], [[[3.0, 4.0]]]])
    assert feature_nll(recon, real).tolist() == [0.5 * (1 + 4), 0.5 * (9 + 16)]


def test_discriminator_features_are_the_layer_its_logits_are_computed_from():
    torch.manual_seed(0)
    d = vaegan.Discriminator(image_size=16, channels=1, width=2, widths=(4, 4, 4), hidden=8).eval()
    x = torch.randn(3, 1, 16, 16)
    features = d.features(x)
    assert features.shape == (3, 4, 2, 2)
    assert torch.equal(d.logits(features), d(x))


def test_vaegan_samples_and_reconstructs_in_range_deterministically():
    cfg = compose_train(TINY[:1] + TINY[2:])
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert surfaces.surfaces(model) == [surfaces.Sampler, surfaces.Autoencoder]
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    recon = model.reconstruct(x)
    assert recon.shape == x.shape and recon.abs().max() <= 1
    # Batch norm's running statistics, not the batch's: an image's reconstruction does not depend on its batch.
    assert torch.allclose(recon[:2], model.reconstruct(x[:2]), atol=1e-6)
    assert model.training  # the caller's mode afterwards
    samples = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (3, 1, 16, 16)
    assert torch.equal(samples, model.sample(3, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("overrides", [["experiment=vaegan_digits"], ["experiment=vaegan_celeba", "data.path=/data"]])
def test_experiments_build(overrides):
    cfg = compose_train(overrides)
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    size = cfg.data.image_size
    assert model.sample(2).shape == (2, cfg.data.channels, size, size)
    assert model.discriminator.features(torch.zeros(2, cfg.data.channels, size, size)).shape[-1] == size // 8
    for opt in model.configure_optimizers():
        assert opt.param_groups[0]["lr"] > 0


def test_ddp_two_cpu_processes(tmp_path):
    saved = train_ddp_on_cpu(tmp_path, *TINY, batches=2)
    assert saved["global_step"] == 2 * 3  # Enc, Dec and Dis steps on each of 2 batches
    assert saved["callbacks"]["ImagesSeen"]["images"] == 2 * 8 * 2  # both processes counted
