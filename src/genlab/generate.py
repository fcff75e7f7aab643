"""What ``python generate.py ckpt=... n=... out=...`` does: n PNGs in ``out`` and a grid beside it.

The grid is written next to the folder (``<out>_grid.png``), not in it, so that the folder holds
exactly the ``n`` samples that ``evaluate.py fake=<out>`` should read."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from genlab import surfaces
from genlab.callbacks.images import to_grid
from genlab.checkpoint import load_model
from genlab.errors import ConfigError
from genlab.metrics.quality import sample_chunks


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: DictConfig) -> Path:
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: ask for at least one image")
    model = load_model(cfg.ckpt, map_location=pick_device(cfg.device))
    surfaces.require(model, surfaces.Sampler, cfg.ckpt)
    mode, psi = cfg.get("mode", "samples"), cfg.get("truncation_psi")
    style = {} if psi is None else {"truncation_psi": psi}
    if style or mode != "samples":
        surfaces.require(model, surfaces.StyleSampler, cfg.ckpt)
    if mode not in ("samples", "mixing", "interpolate"):
        raise ConfigError(f"mode={mode}: use samples, mixing or interpolate")
    out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "generated"
    out.mkdir(parents=True, exist_ok=True)

    if mode != "samples":  # one figure: the style-mixing grid, or rows of W interpolations
        generator = torch.Generator(device=model.device).manual_seed(cfg.seed)
        rows = max(1, cfg.n // cfg.nrow)
        figure = out / f"{mode}.png"
        if mode == "mixing":
            images, ncol = model.style_mixing_grid(rows, cfg.nrow, generator=generator), cfg.nrow + 1
        else:
            images, ncol = model.interpolate(rows, steps=cfg.nrow, generator=generator), cfg.nrow
        save_image(to_grid(images.cpu(), ncol), figure)
        print(f"wrote {figure}")
        return out
    # evaluate.py's draw: the same seed gives the images ``evaluate.py ckpt=... seed=...`` scores
    images = torch.cat([chunk.cpu() for chunk in sample_chunks(model, cfg.n, cfg.seed, model.device, **style)])
    width = len(str(cfg.n - 1))
    for i, image in enumerate(images):
        save_image(image * 0.5 + 0.5, out / f"{i:0{width}d}.png")
    grid = out.with_name(f"{out.name}_grid.png")
    save_image(to_grid(images, cfg.nrow), grid)
    print(f"wrote {len(images)} images to {out} and their grid to {grid}")
    return out
