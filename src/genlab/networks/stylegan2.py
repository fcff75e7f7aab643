"""StyleGAN2 generator and discriminator in plain PyTorch (Karras et al. 2020, arXiv:1912.04958).

Why this module exists: the authors' code (NVlabs/stylegan2-ada-pytorch) builds CUDA plugins for
its resampling and bias-activation ops, which fail to compile on many machines and break on newer
torch; the best-known port compiles CUDA at import, so it cannot even import on a CPU. Here every
op is a stock PyTorch op that runs on any device and supports double backward (R1 needs it).

The architecture and constants follow NVlabs/stylegan2-ada-pytorch (config F with the skip
generator and the residual discriminator):

    mapping      z -> normalise 2nd moment -> ``mapping_layers`` FC (lrelu, lr x0.01) -> w, tracked w_avg
    synthesis    4x4 learned constant; per resolution two modulated 3x3 convs (the first upsamples
                 x2), noise with learned strength, ToRGB (1x1 modulated, no demodulation); the RGB
                 outputs are summed after FIR upsampling (the "skip" architecture)
    discriminator FromRGB at the top, residual blocks with FIR downsampling whose 1x1 skip and main
                 path are each scaled by sqrt(0.5), minibatch stddev, conv, FC, FC -> one logit
    channels     min(channel_base / resolution, channel_max) at every resolution

Every weight is stored ~N(0, 1) and scaled at run time by 1/sqrt(fan_in) (equalised learning rate,
Karras et al. 2018, arXiv:1710.10196). Images are NCHW, nominally in [-1, 1] but unbounded (no tanh),
as in the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NOISE_MODES = ("random", "const", "none")
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the second moment of N(0, 1) pre-activations through leaky ReLU
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # the binomial low-pass filter of all StyleGAN2 up/down-sampling


def check_resolution(resolution: int) -> int:
    """log2(resolution); raises unless it is a power of two >= 8."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(
            f"StyleGAN2 needs data.image_size to be a power of two >= 8, got {resolution}; "
            "override it, e.g. data.image_size=32"
        )
    return int(math.log2(resolution))


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


# --- FIR resampling (upfirdn2d for the cases StyleGAN2 uses) -----------------------------------
# Each op is one depthwise convolution with the 4x4 outer product of [1,3,3,1]: on a 2-core CPU at
# 32 px, batch 8, 512 channels it measured 1.3-1.4x faster (forward + backward) than two separable
# 1-D passes, and 3-5x faster than shifted-slice sums. Paddings follow NVIDIA's upfirdn2d, so
# outputs align pixel for pixel with the reference.


def fir_kernel() -> Tensor:
    """The 4x4 filter: outer product of [1,3,3,1] with itself, normalised to unit DC gain."""
    f = torch.tensor(FIR_TAPS)
    return torch.outer(f, f) / f.sum() ** 2


def _depthwise(x: Tensor, kernel: Tensor) -> Tensor:
    return kernel.to(x.dtype).expand(x.shape[1], 1, 4, 4)


def filter2d(x: Tensor, kernel: Tensor, pad: int, gain: float = 1.0) -> Tensor:
    """Zero-pad by ``pad`` on every side and filter (``H + 2 pad - 3`` pixels out)."""
    return F.conv2d(x, _depthwise(x, kernel * gain), padding=pad, groups=x.shape[1])


def upsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """x2: insert a zero after each pixel, pad (2, 1), filter with gain 4 (upfirdn2d.upsample2d).

    A stride-2 transposed convolution with padding 1 is exactly that zero insertion and padding.
    """
    return F.conv_transpose2d(x, _depthwise(x, kernel * 4), stride=2, padding=1, groups=x.shape[1])


def downsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """/2: pad (1, 1), filter, keep every second pixel (upfirdn2d.downsample2d)."""
    return F.conv2d(x, _depthwise(x, kernel), stride=2, padding=1, groups=x.shape[1])


# --- Equalised-learning-rate layers ------------------------------------------------------------


def bias_act(x: Tensor, bias: Tensor | None, lrelu: bool, gain: float = 1.0, clamp: float | None = None) -> Tensor:
    """x + b, then leaky ReLU 0.2 times sqrt(2) (if ``lrelu``), times ``gain``, clamped to +-clamp."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = gain * LRELU_GAIN
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnected(nn.Module):
    """y = act(x (W lr_mul / sqrt(fan_in))^T + b lr_mul) with W ~ N(0, 1) / lr_mul as stored.

    Adam's step is scale-free, so storing W / lr_mul slows the effective weights by lr_mul (the
    mapping network's 0.01) while their initial scale stays 1/sqrt(fan_in).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        lrelu: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.lrelu = lrelu

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if b is not None and not self.lrelu:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x @ w.t(), b, self.lrelu)


