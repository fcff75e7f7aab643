from pathlib import Path

import pytest
import torch

from genlab import train
from genlab.metrics import paired
from genlab.models.vqvae import VQVAE, perplexity
from genlab.networks import vqvae


def quantizer_with(codebook: torch.Tensor, ema: bool = False, **kwargs) -> vqvae.Quantizer:
    cls = vqvae.EMAQuantizer if ema else vqvae.Quantizer
    q = cls(num_codes=codebook.shape[0], code_dim=codebook.shape[1], restart_threshold=0.0, **kwargs)
    with torch.no_grad():
        q.codebook.copy_(codebook)
        if ema:
            q.embed_sum.copy_(codebook)
    return q


CODES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])


def as_map(vectors: torch.Tensor) -> torch.Tensor:
    """[M, D] -> [1, D, 1, M]."""
    return vectors.t()[None, :, None, :].contiguous()


def test_quantizer_picks_the_nearest_code_and_passes_gradients_straight_through():
    q = quantizer_with(CODES).eval()
    z = as_map(torch.tensor([[0.1, -0.2], [0.9, 0.4], [0.2, 1.2], [-3.0, 5.0]])).requires_grad_(True)
    z_q, indices, terms = q(z)
    assert indices.tolist() == [[[0, 1, 2, 2]]]
    assert torch.equal(z_q.detach(), as_map(CODES[[0, 1, 2, 2]]))
    weights = torch.randn_like(z)
    (z_q * weights).sum().backward()
    assert torch.equal(z.grad, weights)  # dL/dz_e = dL/dz_q
    assert q.codebook.grad is None  # the straight-through output does not touch the codebook


def test_codebook_and_commitment_terms_move_their_own_side():
    q = quantizer_with(CODES)
    z = as_map(torch.tensor([[0.4, 0.0], [0.0, 1.5]])).requires_grad_(True)  # -> codes 0 and 2
    _, indices, terms = q(z)
    chosen = CODES[indices.flatten()]
    expected = (z.detach()[0, :, 0].t() - chosen).pow(2).mean()
    assert terms["codebook"].item() == pytest.approx(expected.item())
    assert terms["commitment"].item() == pytest.approx(expected.item())
    (grad_e,) = torch.autograd.grad(terms["codebook"], q.codebook)
    assert grad_e[1].abs().sum() == 0 and grad_e[[0, 2]].abs().sum() > 0  # only chosen codes move
    (grad_z,) = torch.autograd.grad(terms["commitment"], z)
    assert torch.allclose(grad_z, 2 * (z.detach() - as_map(chosen)) / z.numel())


def test_ema_codebook_update_matches_a_hand_computed_step():
    q = quantizer_with(CODES, ema=True, decay=0.5, epsilon=0.1).train()
    z = as_map(torch.tensor([[0.2, 0.0], [0.4, 0.2], [0.0, 3.0]]))  # -> codes 0, 0, 2; code 1 unused
    q(z)
    # N = 0.5·1 + 0.5·n: n = (2, 0, 1) -> (1.5, 0.5, 1.0); m = 0.5·e + 0.5·Σ z
    cluster = torch.tensor([1.5, 0.5, 1.0])
    sums = torch.tensor([[0.6, 0.2], [0.0, 0.0], [0.0, 3.0]])
    embed = 0.5 * CODES + 0.5 * sums
    total = cluster.sum()  # 3.0
    smoothed = (cluster + 0.1) / (total + 3 * 0.1) * total
    assert torch.allclose(q.cluster_size, cluster)
    assert torch.allclose(q.embed_sum, embed)
    assert torch.allclose(q.codebook, embed / smoothed[:, None])
    assert not list(q.parameters())  # nothing for the optimizer: EMA only


def test_quantizers_leave_the_codebook_alone_in_eval_mode():
    q = quantizer_with(CODES, ema=True).eval()
    q(as_map(torch.randn(5, 2)))
    assert torch.equal(q.codebook, CODES) and torch.equal(q.cluster_size, torch.ones(3))


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_restart_on_encoder_outputs(ema):
    torch.manual_seed(0)
    q = quantizer_with(CODES, ema=ema)
    q.restart_threshold = 0.5
    q.usage.copy_(torch.tensor([1.0, 0.1, 1.0]))  # code 1 has gone unused
    z_rows = torch.tensor([[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]])
    assert q.restart_dead_codes(z_rows).tolist() == [1]
    assert any(torch.equal(q.codebook[1], row) for row in z_rows)
    assert torch.equal(q.codebook[[0, 2]], CODES[[0, 2]]) and q.usage[1] == 1.0
    if ema:  # the running statistics restart with the code, so the next EMA step keeps it there
        assert torch.equal(q.embed_sum[1], q.codebook[1]) and q.cluster_size[1] == 1.0
    assert len(q.restart_dead_codes(z_rows)) == 0


