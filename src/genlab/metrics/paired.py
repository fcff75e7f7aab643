"""Metrics of a model's outputs against known answers, in one place for every family.

The answers are the inputs themselves for autoencoders (reconstruction), the true target image
where translation data has one (``shapes_unpaired``'s ``b_true``), and the clean image for
restoration, where inpainting adds the same numbers inside the hole (``psnr_hole``, ...).
Validation steps, ``evaluate.py`` and the benches all score through :func:`scores`.
"""

from __future__ import annotations

import torch

from genlab import surfaces
from genlab.errors import ConfigError, UserError
from genlab.metrics import functional as M
from genlab.metrics.quality import DIRECTIONS, real_batches

PAIRED = ("mse", "psnr", "ssim", "l1", "lpips")
HOLE = ("mse", "psnr", "l1")  # per-pixel metrics that can be restricted to the hole


def scores(outputs: torch.Tensor, targets: torch.Tensor, metrics, mask: torch.Tensor | None = None, tag: str = ""):
    """``{metric + tag: value}`` over whole images in [-1, 1], and ``{metric + "_hole" + tag: ...}``
    inside ``mask`` (1 = missing pixel, [N, 1, H, W]) for the per-pixel metrics. Always float64,
    whatever autocast the caller runs under (bf16 would leave three significant digits)."""
    unknown = [m for m in metrics if m not in PAIRED]
    if unknown:
        raise ConfigError(f"unknown paired metric(s) {unknown}; choose from {list(PAIRED)}")
    out = {}
    with torch.autocast(outputs.device.type, enabled=False):
        outputs, targets = outputs.detach().double(), targets.detach().double()
        for metric in metrics:
            # "l1" + "96" would read as l196: a digit after a digit gets an underscore (l1_96).
            sep = "_" if metric[-1].isdigit() and tag[:1].isdigit() else ""
            out[f"{metric}{sep}{tag}"] = getattr(M, metric)(outputs, targets)
        if mask is not None:
            for metric in (m for m in metrics if m in HOLE):
                out[f"{metric}_hole{tag}"] = hole_metric(metric, outputs, targets, mask.double())
    return out


def hole_metric(metric: str, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    """MSE / PSNR / L1 over the missing pixels only, per image, then the mean over images (images
    without a hole are left out). PSNR's peak-to-peak range is 2 ([-1, 1])."""
    weight = mask.expand_as(outputs).flatten(1)
    error = (outputs - targets).flatten(1)
    pixels = weight.sum(dim=1)
    keep = pixels > 0
    if not keep.any():
        raise UserError(f"{metric}_hole: no image has a hole (the mask is all zeros)")
    if metric == "l1":
        per_image = (error.abs() * weight).sum(dim=1)[keep] / pixels[keep]
    else:
        per_image = (error.square() * weight).sum(dim=1)[keep] / pixels[keep]
        if metric == "psnr":
            per_image = 10 * torch.log10(4.0 / per_image.clamp_min(1e-20))
    return float(per_image.mean())


AREA_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # hole area bins of the inpainting literature (LaMa, CoModGAN)


def area_bins(mask: torch.Tensor, edges=AREA_EDGES) -> list[tuple[str, torch.Tensor]]:
    """``[("0-10", chosen), ("10-20", chosen), ...]``: which images of ``mask`` [N, 1, H, W] have a hole
    covering [lo, hi) of the image, in percent (the last bin includes its upper edge). Images
    outside every bin (no hole, or more than the last edge) are in none."""
    area = mask.flatten(1).double().mean(dim=1)
    bins = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        chosen = (area >= lo) & ((area <= hi) if last else (area < hi)) & (area > 0)
        bins.append((f"{round(100 * lo)}-{round(100 * hi)}", chosen))
    return bins


def scores_by_area(
    outputs: torch.Tensor, targets: torch.Tensor, metrics, mask: torch.Tensor, edges=AREA_EDGES, tag: str = ""
) -> dict[str, float]:
    """:func:`scores` of the images in each hole-area bin: ``{metric + tag + "_area10-20": ...}`` (hole
    metrics too) and ``images_area10-20`` (how many images the bin holds); empty bins are left out."""
    out: dict[str, float] = {}
    for label, chosen in area_bins(mask, edges):
        if chosen.any():
            binned = scores(outputs[chosen], targets[chosen], metrics, mask[chosen], tag)
            out.update({f"{key}_area{label}": value for key, value in binned.items()})
            out[f"images_area{label}"] = int(chosen.sum())
    return out


def pairs(model, dataset, n: int, batch_size: int, device, direction: str = "a2b"):
    """``(outputs, targets, mask or None, tag)`` on the first ``n`` items of a held-out ``dataset``:
    restorations of degraded images (items with ``degraded``), translations against the true target
    (datasets with ``b_true``), or reconstructions of the inputs."""
    first = dataset[0]
    if isinstance(first, dict) and "degraded" in first:
        surfaces.require(model, surfaces.Restorer)
        items = [dataset[i] for i in range(min(n, len(dataset)))]
        degraded, targets = (torch.stack([it[k] for it in items]) for k in ("degraded", "clean"))
        masks = torch.stack([it["mask"] for it in items]) if "mask" in first else None
        outputs = []
        for i in range(0, len(degraded), batch_size):
            mask = None if masks is None else masks[i : i + batch_size].to(device)
            outputs.append(model.restore(degraded[i : i + batch_size].to(device), mask).cpu())
        outputs = torch.cat(outputs)
        return outputs, targets, masks, ""
    if surfaces.can(model, surfaces.Translator):
        source_domain, target_domain = DIRECTIONS[direction]
        truth = getattr(dataset, f"{target_domain}_true", None)
        if truth is None:
            raise UserError(
                f"paired metrics of a translator need the true {target_domain.upper()} image of every "
                f"{source_domain.upper()} image, which this data does not have (data=shapes_unpaired does, for "
                "a2b); score unpaired translation with fid/kid"
            )
        n = min(n, len(truth))
        inputs = torch.cat(list(real_batches(getattr(dataset, source_domain), n, batch_size)))
        outputs = torch.cat([model.translate(x.to(device), direction).cpu() for x in inputs.split(batch_size)])
        return outputs, truth[:n], None, f"_{direction}"
    surfaces.require(model, surfaces.Autoencoder)
    targets = torch.cat(list(real_batches(dataset, min(n, len(dataset)), batch_size)))
    outputs = torch.cat([model.reconstruct(x.to(device)).cpu() for x in targets.split(batch_size)])
    return outputs, targets, None, ""
