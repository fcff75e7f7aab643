"""Trained restorers against the classical methods, on the same held-out images and degradations.

    python -m genlab.bench restoration --inpaint-ckpt A --denoise-ckpt B --sr-ckpt C [--n 96] [--out DIR]
    python -m genlab.bench restoration --train [--quick]    # train experiment=inpaint_photos, denoise_photos, sr_photos
    python -m genlab.bench restoration --tasks denoise      # a task without a checkpoint: the classical methods alone

Held-out images are the validation set of each checkpoint's run (the recipes: 96 crops of camera, chelsea and
flower, photographs no run trains on), degraded by that run's fixed validation draws; a task without a
checkpoint uses its recipe's data. The classical methods (genlab.bench.classical) get what their benchmarks
give them: the mask, the true noise sigma (non-blind), the scale. Numbers: PSNR and SSIM over the whole image;
inpainting adds PSNR inside the hole and both per hole-area bin up to 40% (the images in each bin are counted);
time per megapixel of output on --threads CPU threads (genlab: on --device, after one warm-up batch). Writes
<out>/restoration.json and, per task, <out>/panel_<task>.png: degraded | best classical | genlab | clean.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from genlab.bench import argument_parser, classical
from genlab.callbacks.images import to_grid
from genlab.checkpoint import load_model, load_run_config
from genlab.config import compose_train
from genlab.errors import UserError
from genlab.generate import pick_device
from genlab.metrics import paired

BINS = (0.0, 0.1, 0.2, 0.3, 0.4)  # hole-area bins reported for inpainting (percent of the image)
QUICK = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"]


@dataclass(frozen=True)
class Task:
    recipe: str  # conf/experiment/<recipe>.yaml: what --train runs, and the data without a checkpoint
    methods: dict[str, Callable[..., torch.Tensor]]
    needs: str  # the item key the task's degradation must produce ("mask", "sigma", or "" for upscaling)
    headline: str  # what "best classical" ranks by


TASKS = {
    "inpaint": Task("inpaint_photos", classical.INPAINTING, "mask", "psnr_hole"),
    "denoise": Task("denoise_photos", classical.DENOISING, "sigma", "psnr"),
    "sr": Task("sr_photos", classical.UPSCALING, "", "psnr"),
}


def held_out(task: str, ckpt: Path | None, n: int) -> dict[str, torch.Tensor]:
    """The first ``n`` validation items of the checkpoint's run (or of the task's recipe), stacked."""
    if ckpt is not None:
        data = OmegaConf.create(load_run_config(ckpt)["data"])
    else:
        data = compose_train([f"experiment={TASKS[task].recipe}"]).data
    datamodule = instantiate(data)
    datamodule.setup("validate")
    dataset = datamodule.val_set
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    if not isinstance(items[0], dict) or "degraded" not in items[0]:
        raise UserError(f"{ckpt or TASKS[task].recipe}: its data carries no degradation; nothing to restore")
    batch = {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0]}
    need = TASKS[task].needs
    upscaled = batch["degraded"].shape[-1] < batch["clean"].shape[-1]
    if (need and need not in batch) or (task == "sr") != upscaled:
        raise UserError(f"{ckpt}: trained on another degradation than --{task}-ckpt expects ({task})")
    return batch


def classical_outputs(task: str, method: Callable, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    y = batch["degraded"]
    if task == "inpaint":
        return method(y, batch["mask"])
    if task == "denoise":  # per image: blind-trained data draws sigma per image
        return torch.cat([method(y[i : i + 1], sigma=float(batch["sigma"][i])) for i in range(len(y))])
    return method(y, batch["clean"].shape[-1] // y.shape[-1])


def genlab_outputs(model, batch: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    y, mask = batch["degraded"], batch.get("mask")
    chunks = [
        model.restore(y[i : i + batch_size], None if mask is None else mask[i : i + batch_size]).cpu()
        for i in range(0, len(y), batch_size)
    ]
    return torch.cat(chunks)


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def score(task: str, outputs: torch.Tensor, batch: dict[str, torch.Tensor], seconds: float) -> dict[str, float]:
    clean, mask = batch["clean"], batch.get("mask")
    values = paired.scores(outputs, clean, ("psnr", "ssim"), mask)
    if task == "inpaint":
        values.update(paired.scores_by_area(outputs, clean, ("psnr", "ssim"), mask, edges=BINS))
    values["s_per_mp"] = seconds / (clean[:, 0].numel() / 1e6)
    return values


def run_task(task: str, ckpt: Path | None, args) -> tuple[dict[str, dict[str, float]], torch.Tensor, int]:
    """{method: numbers} (genlab last), the panel, and the number of held-out images."""
    batch = held_out(task, ckpt, args.n)
    results: dict[str, dict[str, float]] = {}
    outputs: dict[str, torch.Tensor] = {}
    cpu = torch.device("cpu")
    for name, method in TASKS[task].methods.items():
        try:
            outputs[name], seconds = timed(lambda method=method: classical_outputs(task, method, batch), cpu)
        except ImportError as err:  # an optional library (PyWavelets) is missing: say so in the table
            results[name] = {"missing": str(err)}
            continue
        results[name] = score(task, outputs[name], batch, seconds)
    if ckpt is not None:
        device = pick_device(args.device)
        model = load_model(ckpt, map_location=device)
        genlab_outputs(model, {k: v[: args.batch_size] for k, v in batch.items()}, args.batch_size)  # warm-up
        outputs["genlab"], seconds = timed(lambda: genlab_outputs(model, batch, args.batch_size), device)
        results["genlab"] = score(task, outputs["genlab"], batch, seconds)
    return results, panel(task, batch, outputs, results, args.panel_rows), len(batch["clean"])


def panel(task, batch, outputs, results, rows: int) -> torch.Tensor:
    """Rows of degraded | best classical | genlab (when scored) | clean, as one grid."""
    headline = TASKS[task].headline
    ranked = [m for m in TASKS[task].methods if "missing" not in results[m]]
    best = max(ranked, key=lambda m: results[m][headline])
    clean = batch["clean"][:rows]
    degraded = F.interpolate(batch["degraded"][:rows], size=clean.shape[-2:], mode="nearest")
    columns = [degraded, outputs[best][:rows]] + ([outputs["genlab"][:rows]] if "genlab" in outputs else []) + [clean]
    return to_grid(torch.stack(columns, dim=1).flatten(0, 1), len(columns))


def bin_labels() -> list[str]:
    return [f"{round(100 * lo)}-{round(100 * hi)}" for lo, hi in zip(BINS[:-1], BINS[1:])]


def compared(task: str) -> list[str]:
    """The quality numbers genlab must beat every classical method in."""
    if task != "inpaint":
        return ["psnr", "ssim"]
    return ["psnr_hole", "ssim"] + [f"{m}_area{b}" for m in ("psnr_hole", "ssim") for b in bin_labels()]


def table(task: str, results: dict[str, dict[str, float]], n: int) -> str:
    columns = (["psnr"] if task == "inpaint" else []) + compared(task) + ["s_per_mp"]
    widths = [max(9, len(c) + 2) for c in columns]
    lines = [
        f"\n{task}: {n} held-out images",
        "method".ljust(16) + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)),
    ]
    for method, values in results.items():
        if "missing" in values:
            lines.append(f"{method:<16}n/a: {values['missing']}")
            continue
        cells = [
            "-" if c not in values else f"{values[c]:.4f}" if c.startswith("ssim") else f"{values[c]:.2f}"
            for c in columns
        ]
        lines.append(method.ljust(16) + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    if task == "inpaint":
        first = next(iter(v for v in results.values() if "missing" not in v))
        lines.append(
            "images per bin: " + ", ".join(f"{b}%: {int(first.get(f'images_area{b}', 0))}" for b in bin_labels())
        )
    if "genlab" in results:
        lines.append(verdict(task, results))
    return "\n".join(lines)


def verdict(task: str, results: dict[str, dict[str, float]]) -> str:
    """Whether genlab beats every classical method in every compared number, and the smallest margin."""
    ours = results["genlab"]
    margins = [
        (ours[c] - values[c], c, method)
        for method, values in results.items()
        if method != "genlab" and "missing" not in values
        for c in compared(task)
        if c in values and c in ours
    ]
    if not margins:
        return "genlab: no classical method to compare with"
    worst = min(margins)
    beaten = "beats every classical method" if worst[0] > 0 else "does NOT beat every classical method"
    what = "PSNR in the hole and SSIM, overall and per bin" if task == "inpaint" else "PSNR and SSIM"
    return f"genlab {beaten} in {what}; smallest margin {worst[0]:+.4g} ({worst[1]} vs {worst[2]})"


def main(argv: list[str]) -> None:
    parser = argument_parser("restoration", __doc__)
    parser.add_argument("--tasks", default="inpaint,denoise,sr", help="comma-separated: inpaint, denoise, sr")
    for task in TASKS:
        parser.add_argument(f"--{task}-ckpt", type=Path, help=f"a restoration checkpoint for {task}")
    parser.add_argument("--train", action="store_true", help="train the CPU recipes of tasks without a checkpoint")
    parser.add_argument("--quick", action="store_true", help="with --train: 2 batches per recipe (a pipeline check)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="train.py override")
    parser.add_argument("--n", type=int, default=96, help="held-out images per task (default 96)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per genlab restore() call")
    parser.add_argument("--device", default="cpu", help="where genlab runs (default cpu; auto, cuda, ...)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every method (default 1)")
    parser.add_argument("--panel-rows", type=int, default=6, help="images in each panel")
    parser.add_argument("--out", type=Path, default=None, help="tables, panels and --train runs (default: a temp dir)")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; choose from {', '.join(TASKS)}")
    out = args.out or Path(tempfile.mkdtemp(prefix="genlab-bench-restoration-"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    try:  # OpenCV keeps its own thread pool
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass

    ckpts = {task: getattr(args, f"{task}_ckpt") for task in tasks}
    if args.train:
        from genlab.bench.autoencoders import train_experiment

        extra = [*(QUICK if args.quick else []), *args.override]
        for task in (t for t in tasks if ckpts[t] is None):
            ckpts[task], seconds = train_experiment(TASKS[task].recipe, out, extra)
            print(f"trained experiment={TASKS[task].recipe} in {seconds:.0f} s: {ckpts[task]}")

    report = {"threads": args.threads, "device": args.device, "checkpoints": {t: str(c) for t, c in ckpts.items()}}
    for task in tasks:
        results, grid, n = run_task(task, ckpts[task], args)
        save_image(grid, out / f"panel_{task}.png")
        report[task] = {"images": n, "methods": results}
        print(table(task, results, n))
    (out / "restoration.json").write_text(json.dumps(report, indent=2))
    print(
        f"\npanels and restoration.json in {out}"
        + ("   (--quick: pipeline check, numbers meaningless)" if args.quick else "")
    )
