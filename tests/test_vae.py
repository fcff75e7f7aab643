import math
from pathlib import Path

import pytest
import torch

from genlab import losses, train
from genlab.models.vae import VAE, active_units, kl_weight

LIKELIHOOD = {"_target_": "genlab.losses.bernoulli_nll", "_partial_": True}


def make_vae(latent_dim: int = 4, image_size: int = 16, channels: int = 1, **kwargs) -> VAE:
    net = {"image_size": image_size, "channels": channels, "width": 4}
    return VAE(
        encoder={"_target_": "genlab.networks.convae.Encoder", **net},
        decoder={"_target_": "genlab.networks.convae.Decoder", **net},
        likelihood=kwargs.pop("likelihood", LIKELIHOOD),
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        latent_dim=latent_dim,
        n_preview=16,
        **kwargs,
    ).eval()


def test_kl_matches_a_monte_carlo_estimate():
    # KL(q || p) = E_q[log q(z) - log p(z)]; 200k draws put the estimate within ~1% here.
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0, 0.0]]), torch.tensor([[0.3, -0.7, 1.2]])
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3)
    zeros = torch.zeros_like(z)
    mc = (
        losses.gaussian_log_density(z, mu.expand_as(z), logvar.expand_as(z))
        - losses.gaussian_log_density(z, zeros, zeros)
    ).mean()
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(mc.item(), rel=0.02)
    assert torch.equal(losses.kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_likelihoods_match_their_densities():
    logits, x = torch.randn(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    p = torch.sigmoid(logits)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(losses.bernoulli_nll(logits, x), bce, atol=1e-5)
    normal = torch.distributions.Normal(p, 0.2)
    assert torch.allclose(losses.gaussian_nll(logits, x, sigma=0.2), -normal.log_prob(x).flatten(1).sum(1), atol=1e-4)


def test_kl_warmup_is_linear_then_flat():
    assert [kl_weight(s, 2.0, 100) for s in (0, 25, 100, 1000)] == [0.0, 0.5, 2.0, 2.0]
    assert kl_weight(0, 0.5, 0) == 0.5  # warm-up off


def test_active_units_counts_dims_whose_posterior_mean_varies():
    mu = torch.stack([torch.randn(1000), torch.full((1000,), 3.0), 0.05 * torch.randn(1000)], dim=1).double()
    sums = torch.stack([torch.ones_like(mu), mu, mu * mu]).sum(dim=1)
    # variances ~1, 0 and ~0.0025: only the first exceeds Burda et al.'s 0.01
    assert active_units(*sums, threshold=0.01) == 1


def test_importance_weighted_nll_is_exact_when_q_is_the_prior_and_x_ignores_z():
    # q(z|x) = p(z) = N(0, I) (zero encoder head) makes every importance weight p(x|z) = p(x):
    # the k-sample estimate is exact for any k, and equals the negative ELBO (KL = 0).
    vae = make_vae()
    torch.nn.init.zeros_(vae.encoder.head.weight)
    torch.nn.init.zeros_(vae.encoder.head.bias)
    last = vae.decoder.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 0.7)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    exact = losses.bernoulli_nll(torch.full_like(x, 0.7), (x + 1) / 2)
    for k in (1, 7):
        assert torch.allclose(vae.importance_weighted_nll(x, k=k, chunk=3), exact, rtol=1e-5)
    assert torch.allclose(negative_elbo(vae, x), exact, rtol=1e-5)


def negative_elbo(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    terms = vae.terms(x)
    return terms["recon"] + terms["kl"]


def test_importance_weighting_tightens_the_bound():
    torch.manual_seed(0)
    vae = make_vae()
    with torch.no_grad():  # a wide posterior and a decoder sensitive to z: a loose ELBO
        vae.encoder.head.bias[4:] = 2.0
        vae.decoder.project[0].weight *= 10
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(1)
    nelbo = torch.stack([negative_elbo(vae, x) for _ in range(100)]).mean(0)
    iw_100 = vae.importance_weighted_nll(x, k=100, generator=g)
    # log-mean-exp >= mean-log (Jensen): here the gap is ~35 nats, far above the MC noise
    assert (iw_100 < nelbo - 10).all()


def test_elbo_terms_are_summed_in_fp32_under_bf16_autocast():
    vae = make_vae()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.manual_seed(1)
    exact = vae.terms(x)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what trainer.precision=bf16-mixed runs under
        mixed = vae.terms(x)
    assert mixed["recon"].dtype == mixed["kl"].dtype == torch.float32
    # Only the networks' bf16 arithmetic differs; the sums over pixels and latents are fp32.
    torch.testing.assert_close(mixed["kl"], exact["kl"], rtol=0.02, atol=0.0)
    torch.testing.assert_close(mixed["recon"], exact["recon"], rtol=0.02, atol=0.0)


def test_sample_is_reproducible_and_in_range():
    vae = make_vae()
    a = vae.sample(5, generator=torch.Generator().manual_seed(3))
    b = vae.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 1, 16, 16) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, vae.sample(5, generator=torch.Generator().manual_seed(4)))


