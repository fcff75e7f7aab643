"""StyleGAN2 building blocks: equalised lr, modulation, FIR resampling against direct references,
truncation, style mixing, minibatch stddev, path length, augmentation (DiffAugment and ADA)."""

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.losses import path_length_penalty
from genlab.networks import augment, stylegan2

TAPS = torch.tensor([1.0, 3.0, 3.0, 1.0])
KERNEL = torch.outer(TAPS, TAPS) / 64  # the normalised 4x4 binomial filter


def tiny_generator(resolution=16, img_channels=3, **kw):
    kw = dict(z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8) | kw
    return stylegan2.Generator(resolution=resolution, img_channels=img_channels, **kw)


def tiny_discriminator(resolution=16, img_channels=3, **kw):
    kw = dict(channel_base=64, channel_max=8) | kw
    return stylegan2.Discriminator(resolution=resolution, img_channels=img_channels, **kw)


# --- Direct references, written without the module's helpers ---------------------------------


def fir_reference(x, pad_before, pad_after, gain=1.0):
    """Zero-pad, then convolve with the 4x4 kernel one output pixel at a time ("valid" output)."""
    x = F.pad(x, (pad_before, pad_after, pad_before, pad_after))
    k = (KERNEL * gain).to(x.dtype).flip(0, 1)
    h, w = x.shape[2] - 3, x.shape[3] - 3
    out = x.new_zeros(x.shape[0], x.shape[1], h, w)
    for i in range(h):
        for j in range(w):
            out[:, :, i, j] = (x[:, :, i : i + 4, j : j + 4] * k).sum(dim=(2, 3))
    return out


def zero_insert(x):
    """x2 upsampling by a zero after every pixel (upfirdn2d's first step)."""
    out = x.new_zeros(x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3])
    out[:, :, ::2, ::2] = x
    return out


# --- Equalised learning rate ---------------------------------------------------------------------


def test_fully_connected_stores_unit_weights_and_scales_at_run_time():
    torch.manual_seed(0)
    fc = stylegan2.FullyConnected(64, 32, bias_init=0.5, lr_mul=0.01)
    assert fc.weight.std().item() == pytest.approx(100.0, rel=0.1)  # N(0, 1) / lr_mul
    x = torch.randn(5, 64)
    y = fc(x)
    gain = 0.01 / math.sqrt(64)
    torch.testing.assert_close(y, x @ (fc.weight * gain).t() + 0.5 * 0.01)
    y.sum().backward()
    # d(sum y) / dW[o, i] = gain * sum_n x[n, i]: the stored weight learns at gain x the raw rate
    torch.testing.assert_close(fc.weight.grad, gain * x.sum(0).expand(32, 64))
    torch.testing.assert_close(fc.bias.grad, torch.full((32,), 5 * 0.01))


def test_conv_equalised_scale_lrelu_gain_and_clamp():
    torch.manual_seed(0)
    conv = stylegan2.Conv(8, 4, 3, lrelu=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 8, 6, 6)
    expected = F.conv2d(x, conv.weight / math.sqrt(8 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), F.leaky_relu(expected, 0.2) * math.sqrt(2))
    torch.testing.assert_close(conv(x, gain=0.5), F.leaky_relu(expected, 0.2) * math.sqrt(2) * 0.5)
    clamped = stylegan2.Conv(8, 4, 3, lrelu=True, conv_clamp=0.1)
    clamped.load_state_dict(conv.state_dict())
    assert clamped(x).abs().max().item() == pytest.approx(0.1)
    assert clamped(x, gain=0.5).abs().max().item() == pytest.approx(0.05)


