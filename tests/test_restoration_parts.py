"""The restoration family's parts: data=photos, the restoration networks, the classical baselines."""

import math
import socket

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from genlab.bench import classical
from genlab.config import compose_train
from genlab.data import degradations as D
from genlab.data.base import DataError
from genlab.data.photos import PHOTOS, load_photo
from genlab.networks import dncnn, gated, recurrent, restoration, unet

# --- data=photos ----------------------------------------------------------------------------------------


def photos(*overrides: str):
    dm = instantiate(compose_train(["data=photos", "data.n_val=12", "data.crops_per_epoch=32", *overrides]).data)
    dm.setup("fit")
    return dm


def test_every_photograph_loads_without_the_network(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", offline)
    for name in PHOTOS:
        image = load_photo(name, 3)
        assert image.shape[0] == 3 and min(image.shape[-2:]) >= 256 and -1 <= image.min() < image.max() <= 1


def test_validation_photographs_are_never_trained_on():
    dm = photos()
    assert set(dm.val_photos).isdisjoint(dm.train_photos)
    assert {"camera", "chelsea", "flower"} == set(dm.val_photos)
    # Compare the pixels the sets crop from: a picture under another name (skimage's cat is chelsea) would leak.
    for val in dm.val_set.photos:
        assert not any(t.shape == val.shape and torch.equal(t, val) for t in dm.train_set.photos)
    assert len(dm.train_set.photos) == len(dm.train_photos) == 9
    with pytest.raises(Exception, match="both data.train_photos and data.val_photos"):
        photos("data.train_photos=[astronaut,camera]")


def test_validation_crops_fixed_training_crops_fresh():
    a, b = photos(), photos()
    val_a = torch.stack([a.val_set[i][0] for i in range(12)])
    assert torch.equal(val_a, torch.stack([b.val_set[i][0] for i in range(12)]))
    assert [a.val_set[i][1] for i in range(6)] == [0, 1, 2, 0, 1, 2]  # spread over the val photographs
    other = photos("data.seed=1")
    assert not torch.equal(val_a, torch.stack([other.val_set[i][0] for i in range(12)]))
    assert len(a.train_set) == 32
    assert not torch.equal(a.train_set[0][0], a.train_set[0][0])  # a new crop on each access
    L.seed_everything(3, workers=True)
    first = next(iter(a.train_dataloader()))[0]
    L.seed_everything(3, workers=True)
    assert torch.equal(first, next(iter(a.train_dataloader()))[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_photo_crops_grey_or_rgb(channels):
    dm = photos(f"data.channels={channels}", "data.image_size=48", "degradation=inpaint_box")
    batch = next(iter(dm.val_dataloader()))
    assert batch["clean"].shape == (12, channels, 48, 48) and batch["mask"].shape == (12, 1, 48, 48)
    assert batch["clean"].std() > 0.05  # photographs, not flat fields


def test_photos_clear_errors():
    with pytest.raises(DataError, match="photograph coins is 303x384 px .* smaller than data.image_size=320"):
        photos("data.image_size=320")
    with pytest.raises(Exception, match="unknown: \\['lena'\\]"):
        photos("data.val_photos=[lena]")


# --- networks ---------------------------------------------------------------------------------------------

NETWORKS = {
    "unet": lambda scale, mask: unet.UNet(3, scale=scale, mask_channel=mask, width=8, depth=3),
    "gated": lambda scale, mask: gated.GatedNet(3, scale=scale, mask_channel=mask, width=4),
    "dncnn": lambda scale, mask: dncnn.DnCNN(3, scale=scale, mask_channel=mask, depth=4, width=8),
    "recurrent": lambda scale, mask: recurrent.RecurrentNet(
        3, scale=scale, mask_channel=mask, width=8, depth=2, steps=3
    ),
}


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    return F.pad(x, (0, -x.shape[-1] % multiple, 0, -x.shape[-2] % multiple), mode="reflect")


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_networks_any_size_after_padding(name, scale):
    torch.manual_seed(0)
    net = NETWORKS[name](scale, True)
    if name == "recurrent":  # its update starts at zero (tested below); make it depend on the inputs
        torch.nn.init.normal_(net.head.net[-1].weight, std=0.1)
    m = net.size_multiple
    h, w = (3 * m - 1, 5 * m - 2) if m > 1 else (13, 21)  # odd multiples after padding: a too small m fails
    y, mask = torch.randn(2, 3, h, w), (torch.rand(2, 1, h, w) > 0.7).float()
    out = net(pad_to(y, m), pad_to(mask, m))
    out = out[-1] if isinstance(out, list) else out
    assert out.shape == (2, 3, (h + -h % m) * scale, (w + -w % m) * scale)
    other_mask = net(pad_to(y, m), pad_to(1 - mask, m))
    other_mask = other_mask[-1] if isinstance(other_mask, list) else other_mask
    assert not torch.equal(out, other_mask)  # the mask channel is used
    if m > 1:
        with pytest.raises(ValueError, match=f"multiples of {m}"):
            net(torch.randn(1, 3, m + 1, m), torch.zeros(1, 1, m + 1, m))


def test_mask_channel_is_required_when_built_with_one():
    with pytest.raises(ValueError, match="net\\(y, mask\\)"):
        unet.UNet(3, mask_channel=True, width=4, depth=1)(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="expects y \\[N, 1, H, W\\]"):
        dncnn.DnCNN(1, depth=3, width=4)(torch.randn(1, 3, 8, 8))


def zero_last_conv(head: restoration.PixelShuffleHead) -> None:
    torch.nn.init.zeros_(head.net[-1].weight)
    torch.nn.init.zeros_(head.net[-1].bias)


@pytest.mark.parametrize("scale", [1, 2])
def test_residual_networks_return_the_input_when_the_residual_is_zero(scale):
    y = torch.randn(2, 1, 16, 16)
    base = y if scale == 1 else F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)
    for net in (dncnn.DnCNN(1, scale=scale, depth=3, width=8), unet.UNet(1, scale=scale, width=4, depth=2)):
        zero_last_conv(net.head)
        assert torch.equal(net(y), base)  # x̂ = up(y) − R(y) with R = 0
    net = dncnn.DnCNN(1, depth=3, width=8).eval()
    assert torch.allclose(y - net(y), net.head(net.body(y)), atol=1e-6)  # output = input − predicted noise


def test_hole_fill_keeps_known_pixels_and_reproduces_smooth_images():
    torch.manual_seed(0)
    mask = (torch.rand(2, 1, 19, 23) > 0.5).float()  # odd sizes: the pyramid pools with ceil_mode
    mask[:, :, 4:15, 5:17] = 1  # and a large box
    y = torch.randn(2, 3, 19, 23)
    filled = restoration.fill_holes(y * (1 - mask), mask)
    known = (mask == 0).expand_as(y)
    assert torch.equal(filled[known], y[known])
    flat = torch.full_like(y, 0.3)
    assert torch.allclose(restoration.fill_holes(flat * (1 - mask), mask, smoothing=10), flat, atol=1e-6)
    # A linear ramp is harmonic: the membrane fill converges to it; push-pull alone is only close.
    ramp = torch.linspace(-1, 1, 23).expand(2, 3, 19, 23).contiguous()
    box = torch.zeros(2, 1, 19, 23)
    box[:, :, 5:14, 6:17] = 1
    coarse = (restoration.fill_holes(ramp * (1 - box), box) - ramp).abs().max()
    fine = (restoration.fill_holes(ramp * (1 - box), box, smoothing=400) - ramp).abs().max()
    assert fine < 1e-3 < coarse < 0.5
    everything = torch.ones(1, 1, 8, 8)
    assert torch.equal(restoration.fill_holes(torch.randn(1, 3, 8, 8), everything), torch.zeros(1, 3, 8, 8))


def test_dncnn_paper_architecture():
    net = dncnn.DnCNN()  # DnCNN-S: grey, depth 17, 64 channels, BN in the 15 middle layers
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17 and {c.out_channels for c in convs[:-1]} == {64}
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 15
    # 1·64·9 + 64  +  15·(64·64·9 + 2·64)  +  64·9 + 1
    assert sum(p.numel() for p in net.parameters()) == 640 + 15 * (36864 + 128) + 577


def test_recurrent_unrolls_one_shared_block():
    y = torch.randn(2, 3, 10, 12)
    net = recurrent.RecurrentNet(3, scale=2, width=8, depth=2, steps=4)
    estimates = net(y)
    assert len(estimates) == 4 and all(e.shape == (2, 3, 20, 24) for e in estimates)
    base = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
    assert all(torch.equal(e, base) for e in estimates)  # zero-initialised update: every step starts at x̂_0
    longer = recurrent.RecurrentNet(3, scale=2, width=8, depth=2, steps=9)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in longer.parameters())
    torch.nn.init.normal_(net.head.net[-1].weight, std=0.1)
    estimates = net(y)
    steps = [(b - a).abs().mean().item() for a, b in zip([base, *estimates], estimates)]
    assert all(s > 0 for s in steps)  # each step refines the previous estimate
    # The update depends on x̂_{t−1}: a block fed the same input twice would repeat its update.
    assert not torch.allclose(estimates[1] - estimates[0], estimates[0] - base, atol=1e-4)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_pixel_shuffle_head_upsamples_without_checkerboard(scale):
    head = restoration.PixelShuffleHead(6, 2, scale)
    features = torch.randn(1, 6, 5, 7)
    assert head(features).shape == (1, 2, 5 * scale, 7 * scale)
    if scale > 1:  # ICNR: the first conv + shuffle starts as a nearest-neighbour upsampling
        r = 3 if scale == 3 else 2
        first = head.net[:2](features)
        blocks = first.unfold(-2, r, r).unfold(-2, r, r)  # [1, C, h, w, r, r]
        assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_gated_convolution_gates():
    conv = gated.GatedConv2d(2, 3)
    x = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        conv.conv.bias[3:] = -1e4  # gates shut
    assert torch.equal(conv(x), torch.zeros(1, 3, 6, 6))
    with torch.no_grad():
        conv.conv.bias[3:] = 1e4  # gates open: ELU of the features
    features = F.conv2d(x, conv.conv.weight[:3], conv.conv.bias[:3], padding=1)
    assert torch.allclose(conv(x), F.elu(features))
    net = gated.GatedNet(3, width=4)
    out = net(torch.randn(1, 3, 16, 16) * 5, torch.ones(1, 1, 16, 16))
    assert out.abs().max() <= 1  # tanh output, as the paper


# --- classical baselines ------------------------------------------------------------------------------


def smooth(channels: int = 3, size: int = 40) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([0.5 * torch.sin(2 * math.pi * (xx + yy / 2 + k / 3)) for k in range(channels)])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(4 / (a - b).pow(2).mean())).item()