def test_previews_show_inputs_reconstructions_samples_and_interpolations():
    vae = make_vae(channels=3)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    grids = vae.previews((x, torch.zeros(8)))
    assert grids["reconstructions"][0].shape == (16, 3, 16, 16) and torch.equal(grids["reconstructions"][0][:8], x)
    assert grids["samples"][0].shape == (16, 3, 16, 16)
    strip = grids["interpolation"][0]
    assert strip.shape == (4 * 10, 3, 16, 16)
    # Each row starts at the reconstruction of an even item and ends at the next odd one.
    recon = vae.reconstruct(x)
    assert torch.allclose(strip[0], recon[0], atol=1e-6) and torch.allclose(strip[9], recon[1], atol=1e-6)


def test_gaussian_likelihood_and_warmup_train(make_cfg):
    cfg = make_cfg("model=vae", "model/likelihood=gaussian", "model.kl_warmup_steps=4", "data.batch_size=8")
    train.run(cfg)
    metrics = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    header = metrics.splitlines()[0].split(",")
    for key in ("train/nelbo", "train/kl", "train/beta", "val/nelbo", "val/bpd", "val/kl", "val/active_units"):
        assert key in header
    rows = [dict(zip(header, line.split(","))) for line in metrics.splitlines()[1:]]
    betas = [float(r["train/beta"]) for r in rows if r["train/beta"]]
    assert betas == [0.0, 0.25]  # steps 0 and 1 of a 4-step warm-up
    nelbo = [float(r["val/nelbo"]) for r in rows if r["val/nelbo"]][-1]
    bpd = [float(r["val/bpd"]) for r in rows if r["val/bpd"]][-1]
    assert bpd == pytest.approx(nelbo / (32 * 32 * math.log(2)), rel=1e-4)


@pytest.mark.parametrize("experiment", ["vae_digits", "vae_mnist"])
def test_experiments_build(experiment):
    from hydra.utils import instantiate

    from genlab.config import compose_train

    cfg = compose_train([f"experiment={experiment}"])
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert isinstance(model, VAE) and model.sample(2).shape == (2, 1, 32, 32)
    instantiate(cfg.data)  # builds without touching the network (downloads happen in prepare_data)


def test_active_units_are_the_same_number_on_one_or_two_processes(tmp_path):
    """Under DDP each rank validates half the images; the count comes from the sums of both halves,
    so it equals a one-process validation of the same weights on all of them."""
    import csv

    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from genlab.checkpoint import load_model, load_run_config
    from tests.conftest import train_ddp_on_cpu

    train_ddp_on_cpu(tmp_path, "model=vae", "data.batch_size=16", "callbacks.sample_quality=null", batches=1)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    two = float(next(row["val/active_units"] for row in rows if row.get("val/active_units")))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpt)["data"]))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    one = trainer.validate(load_model(ckpt), datamodule=datamodule, verbose=False)[0]["val/active_units"]
    assert one == two and 0 < one <= 32  # 32 latent dims in model=vae