# --- Modulated convolution -----------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
def test_demodulated_output_has_unit_variance_per_channel(fused):
    torch.manual_seed(0)
    x = torch.randn(16, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.randn(16, 64).exp()  # styles spanning orders of magnitude
    y = stylegan2.modulated_conv2d(x, weight, styles, fused=fused)[:, :, 1:-1, 1:-1]  # borders see zero padding
    var = y.var(dim=(0, 2, 3))
    torch.testing.assert_close(var, torch.ones(32), atol=0.1, rtol=0)


@pytest.mark.parametrize("fused", [False, True])
def test_modulated_up_conv_equals_zero_insert_filter_convolve(fused):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    styles = torch.randn(2, 3, dtype=torch.float64)
    out = stylegan2.modulated_conv2d(x, weight, styles, demodulate=False, up=True, fir=KERNEL.double(), fused=fused)
    for n in range(2):
        # NVIDIA's conv2d_resample(up=2, padding=1): upfirdn2d(up 2, pad (3, 2), gain 4), then a
        # true convolution (flipped kernel) with the per-sample weights, no padding.
        up = fir_reference(zero_insert(x[n : n + 1]), 3, 2, gain=4)
        expected = F.conv2d(up, (weight * styles[n].view(1, 3, 1, 1)).flip(2, 3))
        torch.testing.assert_close(out[n : n + 1], expected)


def test_fused_and_scaled_activation_modulation_agree():
    torch.manual_seed(0)
    g = tiny_generator(resolution=16, channel_max=4).double()
    fused = tiny_generator(resolution=16, channel_max=4, fused_modconv=True).double()
    fused.load_state_dict(g.state_dict())
    ws = g.mapping(torch.randn(3, 8, dtype=torch.float64))
    torch.testing.assert_close(fused.synthesis(ws, "const"), g.synthesis(ws, "const"))


# --- FIR resampling ------------------------------------------------------------------------------


def test_upsample_equals_zero_insert_then_filter():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    out = stylegan2.upsample2d(x, KERNEL.double())
    torch.testing.assert_close(out, fir_reference(zero_insert(x), 2, 1, gain=4))


def test_downsample_equals_filter_then_subsample():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    out = stylegan2.downsample2d(x, KERNEL.double())
    torch.testing.assert_close(out, fir_reference(x, 1, 1)[:, :, ::2, ::2])


def test_discriminator_down_convs_equal_convolve_then_filter_then_subsample():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    conv = stylegan2.Conv(3, 4, 3, down=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    w = conv.weight / math.sqrt(3 * 9)
    full = F.conv2d(F.pad(x, (2, 2, 2, 2)), w)  # NVIDIA's generic path: pad 1 + 1, conv, filter, drop
    expected = fir_reference(full, 0, 0)[:, :, ::2, ::2] + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), expected)
    skip = stylegan2.Conv(3, 4, 1, bias=False, down=True).double()
    expected = F.conv2d(fir_reference(x, 1, 1)[:, :, ::2, ::2], skip.weight / math.sqrt(3))
    torch.testing.assert_close(skip(x), expected)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: stylegan2.upsample2d(x, KERNEL.double()),
        lambda x: stylegan2.downsample2d(x, KERNEL.double()),
        lambda x: stylegan2.filter2d(x, KERNEL.double(), pad=1, gain=4),
    ],
    ids=["up", "down", "filter"],
)
def test_fir_ops_gradients_and_double_backward(op):
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    assert torch.autograd.gradgradcheck(op, (x,))


def test_discriminator_double_backward_for_r1():
    torch.manual_seed(0)
    d = tiny_discriminator(resolution=8, img_channels=1, channel_base=16, channel_max=2).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(d, (x,), fast_mode=True)


# --- Mapping: w_avg, truncation, style mixing ---------------------------------------------------


def test_w_avg_tracks_the_batch_mean_in_training_only():
    torch.manual_seed(0)
    g = tiny_generator()
    z = torch.randn(6, 8)
    w = g.eval().mapping(z)[:, 0]
    assert g.mapping.w_avg.abs().max() == 0  # eval mode leaves it alone
    g.train().mapping(z)
    torch.testing.assert_close(g.mapping.w_avg, 0.005 * w.mean(0))  # lerp(mean w, 0, beta 0.995)
    g.mapping(z, update_w_avg=False)
    torch.testing.assert_close(g.mapping.w_avg, 0.005 * w.mean(0))


def test_truncation_psi_zero_gives_one_image_and_psi_one_changes_nothing():
    torch.manual_seed(0)
    g = tiny_generator().eval()
    with torch.no_grad():
        g.mapping.w_avg.normal_()
        for name, p in g.named_parameters():
            if "noise_strength" in name:
                p.fill_(0.5)
    z = torch.randn(4, 8)
    images = g(z, truncation_psi=0.0, noise_mode="const")
    torch.testing.assert_close(images, images[:1].expand_as(images))
    w_avg = g.mapping.w_avg.expand(1, g.num_ws, -1)
    torch.testing.assert_close(images[:1], g.synthesis(w_avg, noise_mode="const"))
    ws = g.mapping(z)
    assert not torch.allclose(ws, w_avg.expand_as(ws))
    torch.testing.assert_close(g.mapping(z, truncation_psi=1.0, truncation_cutoff=2), ws)
    torch.testing.assert_close(g(z, truncation_psi=1.0, noise_mode="const"), g.synthesis(ws, noise_mode="const"))
    half = g.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], w_avg[:, :2] + 0.5 * (ws[:, :2] - w_avg[:, :2]))
    torch.testing.assert_close(half[:, 2:], ws[:, 2:])