class Conv(nn.Module):
    """Equalised-lr conv (weight scale 1/sqrt(in k^2)), optional FIR downsampling x2 before it.

    ``down``: 3x3 filters with padding 2 and convolves with stride 2; 1x1 downsamples first (both
    as NVIDIA's conv2d_resample). ``forward(x, gain)`` scales the activation (and the clamp) by
    ``gain``, e.g. sqrt(0.5) on the two branches of a residual block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        lrelu: bool = False,
        down: bool = False,
        conv_clamp: float | None = None,  # clamp activations to +-conv_clamp; None = no clamping
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.lrelu, self.down, self.conv_clamp = lrelu, down, conv_clamp
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        k = w.shape[-1]
        if not self.down:
            x = F.conv2d(x, w, padding=k // 2)
        elif k == 1:
            x = F.conv2d(downsample2d(x, self.fir), w)
        else:
            x = F.conv2d(filter2d(x, self.fir, pad=k // 2 + 1), w, stride=2)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.lrelu, gain, clamp)


# --- Modulated convolution ---------------------------------------------------------------------


def _conv_up(x: Tensor, weight: Tensor, up: bool, fir: Tensor | None, groups: int) -> Tensor:
    """'Same' conv, or with ``up`` NVIDIA's conv2d_resample up path: a stride-2 transposed conv
    (2H + k - 2 pixels), then the FIR filter with gain 4, padded back to 2H x 2W."""
    k = weight.shape[-1]
    if not up:
        return F.conv2d(x, weight, padding=k // 2, groups=groups)
    if fir is None:
        raise ValueError("modulated_conv2d(up=True) needs the FIR kernel (fir=fir_kernel())")
    out_channels, in_channels = weight.shape[:2]
    # conv_transpose2d wants [in, out / groups, k, k]
    weight = weight.view(groups, out_channels // groups, in_channels, k, k).transpose(1, 2)
    x = F.conv_transpose2d(
        x, weight.reshape(groups * in_channels, out_channels // groups, k, k), stride=2, groups=groups
    )
    return filter2d(x, fir, pad=(5 - k) // 2, gain=4)


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    up: bool = False,
    fir: Tensor | None = None,
    fused: bool = False,
) -> Tensor:
    """Karras et al. 2020, eqs. 1 and 3: w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + 1e-8).

    x [N, I, H, W], weight [O, I, k, k], styles [N, I]; ``up`` doubles H and W. ``fused`` builds
    each sample's weights and runs one grouped convolution (groups = N). The default scales the
    activations instead, x s -> conv -> x d with d = rsqrt(s^2 . sum_k w^2): the same numbers
    without the [N, O, I, k, k] tensor, which on a CPU measured 1.7x (32 px) to 13x (8 px) faster
    for forward + backward at batch 8, 512 channels, and never slower forward-only.
    """
    n, in_channels, h, w_ = x.shape
    out_channels, _, k, _ = weight.shape
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must be [{n}, {in_channels}] for x {tuple(x.shape)}, got {tuple(styles.shape)}")
    if not fused:
        x = _conv_up(x * styles.view(n, in_channels, 1, 1), weight, up, fir, groups=1)
        if demodulate:
            d = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # [N, O]
            x = x * d.view(n, out_channels, 1, 1)
        return x
    w = weight.unsqueeze(0) * styles.view(n, 1, in_channels, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    x = _conv_up(x.reshape(1, n * in_channels, h, w_), w.view(n * out_channels, in_channels, k, k), up, fir, n)
    return x.view(n, out_channels, *x.shape[2:])


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2) + noise B strength + bias, lrelu.

    The affine maps w to styles with bias 1, so that the initial styles scale weights by ~1. The
    stored weight needs no equalised-lr scale: demodulation normalises it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,  # output resolution (noise map size)
        up: bool = False,
        conv_clamp: float | None = None,
        fused_modconv: bool = False,
    ):
        super().__init__()
        self.resolution, self.up, self.conv_clamp, self.fused_modconv = resolution, up, conv_clamp, fused_modconv
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))  # for noise_mode="const"
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", gain: float = 1.0) -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), up=self.up, fir=self.fir, fused=self.fused_modconv)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, True, gain, clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation; styles scaled by 1/sqrt(in_channels) instead."""

    def __init__(
        self,
        in_channels: int,
        img_channels: int,
        w_dim: int,
        conv_clamp: float | None = None,
        fused_modconv: bool = False,
    ):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.conv_clamp, self.fused_modconv = conv_clamp, fused_modconv

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=self.fused_modconv)
        return bias_act(x, self.bias, False, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [const | upsampling conv0], conv1, ToRGB.

    Uses ``num_conv + 1`` ws: one per conv, and the ToRGB shares the next block's first w (as in
    NVIDIA's code, so the network consumes ``num_ws = 2 log2(resolution) - 2`` in total).
    """

    def __init__(
        self,
        in_channels: int,  # 0 = the first (4x4) block, which starts from a learned constant
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        **layer_kwargs,  # conv_clamp, fused_modconv for every layer
    ):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, **layer_kwargs)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, **layer_kwargs)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "random"
    ) -> tuple[Tensor, Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, next(w_iter), noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode)
        rgb = self.torgb(x, next(w_iter))
        img = rgb if img is None else upsample2d(img, self.fir) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, resolution, resolution]."""

    def __init__(
        self,
        w_dim: int = 512,
        resolution: int = 32,
        img_channels: int = 3,
        channel_base: int = 32768,  # channels at resolution r: min(channel_base / r, channel_max)
        channel_max: int = 512,
        conv_clamp: float | None = None,  # NVIDIA's fp16 configs use 256; None = no clamping
        fused_modconv: bool = False,  # per-sample weights in one grouped conv; slower on CPU
    ):
        super().__init__()
        log2 = check_resolution(resolution)
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.blocks = nn.ModuleList()
        for res in (2**i for i in range(2, log2 + 1)):
            in_channels = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_channels = channels_at(res, channel_base, channel_max)
            block = SynthesisBlock(
                in_channels, out_channels, w_dim, res, img_channels, conv_clamp=conv_clamp, fused_modconv=fused_modconv
            )
            self.blocks.append(block)
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + 1), noise_mode)
            w_idx += block.num_conv
        return img


