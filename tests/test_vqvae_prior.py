import shutil
from pathlib import Path

import pytest
import torch

from genlab import train
from genlab.checkpoint import load_model
from genlab.networks.transformer import CausalTransformer
from tests.conftest import run_script


def test_transformer_is_causal():
    torch.manual_seed(0)
    net = CausalTransformer(vocab_size=10, seq_len=6, dim=16, depth=2, heads=2, dropout=0.0).eval()
    tokens = torch.randint(0, 10, (2, 5))
    logits = net(tokens)
    assert logits.shape == (2, 6, 10)
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 10
    other = net(changed)
    # Row i predicts token i from tokens < i: rows 0..3 cannot see token 3, rows 4, 5 do.
    assert torch.allclose(logits[:, :4], other[:, :4], atol=1e-6)
    assert not torch.allclose(logits[:, 4:], other[:, 4:])


def test_cached_steps_equal_the_full_pass():
    torch.manual_seed(0)
    net = CausalTransformer(vocab_size=10, seq_len=6, dim=16, depth=2, heads=2, dropout=0.0).eval()
    tokens = torch.randint(0, 10, (3, 5))
    full = net(tokens)  # [3, 6, 10]
    cache, token = net.new_cache(), None
    for i in range(6):
        assert torch.allclose(net.step(token, cache, n=3), full[:, i], atol=1e-5)
        token = tokens[:, i] if i < 5 else None


@pytest.fixture(scope="module")
def prior_ckpt(vqvae_ckpt, tmp_path_factory) -> Path:
    from genlab.config import compose_train
    from tests.conftest import FAST

    out = tmp_path_factory.mktemp("prior")
    overrides = [*FAST, "model=vqvae_prior", f"model.vqvae_ckpt={vqvae_ckpt}", "data.batch_size=8"]
    overrides += ["model.transformer.dim=32", "model.transformer.depth=1", "model.n_preview=4"]
    train.run(compose_train(overrides, output_dir=out))
    return out / "checkpoints" / "last.ckpt"


def test_prior_samples_valid_codes_and_images(prior_ckpt, vqvae_ckpt):
    prior = load_model(prior_ckpt)
    vqvae = load_model(vqvae_ckpt)
    # The frozen VQ-VAE inside the prior is the one it was trained on, untouched by training.
    for key, value in vqvae.state_dict().items():
        assert torch.equal(prior.vqvae.state_dict()[key], value), key
    codes = prior.sample_codes(3, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (3, 8, 8) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < vqvae.num_codes
    images = prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, vqvae.decode(codes))  # same generator, same codes
    # top_k = 1 is greedy decoding: the same codes whatever the random stream.
    greedy = [prior.sample_codes(2, generator=torch.Generator().manual_seed(s), top_k=1) for s in (1, 2)]
    assert torch.equal(*greedy)


def test_prior_checkpoint_alone_generates(prior_ckpt, vqvae_ckpt, tmp_path):
    # Move the VQ-VAE checkpoint away: generate.py must need only the prior's file.
    moved = tmp_path / "elsewhere.ckpt"
    shutil.move(vqvae_ckpt, moved)
    try:
        out = tmp_path / "gen"
        result = run_script("generate.py", f"ckpt={prior_ckpt}", "n=3", f"out={out}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    finally:
        shutil.move(moved, vqvae_ckpt)


def test_prior_needs_the_vqvae_checkpoint(make_cfg):
    from omegaconf import OmegaConf

    cfg = make_cfg("model=vqvae_prior")
    assert "model.vqvae_ckpt" in OmegaConf.missing_keys(cfg)
    with pytest.raises(ValueError, match="model.vqvae_ckpt"):
        train.run(cfg)


def test_prior_experiment_builds(vqvae_ckpt):
    from hydra.utils import instantiate

    from genlab.config import compose_train

    cfg = compose_train(["experiment=vqvae_prior_digits", f"model.vqvae_ckpt={vqvae_ckpt}"])
    prior = instantiate(cfg.model, _recursive_=False, _convert_="all")
    assert prior.transformer.seq_len == 64 and prior.hparams.vqvae_hparams["image_size"] == 32


@pytest.mark.slow
def test_bench_quick_prints_every_table(tmp_path, capsys):
    from genlab.bench import autoencoders

    autoencoders.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for header in ("-ELBO nats", "IW-NLL k=10", "PSNR dB", "perplexity", "bits/image"):
        assert header in out