def test_mix_styles_splits_ws_at_the_cutoff():
    a, b = torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    for cutoff in range(1, 7):
        mixed = stylegan2.mix_styles(a, b, torch.tensor(cutoff))
        assert torch.equal(mixed[:, :cutoff], a[:, :cutoff])
        assert torch.equal(mixed[:, cutoff:], b[:, cutoff:])


def test_mixing_cutoff_is_drawn_as_nvidia_does():
    torch.manual_seed(0)
    never = {stylegan2.draw_mixing_cutoff(8, 0.0).item() for _ in range(200)}
    always = [stylegan2.draw_mixing_cutoff(8, 1.0).item() for _ in range(500)]
    half = [stylegan2.draw_mixing_cutoff(8, 0.5).item() for _ in range(1000)]
    assert never == {8}
    assert set(always) == set(range(1, 8))  # uniform in [1, num_ws - 1]
    assert sum(c == 8 for c in half) / len(half) == pytest.approx(0.5, abs=0.06)


def test_generator_mixing_takes_the_tail_from_a_second_latent():
    torch.manual_seed(0)
    g = tiny_generator(resolution=32).eval()
    z = torch.randn(3, 8)
    ws = g.mapping(z)
    mixed = g.mapping_with_mixing(z, mixing_prob=1.0)
    same = (mixed == ws).all(dim=2).all(dim=0)  # [num_ws]
    cutoff = int(same.sum())
    assert 1 <= cutoff < g.num_ws and same[:cutoff].all()
    torch.testing.assert_close(mixed[:, cutoff:], mixed[:, -1:].expand_as(mixed[:, cutoff:]))
    assert not torch.allclose(mixed[0, -1], mixed[1, -1])  # each sample mixes in its own latent
    assert torch.equal(g.mapping_with_mixing(z, mixing_prob=0.0), ws)


# --- Networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("img_channels", [1, 3])
def test_generator_and_discriminator_shapes_and_backward(resolution, img_channels):
    torch.manual_seed(0)
    g = tiny_generator(resolution, img_channels)
    d = tiny_discriminator(resolution, img_channels)
    assert g.num_ws == 2 * int(math.log2(resolution)) - 2
    fake = g(torch.randn(3, 8))
    assert fake.shape == (3, img_channels, resolution, resolution)
    logits = d(fake)
    assert logits.shape == (3,)
    logits.sum().backward()
    for net in (g, d):
        missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.isfinite().all()]
        assert not missing


def test_channels_follow_base_over_resolution_capped_at_max():
    g = tiny_generator(resolution=32, channel_base=256, channel_max=16)
    assert [block.conv1.weight.shape[0] for block in g.synthesis.blocks] == [16, 16, 16, 8]
    d = tiny_discriminator(resolution=32, channel_base=256, channel_max=16)
    assert [block.conv1.weight.shape[:2] for block in d.blocks] == [(16, 8), (16, 16), (16, 16)]


def test_noise_modes():
    torch.manual_seed(0)
    g = tiny_generator().eval()
    strength = g.synthesis.blocks[-1].conv1.noise_strength
    ws = g.mapping(torch.randn(2, 8))
    without = g.synthesis(ws, noise_mode="none")
    # strength 0 (the init) silences every mode; with strength 1 "none" still adds nothing
    for mode in ("const", "random"):
        torch.testing.assert_close(g.synthesis(ws, noise_mode=mode), without)
    with torch.no_grad():
        strength.fill_(1.0)
    torch.testing.assert_close(g.synthesis(ws, noise_mode="none"), without)
    const = g.synthesis(ws, noise_mode="const")
    assert not torch.allclose(const, without)
    torch.testing.assert_close(g.synthesis(ws, noise_mode="const"), const)
    assert not torch.allclose(g.synthesis(ws, noise_mode="random"), const)
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, noise_mode="fixed")


