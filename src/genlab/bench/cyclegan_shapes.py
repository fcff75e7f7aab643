"""What a circles→squares CycleGAN gets wrong, measured on its checkpoint (the bar of issue 15):

    python -m genlab.bench cyclegan --shapes-ckpt CKPT [--n 200] [--seed 0] [--margin 1] [--floor 1] [--out DIR]

PSNR and SSIM against the true square say how far an output is from the answer, not how it is
wrong. A run of experiment=cyclegan_shapes put its squares in the right place yet scored 25.6 dB /
0.81 (below leaving the circle unchanged, 0.90) because its backgrounds came out textured and of
another colour. So, per image, over the background pixels (outside both the circle and its true
square, from the scene's own geometry, eroded by ``--margin`` pixels so that soft edges, which
PSNR/SSIM already see, do not count as texture), on the 0-255 scale:

- flatness: std_out = sqrt(mean over R, G, B of the variance over background pixels) of the output,
  and std_in, the same of the input; an image is flat when std_out <= 2 * max(std_in, --floor).
  The embedded renderer's backgrounds are exactly flat (std_in = 0), hence the floor: one 8-bit step;
- colour kept: shift = ‖mean background RGB of the output − that of the input‖₂.

Each is reported as its median and its worst decile (the 90th percentile over images), with the share
of flat images. Robustness: the same numbers and PSNR/SSIM on circles drawn by another program, PIL's
``ImageDraw`` (``pil``: no anti-aliasing; ``pil_box4x`` / ``pil_lanczos4x``: drawn at 4x and reduced
with a box / Lanczos filter), in scenes drawn from the data's own law (``sample_shape_params``: colours,
background, radius and centre) with ``--seed``, each against its true square drawn the same way.
``identity`` rows score the circle itself against the square: what doing nothing earns.
Writes <out>/cyclegan_shapes.json and, per set, <out>/cyclegan_shapes_<set>.png (circle | output | square).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from genlab import surfaces
from genlab.data.embedded import PALETTE, SHAPES, sample_shape_params, shape_coverage
from genlab.data.unpaired import ShapesUnpairedDataModule
from genlab.errors import UserError
from genlab.metrics import paired

SUPERSAMPLE = 4  # the anti-aliased PIL renderers draw at 4x, as the embedded renderer samples 4x4 per pixel


# ----------------------------------------------------------------------------- background measures
def background_mask(params: dict[str, np.ndarray], image_size: int, margin: int = 1) -> torch.Tensor:
    """[N, 1, S, S] bool: pixels that neither the circle nor the square of each scene touches, even
    partly, and that lie more than ``margin`` pixels (chessboard distance) from any that they do."""
    n = len(params["fg"])
    touched = sum(shape_coverage(np.full(n, SHAPES.index(k)), params, image_size) for k in ("circle", "square")) > 0
    if margin > 0:
        touched = F.max_pool2d(touched.float(), 2 * margin + 1, stride=1, padding=margin) > 0
    return ~touched


def background_stats(outputs: torch.Tensor, inputs: torch.Tensor, background: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image ([N] float64, 0-255 scale) over the ``background`` pixels ([N, 1, H, W] bool) of images
    in [-1, 1]: ``std_out`` / ``std_in``, sqrt of the mean over channels of the (population) variance,
    and ``shift``, the Euclidean distance between the mean background colours of output and input."""
    if outputs.shape != inputs.shape or background.shape != (len(inputs), 1, *inputs.shape[-2:]):
        raise ValueError(
            f"outputs {tuple(outputs.shape)}, inputs {tuple(inputs.shape)}, mask {tuple(background.shape)}"
        )
    weight = background.double()
    pixels = weight.sum(dim=(1, 2, 3))
    if (pixels == 0).any():
        raise UserError(
            f"images {(pixels == 0).nonzero().flatten().tolist()} have no background pixels; lower --margin"
        )

    def mean_and_std(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images.double() + 1) * 127.5
        mean = (x * weight).sum(dim=(2, 3)) / pixels[:, None]  # [N, C]
        var = ((x - mean[:, :, None, None]).square() * weight).sum(dim=(2, 3)) / pixels[:, None]
        return mean, var.mean(dim=1).sqrt()

    mean_out, std_out = mean_and_std(outputs)
    mean_in, std_in = mean_and_std(inputs)
    return {"std_out": std_out, "std_in": std_in, "shift": (mean_out - mean_in).norm(dim=1)}