class MappingNetwork(nn.Module):
    """z [N, z_dim] -> ws [N, num_ws, w_dim]: z / rms(z), then ``num_layers`` FC + lrelu (lr x lr_mul).

    In training mode each call moves ``w_avg`` towards the batch mean of w (w_avg <- lerp(mean w,
    w_avg, beta)); truncation pulls ws towards it: w' = w_avg + psi (w - w_avg), for the first
    ``truncation_cutoff`` ws only when a cutoff is given.
    """

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        num_ws: int = 8,  # how many copies of w the synthesis network consumes
        num_layers: int = 8,  # 8 in the paper, 2 in NVIDIA's cifar config
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(
            *(FullyConnected(a, b, lr_mul=lr_mul, lrelu=True) for a, b in zip(features[:-1], features[1:]))
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,  # truncate only ws[:, :cutoff]; None = all
        update_w_avg: bool = True,  # False for the extra mapping of style mixing, as NVIDIA does
    ) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of shape [N, {self.z_dim}], got {tuple(z.shape)}")
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        w = self.layers(x)
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws


class Generator(nn.Module):
    """z [N, z_dim] -> image [N, img_channels, resolution, resolution]: ``synthesis(mapping(z))``.

    ``mapping`` and ``synthesis`` are public so that a training step can map once, mix styles
    (``mapping_with_mixing``) and keep ws for the path-length penalty.
    """

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        resolution: int = 32,
        img_channels: int = 3,
        mapping_layers: int = 8,
        channel_base: int = 32768,  # NVIDIA: 32768 (fmaps 1: paper512/1024, cifar), 16384 (paper256)
        channel_max: int = 512,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        conv_clamp: float | None = None,  # clamp activations to +-conv_clamp (NVIDIA: 256 with fp16)
        fused_modconv: bool = False,  # see modulated_conv2d; the default measured faster on CPU
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.resolution, self.img_channels = z_dim, w_dim, resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim, resolution, img_channels, channel_base, channel_max, conv_clamp, fused_modconv
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mul, w_avg_beta)

    def forward(
        self,
        z: Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> Tensor:
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode)

    @property
    def latent_dim(self) -> int:  # what genlab's samplers draw z for
        return self.z_dim

    def mapping_with_mixing(self, z: Tensor, mixing_prob: float) -> Tensor:
        """ws of z, where with probability ``mixing_prob`` ws[:, cutoff:] come from a second random z."""
        ws = self.mapping(z)
        if mixing_prob <= 0:
            return ws
        cutoff = draw_mixing_cutoff(self.num_ws, mixing_prob, device=z.device)
        return mix_styles(ws, self.mapping(torch.randn_like(z), update_w_avg=False), cutoff)


def draw_mixing_cutoff(num_ws: int, prob: float, device: torch.device | str | None = None) -> Tensor:
    """NVIDIA's style-mixing draw, one per batch: uniform in [1, num_ws - 1] with probability
    ``prob``, else num_ws (no mixing). A 0-dim tensor, so a GPU step does not wait on it."""
    cutoff = torch.randint(1, num_ws, (), device=device)
    return torch.where(torch.rand((), device=device) < prob, cutoff, torch.full_like(cutoff, num_ws))