@pytest.mark.parametrize("ema", [False, True])
def test_first_training_batch_initialises_the_codebook_on_encoder_outputs(ema):
    q = vqvae.EMAQuantizer(num_codes=4, code_dim=2, decay=0.0) if ema else vqvae.Quantizer(num_codes=4, code_dim=2)
    rows = torch.randn(10, 2) * 5
    q.eval()(as_map(rows))
    assert (q.usage == 0).all()  # eval mode: untouched
    q.train()(as_map(rows))
    chosen = {tuple(r.tolist()) for r in rows}
    if not ema:  # (the EMA step then moves codes to cluster means, checked elsewhere)
        assert all(tuple(code.tolist()) in chosen for code in q.codebook)
    assert len({tuple(code.tolist()) for code in q.codebook}) == 4  # distinct rows


def test_training_forward_restarts_dead_codes_before_assigning():
    q = quantizer_with(CODES).train()
    q.restart_threshold = 0.5
    q.usage.copy_(torch.tensor([1.0, 0.1, 1.0]))
    _, indices, _ = q(as_map(torch.tensor([[9.0, 9.0], [9.0, 9.0]])))
    assert torch.equal(q.codebook[1], torch.tensor([9.0, 9.0]))
    assert indices.flatten().tolist() == [1, 1]  # the restarted code wins this very batch


def make_vqvae(ema: bool = False) -> VQVAE:
    net = {"hidden": 8, "residual_hidden": 4, "n_residual": 1, "downsample": 2}
    quantizer = {
        "_target_": f"genlab.networks.vqvae.{'EMAQuantizer' if ema else 'Quantizer'}",
        "num_codes": 16,
        "code_dim": 4,
    }
    return VQVAE(
        encoder={"_target_": "genlab.networks.vqvae.Encoder", **net},
        decoder={"_target_": "genlab.networks.vqvae.Decoder", **net},
        quantizer=quantizer,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        image_size=16,
        channels=3,
    )


@pytest.mark.parametrize("ema", [False, True])
def test_encode_then_decode_equals_the_forward_reconstruction(ema):
    torch.manual_seed(0)
    model = make_vqvae(ema).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    indices = model.encode(x)
    assert indices.shape == (4, 4, 4) and indices.dtype == torch.long
    assert indices.min() >= 0 and indices.max() < 16
    recon, forward_indices, _ = model(x)
    assert torch.equal(indices, forward_indices)
    assert torch.allclose(model.decode(indices), recon.clamp(-1, 1), atol=1e-6)
    assert torch.equal(model.reconstruct(x), model.decode(indices))


def test_metric_helpers():
    assert perplexity(torch.full((8,), 5.0)).item() == pytest.approx(8.0)
    assert perplexity(torch.tensor([0.0, 7.0, 0.0])).item() == pytest.approx(1.0)
    target = torch.zeros(2, 1, 4, 4)
    scores = paired.scores(target + 0.2, target, ("mse", "psnr"))  # MSE 0.04 on a range of 2
    assert scores["mse"] == pytest.approx(0.04) and scores["psnr"] == pytest.approx(20.0)  # 10 log10(4 / 0.04)


def test_ema_quantizer_config_trains_and_logs_the_metrics(make_cfg):
    cfg = make_cfg("model=vqvae", "model/quantizer=ema", "model.encoder.hidden=16", "data.batch_size=8")
    train.run(cfg)
    header = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/mse", "train/perplexity", "val/mse", "val/nmse", "val/psnr", "val/perplexity", "val/code_usage"):
        assert key in header


@pytest.mark.parametrize("experiment, hidden, ema", [("vqvae_digits", 64, True), ("vqvae_cifar10", 256, False)])
def test_experiments_build(experiment, hidden, ema):
    from hydra.utils import instantiate

    from genlab.config import compose_train

    cfg = compose_train([f"experiment={experiment}"])
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert isinstance(model.quantizer, vqvae.EMAQuantizer) == ema
    assert model.encoder.net[2].out_channels == hidden and model.code_shape == (8, 8)
    instantiate(cfg.data)