def summarise(stats: dict[str, torch.Tensor], floor: float = 1.0) -> dict[str, float]:
    """Median and worst decile (90th percentile) of each per-image measure, and the share of flat
    images: std_out <= 2 * max(std_in, floor)."""
    out = {}
    for name, values in stats.items():
        out[f"{name}_median"] = float(torch.quantile(values, 0.5))  # (torch.median: the lower middle)
        out[f"{name}_p90"] = float(torch.quantile(values, 0.9))
    out["flat_share"] = float((stats["std_out"] <= 2 * stats["std_in"].clamp_min(floor)).double().mean())
    return out


# ----------------------------------------------------------------------------- another renderer
def draw_pil(kind: str, params: dict[str, np.ndarray], image_size: int, supersample: int = 1, resample=None):
    """The scenes of ``params`` drawn by PIL's ``ImageDraw`` (8-bit RGB), [N, 3, S, S] in [-1, 1]: at
    ``supersample`` x the size and reduced with ``resample`` (a PIL filter) when ``supersample`` > 1.
    Pixel i spans [i, i + 1) in the scene's units, as in :func:`shape_coverage`."""
    if kind not in ("circle", "square"):
        raise ValueError(f"kind={kind!r}: draw_pil draws 'circle' or 'square'")
    colours = np.rint(PALETTE * 255).astype(int)
    size = image_size * supersample
    images = []
    for fg, bg, r, cx, cy in zip(*(params[k] for k in ("fg", "bg", "radius", "cx", "cy"))):
        half = r if kind == "circle" else r * np.sqrt(np.pi) / 2  # the equal-area square, as shape_coverage
        # PIL truncates float coordinates; round to the nearest pixel edge instead, so that a pixel is
        # drawn when its centre is inside (PIL's box names the first and the last pixel, inclusive).
        x0, y0, x1, y1 = (round(float(v) * supersample) for v in (cx - half, cy - half, cx + half, cy + half))
        box = (x0, y0, x1 - 1, y1 - 1)
        image = Image.new("RGB", (size, size), tuple(colours[bg]))
        draw = ImageDraw.Draw(image)
        (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=tuple(colours[fg]))
        if supersample > 1:
            image = image.resize((image_size, image_size), resample=resample)
        images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    return torch.stack(images).float() / 127.5 - 1


RENDERERS = {
    "pil": {},
    "pil_box4x": {"supersample": SUPERSAMPLE, "resample": Image.Resampling.BOX},
    "pil_lanczos4x": {"supersample": SUPERSAMPLE, "resample": Image.Resampling.LANCZOS},
}


def other_renderer_sets(image_size: int, n: int, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, dict]]:
    """``{renderer: (circles, true squares, scenes)}``: ``n`` scenes of the data law drawn with ``seed``."""
    scenes = sample_shape_params(np.random.default_rng(seed), n, image_size)
    return {
        name: (draw_pil("circle", scenes, image_size, **kw), draw_pil("square", scenes, image_size, **kw), scenes)
        for name, kw in RENDERERS.items()
    }


# ----------------------------------------------------------------------------- the bench
def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("translation quality of a circles->squares checkpoint (--shapes-ckpt)")
    group.add_argument("--shapes-ckpt", metavar="CKPT", help="a CycleGAN trained on data=shapes_unpaired")
    group.add_argument("--n", type=int, default=200, help="scenes per other renderer (the val set: all of it)")
    group.add_argument("--seed", type=int, default=0, help="draws the other renderers' scenes")
    group.add_argument("--margin", type=int, default=1, help="background pixels this far from a shape are left out")
    group.add_argument("--floor", type=float, default=1.0, help="flat: std_out <= 2 max(std_in, floor) (0-255)")
    group.add_argument("--out", type=Path, help="default: <run dir>/evaluation")
    group.add_argument("--device", default="auto")