@pytest.mark.parametrize("method", classical.INPAINTING)
@pytest.mark.parametrize("channels", [1, 3])
def test_inpainting_fills_a_hole_in_a_smooth_image(method, channels):
    clean = smooth(channels) + 0.3  # away from the grey (0) the hole is filled with
    out = D.InpaintBox(size=[0.3, 0.3])(clean, torch.Generator().manual_seed(0))
    restored = classical.INPAINTING[method](out["degraded"][None], out["mask"][None])[0]
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(out["degraded"], clean) + 10
    known = out["mask"].expand_as(clean) == 0
    assert (restored - out["degraded"])[known].abs().max() <= 1 / 255  # known pixels kept (8-bit for OpenCV)


@pytest.mark.parametrize("method", classical.DENOISING)
@pytest.mark.parametrize("channels", [1, 3])
def test_denoisers_improve_sigma_25(method, channels):
    if method == "wavelet":
        pytest.importorskip("pywt")
    clean = smooth(channels, 48)
    noisy = D.GaussianNoise(25)(clean, torch.Generator().manual_seed(0))["degraded"]
    restored = classical.DENOISING[method](noisy[None], sigma=25)[0]
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(noisy, clean) + 3


def test_denoisers_estimate_sigma_when_not_given():
    pytest.importorskip("pywt")
    clean = smooth(1, 64)
    noisy = D.GaussianNoise(25)(clean, torch.Generator().manual_seed(0))["degraded"]
    image = ((noisy + 1) / 2).permute(1, 2, 0).double().numpy()
    assert classical.estimate_sigma(image) * 255 == pytest.approx(25, rel=0.15)
    assert psnr(classical.denoise_tv(noisy), clean) > psnr(noisy, clean) + 3


