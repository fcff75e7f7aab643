"""The classical methods a restorer must beat, as pure functions with one signature per task.

Users judge a restoration model by whether it beats what they already have; these are those
tools, with standard parameters, on the framework's tensors (``y`` [N, C, H, W] or [C, H, W] in
[-1, 1]; the result has y's layout, in [-1, 1]-scale floats):

    inpainting    f(y, mask) -> x̂          mask [N, 1, H, W] (or [1, H, W]), 1 = missing
    denoising     f(y, sigma=None) -> x̂    sigma on the 0-255 scale; None = estimated (wavelet MAD)
    upscaling     f(y, scale) -> x̂         x̂ is scale times larger
    deblurring    f(y, kernel) -> x̂        kernel [k, k] or one per image [N, k, k]: non-blind

Each task's methods are in a table (:data:`INPAINTING`, :data:`DENOISING`, :data:`UPSCALING`,
:data:`DEBLURRING`) that the benchmark iterates. Parameters (the docstrings say which and why) are
the libraries' documented choices or, where a library leaves a trade-off to the user, a value
picked once on a training photograph (astronaut) at the default degradation, never on the
validation photographs.

OpenCV (``cv2``) and PyWavelets (``pywt``, for the wavelet denoiser and the σ estimate) are imported
when first used, with an error that names the package to install.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

Array = np.ndarray


def _per_image(y: torch.Tensor, fn: Callable[[int, Array], Array]) -> torch.Tensor:
    """Run ``fn(i, image)`` on each image as H x W x C float64 in [0, 1]; results back to [-1, 1]."""
    single = y.dim() == 3
    batch = (y[None] if single else y).detach().cpu().double()
    out = [
        torch.from_numpy(np.ascontiguousarray(fn(i, ((image + 1) / 2).permute(1, 2, 0).numpy())))
        for i, image in enumerate(batch)
    ]
    result = torch.stack([o[..., None] if o.dim() == 2 else o for o in out]).permute(0, 3, 1, 2) * 2 - 1
    result = result.to(y.dtype)
    return result[0] if single else result


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"this classical method needs `{module}`: pip install {package} (or genlab[dev])") from err


# ---------------------------------------------------------------------------------------------
# Inpainting: f(y, mask)
# ---------------------------------------------------------------------------------------------


def _masks(mask: torch.Tensor, n: int) -> Array:
    masks = mask.detach().cpu().reshape(-1, *mask.shape[-2:]).numpy() > 0.5
    if len(masks) != n:
        raise ValueError(f"{len(masks)} masks for {n} images; give one [1, H, W] mask per image")
    return masks


def _opencv_inpaint(y: torch.Tensor, mask: torch.Tensor, flag_name: str, radius: float) -> torch.Tensor:
    cv2 = _need("cv2", "opencv-python-headless")
    masks = _masks(mask, 1 if y.dim() == 3 else len(y))

    def run(i: int, image: Array) -> Array:
        # cv2.inpaint takes 8-bit images: quantise as an image file would be.
        image8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        image8 = image8[..., 0] if image8.shape[-1] == 1 else image8
        out = cv2.inpaint(image8, masks[i].astype(np.uint8), radius, getattr(cv2, flag_name))
        return out.astype(np.float64) / 255

    return _per_image(y, run)


def inpaint_telea(y: torch.Tensor, mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """OpenCV ``INPAINT_TELEA``: fast marching from the hole's border (Telea 2004). ``radius`` 3 px
    is OpenCV's documented example value."""
    return _opencv_inpaint(y, mask, "INPAINT_TELEA", radius)


