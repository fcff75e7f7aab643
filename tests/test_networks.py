import pytest
import torch

from genlab.networks import dcgan


@pytest.mark.parametrize("image_size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(image_size, channels):
    g = dcgan.Generator(image_size=image_size, channels=channels, latent_dim=16, width=8)
    d = dcgan.Discriminator(image_size=image_size, channels=channels, width=8)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, channels, image_size, image_size)
    assert x.abs().max() <= 1
    assert d(x).shape == (2,)


@pytest.mark.parametrize("image_size", [8, 24, 48, 100])
def test_dcgan_rejects_unsupported_sizes_naming_the_key(image_size):
    with pytest.raises(ValueError, match="data.image_size"):
        dcgan.Generator(image_size=image_size)


def test_dcgan_paper_widths_and_init():
    g = dcgan.Generator(image_size=64, channels=3, latent_dim=100, width=64)
    assert g.net[0].out_channels == 512  # 4x4x512 projection, as in the paper's figure 1
    std = g.net[0].weight.std().item()
    assert 0.017 < std < 0.023  # N(0, 0.02) init


def test_spectral_norm_discriminator_has_unit_spectral_norm():
    d = dcgan.Discriminator(image_size=16, channels=1, width=4, spectral_norm=True)
    d(torch.randn(2, 1, 16, 16))  # power iterations run in training mode
    for _ in range(30):
        d(torch.randn(2, 1, 16, 16))
    conv = d.net[0]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