@pytest.mark.parametrize("method", classical.UPSCALING)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscalers_beat_nearest_neighbour(method, scale):
    clean = smooth(3, 48)
    small = D.Downsample(scale)(clean, None)["degraded"]
    restored = classical.UPSCALING[method](small, scale)  # a single [C, H, W] image
    nearest = F.interpolate(small[None], scale_factor=scale, mode="nearest")[0]
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(nearest, clean) + 3


@pytest.mark.parametrize("method", classical.DEBLURRING)
def test_deblurring_with_the_known_kernel_sharpens(method):
    clean = smooth(3, 48)
    clean[:, 12:36, 12:36] += 0.4  # edges for the blur to smear
    blur = D.GaussianBlur(sigma=1.5, kernel_size=11)
    batch = [blur(clean, torch.Generator().manual_seed(i)) for i in range(2)]
    y, kernels = torch.stack([b["degraded"] for b in batch]), torch.stack([b["kernel"] for b in batch])
    restored = classical.DEBLURRING[method](y, kernels)
    assert restored.shape == y.shape
    assert psnr(restored[0], clean) > psnr(y[0], clean) + 1
    with pytest.raises(ValueError, match="3 kernels for 2 images"):
        classical.DEBLURRING[method](y, torch.stack([kernels[0]] * 3))