@pytest.mark.parametrize("batch", [1, 3, 5, 6, 7, 8])
def test_minibatch_std_groups_samples_as_nvidia_and_handles_any_batch(batch):
    torch.manual_seed(0)
    x = torch.randn(batch, 6, 3, 3)
    out = stylegan2.MinibatchStd(group_size=4)(x)
    g = min(4, batch)
    groups = -(-batch // g)
    for i in range(batch):
        members = x[[j for j in range(batch) if j % groups == i % groups]]
        std = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 6], std.expand(3, 3))
    torch.testing.assert_close(out[:, :6], x)
    assert tiny_discriminator(img_channels=1)(torch.randn(batch, 1, 16, 16)).shape == (batch,)


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="data.image_size"):
        tiny_generator(resolution=24)
    with pytest.raises(ValueError, match="data.image_size"):
        tiny_discriminator(resolution=4)
    with pytest.raises(ValueError, match=r"z of shape \[N, 8\]"):
        tiny_generator()(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"\[N, 3, 16, 16\]"):
        tiny_discriminator()(torch.randn(2, 1, 16, 16))


# --- Path length regularisation ------------------------------------------------------------------


def test_path_length_of_a_linear_map_and_running_mean():
    torch.manual_seed(0)
    # fake = 3 * ws laid out as a 32x32 image: J^T y = 3 y, so with y ~ N(0, 1/1024) over 4 ws of
    # 256 dims the squared length per w is 9 * 256 / 1024, and the length is 3 / sqrt(4) = 1.5.
    ws = torch.randn(64, 4, 256, requires_grad=True)
    fake = 3.0 * ws.reshape(64, 1, 32, 32)
    penalty, mean_length, new_mean = path_length_penalty(fake, ws, torch.tensor(1.0), decay=0.1)
    assert mean_length.item() == pytest.approx(1.5, rel=0.03)
    torch.testing.assert_close(new_mean, 1.0 + 0.1 * (mean_length - 1.0))
    assert torch.isfinite(penalty) and penalty > 0


def test_path_length_penalty_on_a_generator_is_finite_and_trains_it():
    torch.manual_seed(0)
    g = tiny_generator()
    ws = g.mapping(torch.randn(2, 8))
    penalty, mean_length, new_mean = path_length_penalty(g.synthesis(ws), ws, 0.0)
    assert torch.isfinite(penalty) and penalty > 0 and mean_length > 0
    torch.testing.assert_close(new_mean, 0.01 * mean_length)
    assert not new_mean.requires_grad
    penalty.backward()
    assert g.synthesis.blocks[-1].conv1.weight.grad.abs().sum() > 0


# --- Augmentation --------------------------------------------------------------------------------


def test_translate_matches_a_rolled_image_with_zero_fill():
    x = torch.randn(3, 2, 6, 5)
    shift = torch.tensor([[1, -2], [0, 0], [-3, 4]])
    out = augment.translate(x, shift)
    for n, (dy, dx) in enumerate(shift.tolist()):
        expected = torch.roll(x[n], (dy, dx), dims=(1, 2))
        rows, cols = torch.arange(6) - dy, torch.arange(5) - dx
        valid = ((rows >= 0) & (rows < 6))[:, None] & ((cols >= 0) & (cols < 5))[None, :]
        torch.testing.assert_close(out[n], expected * valid)


def test_cut_out_zeroes_the_clipped_box_only():
    x = torch.rand(2, 1, 6, 6) + 1
    out = augment.cut_out(x, torch.tensor([[1, 2], [-1, 4]]), (3, 3))
    assert torch.equal(out[0, 0] == 0, F.pad(torch.ones(3, 3, dtype=torch.bool), (2, 1, 1, 2)))
    assert torch.equal(out[1, 0] == 0, F.pad(torch.ones(2, 2, dtype=torch.bool), (4, 0, 0, 4)))


def test_diffaugment_keeps_shape_is_differentiable_and_random_per_sample():
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 16, 16) + 0.5).expand(8, -1, -1, -1).clone().requires_grad_(True)
    out = augment.DiffAugment()(x)
    assert out.shape == x.shape
    assert not torch.allclose(out[0], out[1])  # each sample draws its own parameters
    out.square().sum().backward()
    assert x.grad.isfinite().all() and x.grad.abs().sum() > 0


