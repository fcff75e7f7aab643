"""What restoration undoes: y = degrade(x), made on the fly from clean images (``degradation=...``).

A degradation is a small callable ``(clean [C, H, W] in [-1, 1], generator) -> dict`` whose
``"degraded"`` is the model input y, plus ``"mask"`` [1, H, W] (1 = missing pixel) for inpainting
and whatever else a non-blind method may use (``"sigma"``, ``"kernel"``). Every random choice
comes from the given ``torch.Generator``: the same seed gives the same y, which is how validation
pairs stay fixed across runs (:class:`DegradedPairs`).

Each class says what it feeds, as attributes the model config interpolates:

- ``inpaint``: y has holes and the model is called as ``restore(y, mask)``; else ``restore(y)``.
- ``scale``: y is ``scale`` times smaller than x (super-resolution); 1 otherwise.

The YAMLs spell both out (``${degradation.inpaint}``, ``${degradation.scale}``); the constructors
accept them and refuse values that contradict what the class does.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from genlab.data import masks
from genlab.data.masks import randint, uniform

Range = float | Sequence[float]


def as_range(value: Range, name: str) -> tuple[float, float]:
    """A fixed value or a [low, high] range, as (low, high)."""
    low, high = (value, value) if isinstance(value, int | float) else tuple(value)
    if low > high:
        raise ValueError(f"{name}=[{low}, {high}]: the range must be [low, high] with low <= high")
    return float(low), float(high)


def check_image(clean: torch.Tensor, who: str) -> None:
    if clean.dim() != 3:
        raise ValueError(f"{who} degrades one image [C, H, W]; got a tensor of shape {tuple(clean.shape)}")


class Degradation:
    """Base class: subclasses set ``inpaint``/``scale``/``outputs`` and implement ``__call__``."""

    inpaint: bool = False  # True: the output carries "mask" and feeds restore(y, mask)
    scale: int = 1  # y is H/scale x W/scale
    outputs: tuple[str, ...] = ("degraded",)  # the keys __call__ returns

    def __init__(self, inpaint: bool | None = None, scale: int | None = None, seed: int = 0):
        for key, given in (("inpaint", inpaint), ("scale", scale)):
            actual = getattr(self, key)
            if given is not None and given != actual:
                raise ValueError(
                    f"{type(self).__name__} has {key}={actual}, but its config says {key}={given}; "
                    f"set {key}: {str(actual).lower()} in the degradation's YAML"
                )
        self.seed = seed  # seeds the validation draws (DegradedPairs)

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(inpaint={self.inpaint}, scale={self.scale})"


# ---------------------------------------------------------------------------------------------
# Holes: y = (1 − m)·x, missing pixels grey (0)
# ---------------------------------------------------------------------------------------------


class Inpainting(Degradation):
    inpaint = True
    outputs = ("degraded", "mask")

    def draw_mask(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, clean, generator):
        check_image(clean, type(self).__name__)
        mask = self.draw_mask(clean.shape[-2], clean.shape[-1], generator)
        return {"degraded": clean * (1 - mask), "mask": mask}


class InpaintBox(Inpainting):
    """One rectangular hole, each side a fraction in ``size`` of the image's (e.g. the centre-ish
    holes of Context Encoders, Pathak et al. 2016, arXiv:1604.07379)."""

    def __init__(self, size: Range = (0.25, 0.5), **kwargs):
        super().__init__(**kwargs)
        self.size = as_range(size, "size")
        if not 0 < self.size[0] <= self.size[1] <= 1:
            raise ValueError(f"size={list(self.size)}: box sides are fractions of the image side in (0, 1]")

    def draw_mask(self, height, width, generator):
        return masks.box_mask(height, width, generator, self.size)


class InpaintFreeForm(Inpainting):
    """DeepFill v2 free-form brush strokes (Yu et al. 2019, arXiv:1806.03589): 1–3 strokes of
    4–11 vertices, brush 12–40 px wide at 256 px, scaled to the image size."""

    def __init__(
        self,
        strokes: Sequence[int] = (1, 3),  # strokes per mask, inclusive range
        vertices: Sequence[int] = (4, 11),  # vertices per stroke, inclusive range
        brush_width: Range = (12, 40),  # px at 256 px images
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.strokes, self.vertices = tuple(strokes), tuple(vertices)
        self.brush_width = as_range(brush_width, "brush_width")

    def draw_mask(self, height, width, generator):
        return masks.free_form_mask(height, width, generator, self.strokes, self.vertices, self.brush_width)


class InpaintLaMa(Inpainting):
    """LaMa's random masks (Suvorov et al. 2022, arXiv:2109.07161): strokes, or with weight
    ``box_proba`` (against 1 for strokes) boxes; masks covering more than ``max_coverage`` are
    redrawn. conf/degradation/inpaint_lama{,_medium,_thin}.yaml hold the thick/medium/thin sets."""

    def __init__(
        self,
        irregular: dict,  # min_times, max_times, max_width, max_len, max_angle (px at 256)
        box: dict | None = None,  # margin, bbox_min_size, bbox_max_size, min_times, max_times
        box_proba: float = 0.0,
        max_coverage: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.irregular, self.box = dict(irregular), dict(box) if box else None
        self.box_proba, self.max_coverage = box_proba, max_coverage

    def draw_mask(self, height, width, generator):
        return masks.lama_mask(height, width, generator, self.irregular, self.box, self.box_proba, self.max_coverage)


# ---------------------------------------------------------------------------------------------
# Pixel-wise and blur degradations (same size)
# ---------------------------------------------------------------------------------------------


class GaussianNoise(Degradation):
    """Additive white Gaussian noise, y = x + (σ/127.5)·n, n ~ N(0, I): σ on the 0–255 scale (σ = 25
    is DnCNN-S's setting, Zhang et al. 2017, arXiv:1608.03981); a [low, high] range draws σ uniformly
    per image (blind training, DnCNN-B: [0, 55])."""

    outputs = ("degraded", "sigma")

    def __init__(
        self,
        sigma: Range = 25.0,
        clip: bool = False,  # false = the denoising benchmarks' convention: y may leave [-1, 1]
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sigma = as_range(sigma, "sigma")
        if self.sigma[0] < 0:
            raise ValueError(f"sigma={list(self.sigma)}: noise levels are >= 0 (0-255 scale)")
        self.clip = clip

    def __call__(self, clean, generator):
        check_image(clean, "GaussianNoise")
        sigma = uniform(generator, *self.sigma)
        noisy = clean + sigma / 127.5 * torch.randn(clean.shape, generator=generator)
        return {"degraded": noisy.clamp(-1, 1) if self.clip else noisy, "sigma": torch.tensor(sigma)}


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``image`` [C, H, W] convolved (a true convolution, as scipy's) with ``kernel`` [k, k] (k odd),
    borders reflected; same size out. Through the FFT: a 21² kernel costs 20x less than conv2d."""
    pad = kernel.shape[-1] // 2
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    x = F.pad(image[None], (pad, pad, pad, pad), mode=mode)[0]
    size = x.shape[-2:]
    full = torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(kernel, s=size), s=size)
    # Circular = linear here: the output of pixel (i, j) sits at (i + 2·pad, j + 2·pad) and wraps nothing.
    return full[..., 2 * pad :, 2 * pad :]


