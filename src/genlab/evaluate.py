"""What ``python evaluate.py`` does: a table on stdout and ``metrics.json`` for

- a checkpoint: FID/KID/IS/P&R of its samples against its own training data (translators: its
  translations of the held-out source domain against the held-out target domain), reconstruction
  or translation error against known answers (MSE/PSNR/SSIM/LPIPS), and a VAE's importance-weighted
  NLL, both on the held-out split;
- two image folders: FID/KID/IS/P&R of one against the other."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab.checkpoint import load_model, load_run_config
from genlab.data.folder import ImageFiles, check_readable, find_images
from genlab.data.transforms import to_model_input
from genlab.generate import pick_device
from genlab.metrics import extractors, quality
from genlab.metrics import functional as M


def protocol_of(cfg: DictConfig) -> quality.Protocol:
    return quality.Protocol(
        kid_subsets=cfg.kid_subsets,
        kid_subset_size=cfg.kid_subset_size,
        is_splits=cfg.is_splits,
        seed=cfg.seed,
        allow_few_samples=cfg.allow_few_samples,
    )


def folder_set(path: str, key: str, image_size: int | None, channels: int) -> ImageFiles:
    files = check_readable(find_images(Path(path).expanduser(), key=key), skip_bad=False)
    if image_size is None:
        from PIL import Image

        with Image.open(files[0]) as im:
            image_size = min(im.size)
    return ImageFiles(files, [0] * len(files), to_model_input(image_size, channels))


# Metrics of a model's outputs against known answers on the held-out split: reconstructions of the
# inputs (autoencoders), or translations against the true target image (data with ``b_true``).
PAIRED = ("mse", "psnr", "ssim", "lpips")


def default_metrics(model) -> list[str]:
    """What ``metrics=null`` scores: everything the model supports."""
    if quality.is_translator(model):
        metrics = ["fid", "kid"]
    else:
        metrics = ["fid", "kid", "is", "pr"] if callable(getattr(model, "sample", None)) else []
    if callable(getattr(model, "reconstruct", None)) or quality.is_translator(model):
        metrics += ["mse", "psnr", "ssim"]
    if callable(getattr(model, "importance_weighted_nll", None)):
        metrics.append("nll")
    return metrics


def check_metric_names(metrics) -> None:
    unknown = [m for m in metrics if m not in (*quality.METRICS, *PAIRED, "nll")]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {[*quality.METRICS, *PAIRED, 'nll']}")


def sample_metrics(cfg, model, datamodule, extractor, protocol, metrics, cache, device):
    """FID/KID/IS/P&R of the model's outputs against real images of ``split`` (real features cached)."""
    split = cfg.split or quality.default_split(model)
    reference, source = quality.scored_sets(model, getattr(datamodule, f"{split}_set"), cfg.direction)
    n_real = min(cfg.n, len(reference))
    n_fake = cfg.n if source is None else min(cfg.n, len(source))
    quality.check_request(metrics, n_real, n_fake, extractor, protocol)
    name = quality.describe_dataset(datamodule, split)
    tag = "" if source is None else f"_{cfg.direction}"
    key = split if source is None else f"{split}-{quality.DIRECTIONS[cfg.direction][1]}"
    path = cache.path(name, key, datamodule.image_size, extractor, n_real)
    real, hit = cache.get(
        path, lambda: quality.extract(extractor, quality.real_batches(reference, n_real, cfg.batch_size), device)
    )
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    fake_batches = quality.model_batches(model, source, n_fake, cfg.batch_size, generator, cfg.direction)
    fake = quality.extract(extractor, fake_batches, device)
    values = quality.compute(metrics, real, fake, extractor.name, protocol, tag)
    return values, {"n_real": n_real, "n_fake": n_fake, "real": f"{name} {key}", "real_features_cached": hit}


def paired_metrics(cfg, model, datamodule, metrics, device) -> dict[str, float]:
    """Reconstruction/translation error on the first ``n`` held-out (val) images, and the VAE's
    importance-weighted NLL (nats per image, and bits per dimension)."""
    dataset = datamodule.val_set
    if quality.is_translator(model):
        source_name, target_name = quality.DIRECTIONS[cfg.direction]
        truth = getattr(dataset, f"{target_name}_true", None)
        if truth is None:
            raise ValueError(
                f"{', '.join(metrics)} need the true {target_name.upper()} image of every "
                f"{source_name.upper()} image, which {type(datamodule).__name__} does not have (data=shapes_unpaired "
                "does, for a2b); score unpaired translation with fid/kid"
            )
        n = min(cfg.n, len(truth))
        inputs = torch.cat(list(quality.real_batches(getattr(dataset, source_name), n, cfg.batch_size)))
        outputs = model.translate(inputs.to(device), cfg.direction).cpu()
        targets, tag = truth[:n], f"_{cfg.direction}"
    else:
        n = min(cfg.n, len(dataset))
        targets, tag = torch.cat(list(quality.real_batches(dataset, n, cfg.batch_size))), ""
    values = {}
    if "nll" in metrics:
        if not callable(getattr(model, "importance_weighted_nll", None)):
            raise ValueError(f"nll: {type(model).__name__} has no likelihood (importance_weighted_nll)")
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        nll = torch.cat(
            [
                model.importance_weighted_nll(x.to(device), k=cfg.iw_k, generator=generator).cpu()
                for x in targets.split(cfg.batch_size)
            ]
        ).mean()
        values[f"iw_nll{n}_k{cfg.iw_k}"] = float(nll)
        values[f"iw_bpd{n}_k{cfg.iw_k}"] = float(nll) / (targets[0].numel() * math.log(2))
    wanted = [m for m in PAIRED if m in metrics]
    if wanted and not quality.is_translator(model):
        if not callable(getattr(model, "reconstruct", None)):
            raise ValueError(f"{', '.join(wanted)}: {type(model).__name__} has no reconstruct(x)")
        outputs = torch.cat([model.reconstruct(x.to(device)).cpu() for x in targets.split(cfg.batch_size)])
    for metric in wanted:
        values[f"{metric}{n}{tag}"] = getattr(M, metric)(outputs, targets)
    return values