def mix_styles(ws: Tensor, ws_other: Tensor, cutoff: Tensor | int) -> Tensor:
    """ws[:, :cutoff] from ``ws`` and ws[:, cutoff:] from ``ws_other`` (both [N, num_ws, w_dim])."""
    layer = torch.arange(ws.shape[1], device=ws.device)
    return torch.where((layer >= torch.as_tensor(cutoff, device=ws.device)).view(1, -1, 1), ws_other, ws)


# --- Discriminator -----------------------------------------------------------------------------


class MinibatchStd(nn.Module):
    """Appends the stddev over groups of samples, averaged over channels and pixels (Karras et al. 2018).

    Sample i joins group i mod ceil(N / G), G = min(group_size, N), which is NVIDIA's layout when G
    divides N. NVIDIA's reshape fails otherwise; here the last groups are one sample short instead.
    """

    def __init__(self, group_size: int | None = 4, num_channels: int = 1):  # group_size None = whole batch
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size is None else min(self.group_size, n)
        groups = -(-n // g)
        f = self.num_channels
        y = F.pad(x, (0, 0, 0, 0, 0, 0, 0, groups * g - n)).view(g, groups, f, c // f, h, w)
        real = (torch.arange(groups * g, device=x.device) < n).to(x.dtype).view(g, groups, 1, 1, 1, 1)
        count = real.sum(dim=0)
        mean = (y * real).sum(dim=0) / count
        var = ((y - mean).square() * real).sum(dim=0) / count
        std = (var + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [groups, F]
        std = std.repeat(g, 1)[:n]  # row i is group i mod groups
        return torch.cat([x, std.view(n, f, 1, 1).expand(n, f, h, w)], dim=1)


class DiscriminatorBlock(nn.Module):
    """[FromRGB], conv0 3x3, conv1 3x3 with FIR down x2; ``residual`` adds a 1x1 FIR-down skip and
    scales both branches by sqrt(0.5) (NVIDIA's 'resnet'; ``residual=False`` is their 'orig')."""

    def __init__(
        self,
        in_channels: int,  # 0 = the first block, which reads the image through FromRGB
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        residual: bool = True,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.fromrgb = (
            Conv(img_channels, tmp_channels, 1, lrelu=True, conv_clamp=conv_clamp) if in_channels == 0 else None
        )
        self.conv0 = Conv(tmp_channels, tmp_channels, 3, lrelu=True, conv_clamp=conv_clamp)
        self.conv1 = Conv(tmp_channels, out_channels, 3, lrelu=True, down=True, conv_clamp=conv_clamp)
        self.skip = Conv(tmp_channels, out_channels, 1, bias=False, down=True) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        if self.skip is None:
            return self.conv1(self.conv0(x))
        gain = math.sqrt(0.5)
        return self.skip(x, gain=gain) + self.conv1(self.conv0(x), gain=gain)


class Discriminator(nn.Module):
    """image [N, img_channels, resolution, resolution] -> one logit per image [N].

    Blocks halve the resolution down to 4x4; the epilogue appends minibatch stddev, then conv 3x3,
    FC (lrelu) and a linear FC to 1.
    """

    def __init__(
        self,
        resolution: int = 32,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        residual: bool = True,  # NVIDIA's cifar config uses False ('orig')
        mbstd_group_size: int | None = 4,  # NVIDIA: min(4, batch per GPU); 32 in the cifar config
        mbstd_channels: int = 1,  # 0 = no minibatch stddev
        conv_clamp: float | None = None,
    ):
        super().__init__()
        log2 = check_resolution(resolution)
        self.resolution, self.img_channels = resolution, img_channels
        blocks = []
        for res in (2**i for i in range(log2, 2, -1)):
            tmp = channels_at(res, channel_base, channel_max)
            out = channels_at(res // 2, channel_base, channel_max)
            blocks.append(
                DiscriminatorBlock(tmp if res < resolution else 0, tmp, out, img_channels, residual, conv_clamp)
            )
        self.blocks = nn.Sequential(*blocks)
        c = channels_at(4, channel_base, channel_max)
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_channels) if mbstd_channels > 0 else nn.Identity()
        self.conv = Conv(c + mbstd_channels, c, 3, lrelu=True, conv_clamp=conv_clamp)
        self.fc = FullyConnected(c * 16, c, lrelu=True)
        self.out = FullyConnected(c, 1)

    def forward(self, img: Tensor) -> Tensor:
        expected = (self.img_channels, self.resolution, self.resolution)
        if img.dim() != 4 or img.shape[1:] != expected:
            raise ValueError(f"expected images of shape [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}")
        x = self.conv(self.mbstd(self.blocks(img)))
        return self.out(self.fc(x.flatten(1))).squeeze(1)