class Blur(Degradation):
    """Convolution with a random normalised kernel of ``kernel_size`` (odd), reflect-padded, then
    optional noise of σ ``noise`` (0–255 scale). The kernel is returned: deconvolution baselines
    (Wiener, Richardson–Lucy) are non-blind."""

    outputs = ("degraded", "kernel")

    def __init__(self, kernel_size: int = 21, noise: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: blur kernels need an odd size (a centre pixel)")
        self.kernel_size, self.noise = kernel_size, noise

    def kernel(self, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, clean, generator):
        check_image(clean, type(self).__name__)
        kernel = self.kernel(generator)
        blurred = convolve(clean, kernel)
        if self.noise > 0:
            blurred = blurred + self.noise / 127.5 * torch.randn(blurred.shape, generator=generator)
        return {"degraded": blurred, "kernel": kernel}


class GaussianBlur(Blur):
    """Isotropic Gaussian kernel, σ (px) drawn from ``sigma``."""

    def __init__(self, sigma: Range = (1.0, 3.0), kernel_size: int = 21, **kwargs):
        super().__init__(kernel_size=kernel_size, **kwargs)
        self.sigma = as_range(sigma, "sigma")
        if 3 * self.sigma[1] > kernel_size // 2:
            raise ValueError(
                f"kernel_size={kernel_size} truncates a Gaussian of sigma {self.sigma[1]} (needs 3 sigma each side); "
                f"use kernel_size >= {2 * math.ceil(3 * self.sigma[1]) + 1}"
            )

    def kernel(self, generator):
        sigma = uniform(generator, *self.sigma)
        r = torch.arange(self.kernel_size, dtype=torch.float32) - self.kernel_size // 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
        k = g[:, None] * g[None, :]
        return k / k.sum()


class MotionBlur(Blur):
    """Linear camera shake: a segment of ``length`` px (drawn from the range) at a uniform angle,
    through the kernel's centre, rasterised with bilinear weights."""

    def __init__(self, length: Range = (5.0, 15.0), kernel_size: int = 21, **kwargs):
        super().__init__(kernel_size=kernel_size, **kwargs)
        self.length = as_range(length, "length")
        if self.length[1] > kernel_size - 1:
            raise ValueError(f"length up to {self.length[1]} px does not fit kernel_size={kernel_size}; enlarge it")

    def kernel(self, generator):
        length = uniform(generator, *self.length)
        angle = uniform(generator, 0, math.pi)
        t = torch.linspace(-length / 2, length / 2, max(2, 4 * math.ceil(length) + 1))
        c = self.kernel_size // 2
        xs, ys = c + t * math.cos(angle), c + t * math.sin(angle)
        k = torch.zeros(self.kernel_size, self.kernel_size)
        x0, y0 = xs.floor().long(), ys.floor().long()
        fx, fy = xs - x0, ys - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = (x0 + dx).clamp(0, self.kernel_size - 1), (y0 + dy).clamp(0, self.kernel_size - 1)
            k.index_put_((yi, xi), w, accumulate=True)
        return k / k.sum()


# ---------------------------------------------------------------------------------------------
# Resampling and compression
# ---------------------------------------------------------------------------------------------


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> H x W (x C) uint8, as an image file would hold it."""
    array = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def from_uint8(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.asarray(array, dtype=np.float32))
    tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    return tensor / 127.5 - 1


class Downsample(Degradation):
    """Bicubic ×``scale`` downsampling with antialiasing (PIL's Keys cubic, a = −0.5, as MATLAB's
    ``imresize`` that made the DIV2K / Set5 low-resolution images), clamped to [-1, 1]."""

    def __init__(self, scale: int = 2, **kwargs):
        if scale not in (2, 3, 4):
            raise ValueError(f"scale={scale}: super-resolution degradations are x2, x3 or x4")
        self.scale = scale  # before the base class checks the YAML's `scale` against it
        super().__init__(scale=scale, **kwargs)

    def __call__(self, clean, generator):
        check_image(clean, "Downsample")
        h, w = clean.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(
                f"Downsample x{self.scale} needs image sides divisible by {self.scale}, got {h}x{w}; "
                f"use a data.image_size that is a multiple of {self.scale}"
            )
        size = (w // self.scale, h // self.scale)
        channels = [
            np.asarray(Image.fromarray(c.numpy().astype(np.float32), mode="F").resize(size, Image.BICUBIC))
            for c in clean
        ]
        return {"degraded": torch.from_numpy(np.stack(channels)).clamp(-1, 1)}


class JPEG(Degradation):
    """A real JPEG encode/decode (PIL, libjpeg, 4:2:0 chroma for RGB) at a quality drawn from
    ``quality`` (integers, inclusive; ARCNN/DnCNN evaluate 10, 20, 30, 40)."""

    def __init__(self, quality: Range = (10, 40), **kwargs):
        super().__init__(**kwargs)
        low, high = as_range(quality, "quality")
        if not 1 <= low <= high <= 100:
            raise ValueError(f"quality={[low, high]}: JPEG qualities lie in [1, 100]")
        self.quality = (int(low), int(high))

    def __call__(self, clean, generator):
        check_image(clean, "JPEG")
        if clean.shape[0] not in (1, 3):
            raise ValueError(f"JPEG encodes grey or RGB images, got {clean.shape[0]} channels")
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(clean)).save(buffer, format="JPEG", quality=randint(generator, *self.quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return {"degraded": from_uint8(np.asarray(decoded))}


# ---------------------------------------------------------------------------------------------
# Combinations
# ---------------------------------------------------------------------------------------------


class OneOf(Degradation):
    """One of ``choices`` per image, picked with probabilities ``p`` (default uniform); all choices
    must feed the same surface (inpaint, scale) and return the same keys, so batches collate."""

    def __init__(self, choices: Sequence[Degradation], p: Sequence[float] | None = None, **kwargs):
        choices = list(choices)
        if not choices:
            raise ValueError("OneOf needs at least one choice")
        for attribute in ("inpaint", "scale", "outputs"):
            values = {getattr(c, attribute) for c in choices}
            if len(values) > 1:
                raise ValueError(f"OneOf's choices disagree on {attribute}: {values}; {choices}")
        self.inpaint, self.scale, self.outputs = choices[0].inpaint, choices[0].scale, choices[0].outputs
        super().__init__(**kwargs)
        weights = torch.tensor(p if p is not None else [1.0] * len(choices), dtype=torch.float64)
        if len(weights) != len(choices) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"p={p}: one non-negative weight per choice, not all zero")
        self.choices, self.p = choices, weights / weights.sum()

    def __call__(self, clean, generator):
        i = int(torch.multinomial(self.p, 1, generator=generator))
        return self.choices[i](clean, generator)


class Chain(Degradation):
    """A random sequence of ``steps``: each same-size step is applied with probability ``p`` (at least
    one step always is), in a random order; resampling steps are always applied, so y's size is
    fixed. ``scale`` is the product of the steps' scales. Returns "degraded" only."""

    def __init__(self, steps: Sequence[Degradation], p: float = 0.5, shuffle: bool = True, **kwargs):
        steps = list(steps)
        if not steps:
            raise ValueError("Chain needs at least one step")
        if any(s.inpaint for s in steps):
            raise ValueError("Chain steps cannot be inpainting degradations (their masks would be degraded too)")
        self.scale = math.prod(s.scale for s in steps)
        super().__init__(**kwargs)
        self.steps, self.p, self.shuffle = steps, p, shuffle

    def __call__(self, clean, generator):
        optional = [i for i, s in enumerate(self.steps) if s.scale == 1]
        chosen = {i for i in optional if torch.rand((), generator=generator).item() < self.p}
        if optional and not chosen:  # never the clean image itself
            chosen.add(optional[randint(generator, 0, len(optional) - 1)])
        chosen |= {i for i, s in enumerate(self.steps) if s.scale > 1}
        n = len(self.steps)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        y = clean
        for i in order:
            if i in chosen:
                y = self.steps[i](y, generator)["degraded"]
        return {"degraded": y}


# ---------------------------------------------------------------------------------------------
# Pairs for training and validation
# ---------------------------------------------------------------------------------------------


def validation_seed(seed: int, index: int) -> int:
    """A well-mixed seed for item ``index`` of a validation set: independent of batch size,
    worker count and order, so validation numbers compare across runs."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DegradedPairs(Dataset):
    """Item i = {"clean": x, "degraded": y, ...the degradation's other outputs ("mask", ...)}
    for the image x of item i of ``images`` (an (image, label) dataset).

    Training (``fixed=False``) draws a new degradation on every access from torch's default RNG,
    which ``seed_everything(workers=True)`` seeds per worker; validation (``fixed=True``) draws
    item i from a generator seeded with (``degradation.seed``, i).
    """

    def __init__(self, images: Dataset, degradation: Degradation, fixed: bool):
        self.images, self.degradation, self.fixed = images, degradation, fixed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.images[i]
        clean = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(clean, torch.Tensor) or clean.dim() != 3:
            raise TypeError(
                f"degradations apply to single-domain image datasets (items (image [C, H, W], label)); "
                f"{type(self.images).__name__} yields {type(item).__name__}"
            )
        seed = (
            validation_seed(self.degradation.seed, i)
            if self.fixed
            else int(torch.randint(0, 2**62, (), dtype=torch.int64))
        )
        return {"clean": clean, **self.degradation(clean, torch.Generator().manual_seed(seed))}