def checkpoint_metrics(cfg, protocol, device) -> tuple[dict[str, float], dict]:
    """Everything ``cfg.metrics`` asks of the checkpoint's model, on its own run's data."""
    model = load_model(cfg.ckpt, map_location=device)
    metrics = list(cfg.metrics) if cfg.metrics is not None else default_metrics(model)
    check_metric_names(metrics)
    datamodule = instantiate(load_run_config(cfg.ckpt)["data"])
    datamodule.setup("fit")
    values, report = {}, {"ckpt": str(Path(cfg.ckpt).resolve())}
    wanted = [m for m in metrics if m in quality.METRICS]
    if wanted:
        if not (callable(getattr(model, "sample", None)) or quality.is_translator(model)):
            raise ValueError(f"{', '.join(wanted)}: {type(model).__name__} neither samples nor translates")
        extractor = extractors.for_data(cfg.extractor, datamodule).to(device)
        scored, counts = sample_metrics(
            cfg, model, datamodule, extractor, protocol, wanted, quality.RealStatsCache(cfg.cache_dir), device
        )
        values.update(scored)
        report.update(counts, extractor={"name": extractor.name, "provenance": extractor.provenance})
    if any(m not in quality.METRICS for m in metrics):
        values.update(paired_metrics(cfg, model, datamodule, metrics, device))
    return values, report


def folder_metrics(cfg, protocol, device) -> tuple[dict[str, float], dict]:
    """Sample metrics of the first ``n`` images of one folder against another (nothing cached:
    folders change)."""
    if not (cfg.real and cfg.fake):
        raise ValueError("folder mode needs both real=DIR and fake=DIR")
    metrics = list(cfg.metrics) if cfg.metrics is not None else list(quality.METRICS)
    check_metric_names(metrics)
    if any(m not in quality.METRICS for m in metrics):
        raise ValueError(f"folder mode scores {list(quality.METRICS)} (unpaired images); got {metrics}")
    extractor = instantiate(cfg.extractor).to(device)
    channels = getattr(getattr(extractor, "net", None), "channels", 3)
    real_set = folder_set(cfg.real, "real", cfg.image_size, channels)
    fake_set = folder_set(cfg.fake, "fake", cfg.image_size, channels)
    n_real = len(real_set) if cfg.n is None else min(cfg.n, len(real_set))
    n_fake = len(fake_set) if cfg.n is None else min(cfg.n, len(fake_set))
    quality.check_request(metrics, n_real, n_fake, extractor, protocol)
    real = quality.extract(extractor, quality.real_batches(real_set, n_real, cfg.batch_size), device)
    fake = quality.extract(extractor, quality.real_batches(fake_set, n_fake, cfg.batch_size), device)
    report = {
        "real": str(Path(cfg.real).resolve()),
        "fake": str(Path(cfg.fake).resolve()),
        "n_real": n_real,
        "n_fake": n_fake,
        "real_features_cached": False,
        "extractor": {"name": extractor.name, "provenance": extractor.provenance},
    }
    return quality.compute(metrics, real, fake, extractor.name, protocol), report


def run(cfg: DictConfig) -> dict[str, float]:
    if bool(cfg.ckpt) == bool(cfg.real or cfg.fake):
        raise ValueError("pass either ckpt=PATH, or real=DIR and fake=DIR")
    device = pick_device(cfg.device)
    protocol = protocol_of(cfg)
    started = time.perf_counter()
    if cfg.ckpt:
        values, report = checkpoint_metrics(cfg, protocol, device)
        out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "evaluation"
    else:
        values, report = folder_metrics(cfg, protocol, device)
        out = Path(cfg.out) if cfg.out else Path("evaluation")
    if "n_real" in report:
        report["protocol"] = {
            **vars(protocol),
            "kid_subset_size": protocol.subset_size(min(report["n_real"], report["n_fake"])),
        }
    report = {
        "metrics": values,
        **report,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "seconds": round(time.perf_counter() - started, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    print(table(values, report))
    print(f"wrote {out / 'metrics.json'}")
    return values


def table(values: dict[str, float], report: dict) -> str:
    width = max(len(k) for k in values) if values else 10
    lines = []
    if "extractor" in report:
        lines += [
            f"extractor  {report['extractor']['name']}: {report['extractor']['provenance']}",
            f"samples    {report['n_fake']} generated/fake vs {report['n_real']} real"
            + (" (real features from cache)" if report["real_features_cached"] else ""),
        ]
    lines.append(f"{'metric':<{width}}  value")
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in values.items()]
    return "\n".join(lines)
