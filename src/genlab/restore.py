"""What ``python restore.py ckpt=... input=FILE_OR_DIR [mask=FILE_OR_DIR] [out=DIR]`` does.

Restores photographs of any size, grey or RGB (converted to what the model was trained on), and
writes PNGs named after the inputs (folder structure kept; translate.py's names for collisions).
Masks are images the size of their photograph where any non-zero value marks a missing pixel: one
file for every input, or a folder holding, for each input, a mask with the same relative path and
name (any image extension). An inpainting checkpoint refuses to run without masks, others refuse
masks; super-resolution writes images ``scale`` times larger.

Above ``tile_pixels`` input pixels an image is restored in square tiles that overlap by ``overlap``
pixels, blended with linear ramps across the middle of each overlap: memory stays bounded, and the
result is the untiled one wherever the network's receptive radius is at most overlap/4 (smoothly
blended beyond). Known pixels are put back exactly afterwards.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from genlab import surfaces
from genlab.checkpoint import load_model, load_run_config
from genlab.data.degradations import to_uint8
from genlab.data.folder import IMAGE_EXTENSIONS, find_images
from genlab.data.transforms import to_model_input
from genlab.errors import ConfigError, UserError
from genlab.generate import pick_device
from genlab.translate import output_names

# ------------------------------------------------------------------------------------------ tiles


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Offsets of tiles of ``tile`` px every ``stride`` px covering ``length`` px, the last flush with the end."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def ramp(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """Blending weights along one side of a tile. At an inner edge: 0 over the outer quarter of the
    overlap (pixels whose context the tile cut off), rising linearly over its middle half, 1 beyond;
    1 at the image's own edges (``first``/``last``). Where the network's receptive radius is at most
    overlap/4, every weighted pixel saw its whole context, and tiling changes nothing."""
    margin = overlap // 4
    rise = torch.arange(1, overlap - 2 * margin + 1, dtype=torch.float32) / (overlap - 2 * margin + 1)
    edge = torch.cat([torch.zeros(margin), rise])[:length]
    weight = torch.ones(length)
    if not first:
        weight[: len(edge)] = torch.minimum(weight[: len(edge)], edge)
    if not last:
        weight[length - len(edge) :] = torch.minimum(weight[length - len(edge) :], edge.flip(0))
    return weight


def restore_tiled(
    model, y: torch.Tensor, mask: torch.Tensor | None, scale: int, tile_pixels: int | None, overlap: int
) -> torch.Tensor:
    """``model.restore(y, mask)`` for y [N, C, H, W], in overlapping tiles of at most ``tile_pixels``
    input pixels when y is larger (None = never tile)."""
    h, w = y.shape[-2:]
    if tile_pixels is None or h * w <= tile_pixels:
        return model.restore(y, mask).cpu()
    side = math.isqrt(tile_pixels)
    if side <= 2 * overlap:
        raise ConfigError(
            f"tile_pixels={tile_pixels} gives {side} px tiles, too small for overlap={overlap}; "
            f"use tile_pixels >= {(2 * overlap + 1) ** 2} or a smaller overlap"
        )
    tops, lefts = tile_starts(h, side, side - overlap), tile_starts(w, side, side - overlap)
    out = torch.zeros(y.shape[0], y.shape[1], h * scale, w * scale)
    total = torch.zeros(1, 1, h * scale, w * scale)
    for top in tops:
        for left in lefts:
            rows, cols = slice(top, top + side), slice(left, left + side)
            tile = model.restore(y[..., rows, cols], None if mask is None else mask[..., rows, cols]).cpu()
            th, tw = tile.shape[-2:]
            weight = ramp(th, overlap * scale, top == tops[0], top == tops[-1])[:, None] * ramp(
                tw, overlap * scale, left == lefts[0], left == lefts[-1]
            )
            at = (..., slice(top * scale, top * scale + th), slice(left * scale, left * scale + tw))
            out[at] += tile * weight
            total[at] += weight
    out = out / total
    # Blending is a weighted mean; put the known pixels back bit for bit.
    return out if mask is None else torch.where(mask.cpu() > 0, out, y.cpu())


# ------------------------------------------------------------------------------------------ files


def input_files(source: Path, key: str) -> tuple[list[Path], Path]:
    """(image files, the root their output names are relative to) for a file or a folder."""
    if source.is_file():
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ConfigError(f"{key}={source} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        return [source], source.parent
    return find_images(source, key=key), source


def match_masks(mask: Path, files: list[Path], root: Path) -> list[Path]:
    """The mask of each input: ``mask`` itself when it is a file, else the image in the ``mask`` folder
    with the input's relative path and name (any image extension)."""
    if mask.is_file():
        input_files(mask, "mask")  # an image, or a clear error
        return [mask] * len(files)
    by_name: dict[Path, list[Path]] = {}
    for path in find_images(mask, key="mask"):
        by_name.setdefault(path.relative_to(mask).with_suffix(""), []).append(path)
    matched, missing = [], []
    for path in files:
        name = path.relative_to(root).with_suffix("")
        found = by_name.get(name, [])
        if len(found) > 1:
            raise UserError(
                f"mask={mask}: {len(found)} masks for {path} ({', '.join(str(f) for f in found)}); keep one"
            )
        if not found:
            missing.append(path)
        matched.extend(found)
    if missing:
        example = missing[0].relative_to(root).with_suffix(".png")
        raise UserError(
            f"mask={mask} has no mask for {len(missing)} of {len(files)} input image(s), e.g. {missing[0]}; "
            f"masks are matched by name: {mask / example} (any image extension) marks the holes of {missing[0]}"
        )
    return matched