def test_diffaugment_colour_draws_per_sample_factors_in_range():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8).expand(512, -1, -1, -1)
    out = augment.DiffAugment(policy=["color"])(x)

    def grey_and_chroma(img):  # channel mean (moved by brightness and contrast) and the rest
        grey = img.mean(dim=1, keepdim=True)
        return grey, img - grey

    grey_in, chroma_in = grey_and_chroma(x)
    grey_out, chroma_out = grey_and_chroma(out)
    # out = ((x + b - m) s + m - M) c + M for m the channel mean and M the image mean, so
    # the grey image is scaled by c about its mean, the chroma by s c, and the mean moves by b.
    contrast = grey_out.flatten(1).std(1) / grey_in.flatten(1).std(1)
    saturation = chroma_out.flatten(1).norm(dim=1) / chroma_in.flatten(1).norm(dim=1) / contrast
    brightness = out.flatten(1).mean(1) - x.flatten(1).mean(1)
    for factor, low, high in [(brightness, -0.5, 0.5), (saturation, 0.0, 2.0), (contrast, 0.5, 1.5)]:
        assert low - 1e-4 <= factor.min() < low + 0.05 and high - 0.05 < factor.max() <= high + 1e-4
        assert factor.unique().numel() > 500  # one draw per sample


def test_diffaugment_translation_and_cutout_ranges():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 16, 16) + 1  # no zeros, so zeros mark cut-out or shifted-in pixels
    moved = augment.DiffAugment(policy=["translation"])(x)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]  # 1/8 of 16 px = 2
    for n in range(32):
        assert any(torch.equal(moved[n], augment.translate(x[n : n + 1], torch.tensor([s]))[0]) for s in shifts)
    cut = augment.DiffAugment(policy=["cutout"])(x)
    zeros = (cut == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0  # an 8x8 box, clipped at the border
    assert torch.equal(cut[cut != 0], x[cut != 0])


def test_no_policy_is_identity_and_unknown_policy_is_refused():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(augment.DiffAugment(policy=())(x), x)
    with pytest.raises(ValueError, match="choose from"):
        augment.DiffAugment(policy=["colour"])


def test_ada_applies_each_op_with_probability_p():
    torch.manual_seed(0)
    x = torch.rand(2000, 1, 8, 8) + 1
    ada = augment.AdaptiveAugment(policy=["cutout"], p_init=0.5)
    changed = (ada(x) != x).flatten(1).any(1).float().mean()
    assert changed.item() == pytest.approx(0.5, abs=0.04)
    assert torch.equal(augment.AdaptiveAugment(p_init=0.0)(x), x)
    assert (augment.AdaptiveAugment(policy=["cutout"], p_init=1.0)(x) != x).flatten(1).any(1).all()


def test_ada_p_follows_the_overfitting_heuristic_and_clamps():
    ada = augment.AdaptiveAugment(target=0.6, speed_kimg=500, interval=4, p_init=0.5)
    for _ in range(3):
        ada.adjust(1.0, batch_size=64)
    assert ada.p.item() == 0.5  # updates only every `interval` D steps
    ada.adjust(1.0, batch_size=64)
    assert ada.p.item() == pytest.approx(0.5 + 64 * 4 / 500_000)  # D overfits (r_t = 1 > 0.6): p rises
    for _ in range(4):
        ada.adjust(0.0, batch_size=64)
    assert ada.p.item() == pytest.approx(0.5)  # r_t = 0 < 0.6: p falls back
    fast = augment.AdaptiveAugment(speed_kimg=0.1, interval=1, p_init=0.5)
    fast.adjust(1.0, batch_size=64)
    assert fast.p.item() == 1.0
    fast.adjust(-1.0, batch_size=64)
    fast.adjust(-1.0, batch_size=64)
    assert fast.p.item() == 0.0


def test_ada_state_round_trips_through_the_state_dict():
    ada = augment.AdaptiveAugment(interval=4, p_init=0.2)
    for sign in (1.0, 0.8, 1.0, 0.9, 0.7, 1.0):
        ada.adjust(sign, batch_size=32)
    resumed = augment.AdaptiveAugment(interval=4)
    resumed.load_state_dict(ada.state_dict())
    assert torch.equal(resumed.p, ada.p) and torch.equal(resumed.stats, ada.stats)
    for module in (ada, resumed):
        module.adjust(1.0, batch_size=32)
        module.adjust(1.0, batch_size=32)
    assert torch.equal(resumed.p, ada.p)
    assert ada.p.item() == pytest.approx(0.2 + 2 * 32 * 4 / 500_000)  # two updates, both upwards