def inpaint_ns(y: torch.Tensor, mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """OpenCV ``INPAINT_NS``: Navier–Stokes isophote continuation (Bertalmio et al. 2001)."""
    return _opencv_inpaint(y, mask, "INPAINT_NS", radius)


def inpaint_biharmonic(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scikit-image ``inpaint_biharmonic``: the smoothest (biharmonic) fill of each hole (Damelin &
    Hoang 2018); no parameters."""
    from skimage.restoration import inpaint_biharmonic as biharmonic

    masks = _masks(mask, 1 if y.dim() == 3 else len(y))
    return _per_image(y, lambda i, image: biharmonic(image, masks[i], channel_axis=-1))


INPAINTING: dict[str, Callable[..., torch.Tensor]] = {
    "opencv_telea": inpaint_telea,
    "opencv_ns": inpaint_ns,
    "biharmonic": inpaint_biharmonic,
}


# ---------------------------------------------------------------------------------------------
# Denoising: f(y, sigma=None), sigma on the 0-255 scale
# ---------------------------------------------------------------------------------------------


def estimate_sigma(image: Array) -> float:
    """σ of white Gaussian noise in a [0, 1] image H x W x C (scikit-image's wavelet MAD, Donoho &
    Johnstone 1994), on the [0, 1] scale."""
    _need("pywt", "PyWavelets")
    from skimage.restoration import estimate_sigma as skimage_estimate

    return float(skimage_estimate(image, channel_axis=-1, average_sigmas=True))


def _denoise(y: torch.Tensor, sigma: float | None, fn: Callable[[Array, float], Array]) -> torch.Tensor:
    """``fn(image, σ)`` per image, σ on the [0, 1] scale: the known one or each image's estimate."""
    return _per_image(y, lambda i, image: fn(image, sigma / 255 if sigma is not None else estimate_sigma(image)))


def denoise_tv(y: torch.Tensor, sigma: float | None = None, weight_per_sigma: float = 1.0) -> torch.Tensor:
    """Total-variation denoising, Chambolle's projection (2004), ``weight`` = 1.0·σ: scikit-image
    leaves the weight to the user; 1.0·σ was best of {0.5, 1, 2}·σ on astronaut at σ = 25."""
    from skimage.restoration import denoise_tv_chambolle

    return _denoise(y, sigma, lambda im, s: denoise_tv_chambolle(im, weight=weight_per_sigma * s, channel_axis=-1))


def denoise_bilateral(
    y: torch.Tensor,
    sigma: float | None = None,
    color_per_sigma: float | None = None,  # None = 1.0 (grey) or 0.5 (RGB)
    sigma_spatial: float | None = None,  # px; None = 1 (grey) or 2 (RGB)
) -> torch.Tensor:
    """Bilateral filter (Tomasi & Manduchi 1998), scikit-image's window (3 σ_spatial). Range σ_color =
    1.0·σ and σ_spatial = 1 px for grey, 0.5·σ and 2 px for RGB (whose colour distance sums three
    channels): the best of σ_color ∈ {0.25, 0.5, 1, 1.5, 2, 3}·σ × σ_spatial ∈ {0.75, 1, 1.5, 2, 3} on
    astronaut at σ = 25."""
    from skimage.restoration import denoise_bilateral as bilateral

    def run(im: Array, s: float) -> Array:
        grey = im.shape[-1] == 1
        color = color_per_sigma if color_per_sigma is not None else (1.0 if grey else 0.5)
        spatial = sigma_spatial if sigma_spatial is not None else (1.0 if grey else 2.0)
        # scikit-image wants a 2-D grey image (it warns about a single channel axis)
        out = bilateral(
            im[..., 0] if grey else im, sigma_color=color * s, sigma_spatial=spatial, channel_axis=None if grey else -1
        )
        return out[..., None] if grey else out

    return _denoise(y, sigma, run)


def denoise_wavelet(y: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Wavelet shrinkage, BayesShrink soft thresholds (Chang et al. 2000) with σ given, in YCbCr for
    colour: scikit-image's documented example settings (db1, rescale_sigma)."""
    _need("pywt", "PyWavelets")
    from skimage.restoration import denoise_wavelet as wavelet

    def run(im: Array, s: float) -> Array:
        colour = im.shape[-1] == 3
        return wavelet(im, sigma=s, method="BayesShrink", mode="soft", convert2ycbcr=colour, channel_axis=-1)

    return _denoise(y, sigma, run)


def denoise_nl_means(y: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Non-local means (Buades et al. 2005), scikit-image's documented fast setting: 5×5 patches,
    search distance 6, h = 0.8·σ with σ subtracted from the patch distances."""
    from skimage.restoration import denoise_nl_means as nl_means

    return _denoise(
        y,
        sigma,
        lambda im, s: nl_means(im, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1),
    )


DENOISING: dict[str, Callable[..., torch.Tensor]] = {
    "tv_chambolle": denoise_tv,
    "bilateral": denoise_bilateral,
    "wavelet": denoise_wavelet,
    "nl_means": denoise_nl_means,
}


# ---------------------------------------------------------------------------------------------
# Upscaling: f(y, scale)
# ---------------------------------------------------------------------------------------------


def _pil_upscale(y: torch.Tensor, scale: int, resample: int) -> torch.Tensor:
    def run(i: int, image: Array) -> Array:
        h, w = image.shape[:2]
        channels = [
            np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((w * scale, h * scale), resample))
            for c in np.moveaxis(image, -1, 0)
        ]
        return np.stack(channels, axis=-1).astype(np.float64)

    return _per_image(y, run)


def upscale_bicubic(y: torch.Tensor, scale: int) -> torch.Tensor:
    """PIL bicubic (Keys, a = −0.5), in floats: the baseline every super-resolution paper reports."""
    return _pil_upscale(y, scale, Image.BICUBIC)


def upscale_lanczos(y: torch.Tensor, scale: int) -> torch.Tensor:
    """PIL Lanczos-3, in floats."""
    return _pil_upscale(y, scale, Image.LANCZOS)


UPSCALING: dict[str, Callable[..., torch.Tensor]] = {"bicubic": upscale_bicubic, "lanczos": upscale_lanczos}


# ---------------------------------------------------------------------------------------------
# Deblurring: f(y, kernel), the kernel known
# ---------------------------------------------------------------------------------------------


def _deconvolve(y: torch.Tensor, kernel: torch.Tensor, fn: Callable[[Array, Array], Array]) -> torch.Tensor:
    """``fn(channel, psf)`` per channel on the image reflect-padded by the kernel size (scikit-image
    deconvolves with circular or zero borders; the blur reflected them), cropped back."""
    kernels = kernel.detach().cpu().double().reshape(-1, *kernel.shape[-2:]).numpy()
    n = 1 if y.dim() == 3 else len(y)
    if len(kernels) not in (1, n):
        raise ValueError(f"{len(kernels)} kernels for {n} images; give one [k, k] kernel or one per image")

    def run(i: int, image: Array) -> Array:
        psf = kernels[i if len(kernels) > 1 else 0]
        p = psf.shape[-1]
        padded = np.pad(image, ((p, p), (p, p), (0, 0)), mode="reflect")
        out = np.stack([fn(padded[..., c], psf) for c in range(image.shape[-1])], axis=-1)
        return out[p:-p, p:-p]

    return _per_image(y, run)


def deblur_richardson_lucy(y: torch.Tensor, kernel: torch.Tensor, num_iter: int = 30) -> torch.Tensor:
    """Richardson–Lucy (1972/1974) maximum-likelihood deconvolution, 30 iterations: scikit-image's
    documented example."""
    from skimage.restoration import richardson_lucy

    return _deconvolve(y, kernel, lambda c, psf: richardson_lucy(np.clip(c, 0, 1), psf, num_iter=num_iter))


def deblur_wiener(y: torch.Tensor, kernel: torch.Tensor, balance: float = 0.05) -> torch.Tensor:
    """Wiener–Hunt deconvolution with a Laplacian regulariser (scikit-image ``wiener``), balance
    0.05: the best mean of {0.001, 0.01, 0.02, 0.05, 0.1} on astronaut under the default blur
    (Gaussian kernels favour 0.01, motion kernels 0.1)."""
    from skimage.restoration import wiener

    return _deconvolve(y, kernel, lambda c, psf: wiener(c, psf, balance=balance))


DEBLURRING: dict[str, Callable[..., torch.Tensor]] = {
    "richardson_lucy": deblur_richardson_lucy,
    "wiener": deblur_wiener,
}