def measure(model, circles, squares, scenes, args, device) -> tuple[dict[str, float], torch.Tensor]:
    """The model's row and the identity row of one set, and its outputs."""
    outputs = torch.cat([model.translate(x.to(device), "a2b").cpu() for x in circles.split(100)])
    background = background_mask(scenes, circles.shape[-1], args.margin)
    rows = {}
    for who, images in (("model", outputs), ("identity", circles)):
        rows[who] = {
            **paired.scores(images, squares, ("psnr", "ssim"), tag="_a2b"),
            **summarise(background_stats(images, circles, background), args.floor),
        }
    return rows, outputs


def run(args: argparse.Namespace) -> dict:
    from torchvision.utils import save_image

    from genlab.callbacks.images import to_grid
    from genlab.checkpoint import load_model, load_run_config
    from genlab.generate import pick_device

    device = pick_device(args.device)
    model = load_model(args.shapes_ckpt, map_location=device)
    surfaces.require(model, surfaces.Translator, args.shapes_ckpt)
    datamodule = instantiate(OmegaConf.create(load_run_config(args.shapes_ckpt)["data"]))
    if not isinstance(datamodule, ShapesUnpairedDataModule):
        raise UserError(
            f"--shapes-ckpt {args.shapes_ckpt}: trained on {type(datamodule).__name__}, not shapes_unpaired"
        )
    datamodule.setup("validate")
    val = datamodule.val_set
    sets = {"val": (val.a, val.b_true, datamodule.scenes("val_a"))}
    sets.update(other_renderer_sets(datamodule.image_size, args.n, args.seed))
    out = args.out or Path(args.shapes_ckpt).resolve().parent.parent / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    report = {"ckpt": str(Path(args.shapes_ckpt).resolve()), "margin": args.margin, "floor": args.floor, "sets": {}}
    for name, (circles, squares, scenes) in sets.items():
        rows, outputs = measure(model, circles, squares, scenes, args, device)
        report["sets"][name] = {"n": len(circles), **rows}
        panel = torch.stack([circles[:8], outputs[:8], squares[:8]], dim=1).flatten(0, 1)
        save_image(to_grid(panel, nrow=3), out / f"cyclegan_shapes_{name}.png")
    (out / "cyclegan_shapes.json").write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"wrote {out / 'cyclegan_shapes.json'} and cyclegan_shapes_<set>.png (circle | output | square)")
    return report


def table(report: dict) -> str:
    lines = [
        f"{report['ckpt']}: G_A(circle) vs the true square; background over pixels > {report['margin']} px from "
        f"both shapes, 0-255 scale, median / worst decile; flat = std_out <= 2 max(std_in, {report['floor']})",
        f"{'set':<14}{'row':<10}{'n':>5}{'PSNR dB':>9}{'SSIM':>7}{'bg std out':>14}{'bg std in':>13}"
        f"{'colour shift':>15}{'flat':>7}",
    ]
    for name, rows in report["sets"].items():
        for who in ("model", "identity"):
            r = rows[who]
            lines.append(
                f"{name:<14}{who:<10}{rows['n']:>5}{r['psnr_a2b']:>9.2f}{r['ssim_a2b']:>7.3f}"
                f"{r['std_out_median']:>7.2f} /{r['std_out_p90']:>5.1f}{r['std_in_median']:>6.2f} /{r['std_in_p90']:>5.1f}"
                f"{r['shift_median']:>8.2f} /{r['shift_p90']:>5.1f}{r['flat_share']:>7.0%}"
            )
    return "\n".join(lines)
