"""What ``python translate.py ckpt=... input=FILE_OR_DIR direction=a2b out=DIR`` does.

Every image keeps its size (the model's ``translate`` pads to its network's size multiple and
crops back). Outputs are PNGs named after the inputs (folder structure kept), so ``out`` can be
handed straight to FID/KID against the target domain's test folder; inputs whose PNG names would
collide (``a.jpg`` and ``a.png``) keep their extension in the name (``a_jpg.png``, ``a_png.png``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from omegaconf import DictConfig
from PIL import Image
from torchvision.transforms import v2
from torchvision.utils import save_image

from genlab import surfaces
from genlab.checkpoint import load_model, load_run_config
from genlab.data.folder import IMAGE_EXTENSIONS, find_images
from genlab.errors import ConfigError
from genlab.generate import pick_device


def run(cfg: DictConfig) -> Path:
    model = load_model(cfg.ckpt, map_location=pick_device(cfg.device))
    surfaces.require(model, surfaces.Translator, cfg.ckpt)
    source = Path(cfg.input).expanduser()
    if source.is_file():
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ConfigError(f"input={source} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        files, root = [source], source.parent
    else:
        files, root = find_images(source, key="input"), source
    out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / f"translated_{cfg.direction}"

    channels = int(load_run_config(cfg.ckpt)["data"]["channels"])  # what the model was trained on
    to_tensor = v2.Compose(
        [
            v2.Grayscale(1) if channels == 1 else v2.RGB(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5] * channels, [0.5] * channels),
        ]
    )
    targets = output_names(files, root, out)
    for path, target in zip(files, targets, strict=True):
        with Image.open(path) as im:
            image = to_tensor(im)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(model.translate(image[None], cfg.direction)[0].cpu() * 0.5 + 0.5, target)
    print(f"wrote {len(set(targets))} translated image(s) ({cfg.direction}) to {out}")
    return out


def output_names(files: list[Path], root: Path, out: Path) -> list[Path]:
    """``out/<relative path>.png`` for each input; inputs that would share a name keep their
    extension in it (``a_jpg.png``), so no output overwrites another."""
    plain = [(out / path.relative_to(root)).with_suffix(".png") for path in files]
    taken = Counter(plain)
    return [
        name.with_name(f"{path.stem}_{path.suffix[1:]}.png") if taken[name] > 1 else name
        for path, name in zip(files, plain, strict=True)
    ]