def read_mask(path: Path, size: tuple[int, int], image: Path) -> torch.Tensor:
    """[1, 1, H, W], 1 where any channel of the mask file is non-zero; its size must be the image's."""
    with Image.open(path) as im:
        if im.mode not in ("1", "L", "I", "I;16", "F", "RGB"):
            im = im.convert("RGB")  # palette, alpha: what is drawn, not its transparency
        array = np.asarray(im)
    if array.shape[:2] != size:
        raise UserError(
            f"mask {path} is {array.shape[1]}x{array.shape[0]} px but image {image} is {size[1]}x{size[0]}; "
            "a mask must be the size of its image"
        )
    missing = array != 0 if array.ndim == 2 else (array != 0).any(axis=-1)
    return torch.from_numpy(missing.astype(np.float32))[None, None]


def run(cfg: DictConfig) -> Path:
    device = pick_device(cfg.device)
    model = load_model(cfg.ckpt, map_location=device)
    surfaces.require(model, surfaces.Restorer, cfg.ckpt)
    config = load_run_config(cfg.ckpt)
    channels = int(config["data"]["channels"])  # what the model was trained on
    degradation = config.get("degradation") or {}
    inpaint, scale = bool(degradation.get("inpaint", False)), int(degradation.get("scale", 1))
    if cfg.tile_pixels is not None and cfg.tile_pixels < 1 or cfg.overlap < 0:
        raise ConfigError(f"tile_pixels={cfg.tile_pixels}, overlap={cfg.overlap}: pixels per tile >= 1, overlap >= 0")

    files, root = input_files(Path(cfg.input).expanduser(), "input")
    masks = match_masks(Path(cfg.mask).expanduser(), files, root) if cfg.mask else None
    if inpaint and masks is None:
        raise UserError(
            f"{cfg.ckpt} fills holes and needs to know where they are: pass mask=FILE_OR_DIR, images the size "
            "of the inputs where non-zero marks a missing pixel (one file for all, or a folder with a mask "
            "of the same name for each input)"
        )
    if masks is not None and not inpaint:
        raise UserError(
            f"{cfg.ckpt} was trained on {degradation.get('_target_', 'a degradation')} without holes; "
            "it takes no mask: leave mask= out"
        )
    out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "restored"
    to_tensor = to_model_input(None, channels)
    targets = output_names(files, root, out)
    for i, (path, target) in enumerate(zip(files, targets, strict=True)):
        with Image.open(path) as im:
            y = to_tensor(im)[None]
        mask = None if masks is None else read_mask(masks[i], tuple(y.shape[-2:]), path)
        restored = restore_tiled(model, y, mask, scale, cfg.tile_pixels, cfg.overlap)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(restored[0])).save(target)
    what = f"x{scale} upscaled" if scale > 1 else "restored"
    print(f"wrote {len(targets)} {what} image(s) ({'grey' if channels == 1 else 'RGB'}) to {out}")
    return out
