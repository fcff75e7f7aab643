"""What ``python evaluate.py`` does: a table on stdout and ``metrics.json`` for

- a checkpoint: FID/KID/IS/P&R of its samples against its own training data (translators: its
  translations of the held-out source domain against the held-out target domain), whether its samples
  copy training images (nearer to them than held-out images are: ``copy``), reconstruction,
  translation or restoration error against known answers (MSE/PSNR/SSIM/L1/LPIPS; inpainting also
  inside the hole and per hole-area bin), and a VAE's importance-weighted NLL, both on the held-out split;
- two image folders: FID/KID/IS/P&R of one against the other."""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab import surfaces
from genlab.checkpoint import load_model, load_run_config
from genlab.data.folder import ImageFiles, check_readable, find_images
from genlab.data.transforms import to_model_input
from genlab.errors import ConfigError, UserError
from genlab.generate import pick_device
from genlab.metrics import extractors, paired, quality
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


def default_metrics(model) -> list[str]:
    """What ``metrics=null`` scores: everything the model supports (what the data cannot give, e.g.
    paired metrics of a translator on unpaired data, is skipped with the reason in metrics.json)."""
    can = functools.partial(surfaces.can, model)
    metrics = ["fid", "kid"] if can(surfaces.Translator) else []
    if can(surfaces.Sampler):
        metrics = ["fid", "kid", "is", "pr", "copy"]
    if can(surfaces.Autoencoder) or can(surfaces.Translator) or can(surfaces.Restorer):
        metrics += ["mse", "psnr", "ssim"] + (["l1"] if can(surfaces.Restorer) else [])
    if can(surfaces.Restorer) and M.lpips_weights().is_file():  # LPIPS where its weights are on this machine
        metrics.append("lpips")
    if can(surfaces.Likelihood):
        metrics.append("nll")
    return metrics


def check_metric_names(metrics) -> None:
    known = [*quality.METRICS, *paired.PAIRED, "nll"]
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ConfigError(f"metrics: unknown metric(s) {unknown}; choose from {known}")


def sample_metrics(cfg, model, datamodule, metrics, device, skipped) -> tuple[dict[str, float], dict]:
    """FID/KID/IS/P&R of the model's outputs against real images of ``split`` (real features cached).
    Metrics whose guard refuses this data go to ``skipped`` when they were not asked for by name."""
    plan = quality.plan(model, datamodule, cfg.n, cfg.split, cfg.direction, where="evaluate.py")
    extractor = extractors.for_data(cfg.extractor, datamodule).to(device)
    protocol = protocol_of(cfg)
    valid = []
    for metric in metrics:
        try:
            quality.check_request([metric], plan.n, plan.n, extractor, protocol, plan.n_held_out)
            valid.append(metric)
        except ConfigError as err:
            if cfg.metrics is not None:
                raise
            skipped[metric] = str(err)
    if not valid:
        return {}, {}
    values, report = quality.score(
        model,
        plan,
        extractor,
        valid,
        protocol,
        real_name=quality.describe_dataset(datamodule, plan.split),
        image_size=datamodule.image_size,
        cache=quality.RealStatsCache(cfg.cache_dir),
        device=device,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    report["extractor"] = {"name": extractor.name, "provenance": extractor.provenance}
    report["protocol"] = {**vars(protocol), "kid_subset_size": protocol.subset_size(plan.n)}
    return values, report


def likelihood_metrics(cfg, model, dataset, device) -> dict[str, float]:
    """The importance-weighted NLL of the first ``n`` held-out images: nats per image, bits per dimension."""
    surfaces.require(model, surfaces.Likelihood, cfg.ckpt)
    n = min(cfg.n, len(dataset))
    targets = torch.cat(list(quality.real_batches(dataset, n, cfg.batch_size)))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    nll = torch.cat(
        [
            model.importance_weighted_nll(x.to(device), k=cfg.iw_k, generator=generator).cpu()
            for x in targets.split(cfg.batch_size)
        ]
    ).mean()
    return {
        f"iw_nll{n}_k{cfg.iw_k}": float(nll),
        f"iw_bpd{n}_k{cfg.iw_k}": float(nll) / (targets[0].numel() * math.log(2)),
    }


def checkpoint_metrics(cfg, device) -> tuple[dict[str, float], dict]:
    """Everything ``cfg.metrics`` asks of the checkpoint's model, on its own run's data."""
    model = load_model(cfg.ckpt, map_location=device)
    metrics = list(cfg.metrics) if cfg.metrics is not None else default_metrics(model)
    check_metric_names(metrics)
    datamodule = instantiate(load_run_config(cfg.ckpt)["data"])
    datamodule.setup("fit")
    values, report = model_metrics(cfg, model, datamodule, metrics, device)
    return values, {"ckpt": str(Path(cfg.ckpt).resolve()), **report}


def model_metrics(cfg, model, datamodule, metrics: list[str], device) -> tuple[dict[str, float], dict]:
    """``metrics`` of a model in memory on ``datamodule`` (set up for fit): sample quality against its
    ``cfg.split``, paired and likelihood metrics on its held-out split (the benches score this way)."""
    values, skipped, report = {}, {}, {}
    wanted = [m for m in metrics if m in quality.METRICS]
    if wanted:
        scored, counts = sample_metrics(cfg, model, datamodule, wanted, device, skipped)
        values.update(scored)
        report.update(counts)
    wanted = [m for m in metrics if m in paired.PAIRED]
    if wanted:
        try:
            outputs, targets, mask, tag = paired.pairs(
                model, datamodule.val_set, cfg.n, cfg.batch_size, device, cfg.direction
            )
            values.update(paired.scores(outputs, targets, wanted, mask, f"{len(targets)}{tag}"))
            if mask is not None:  # inpainting: every number again per hole-area bin, as the literature reports
                values.update(paired.scores_by_area(outputs, targets, wanted, mask))
        except UserError as err:
            if cfg.metrics is not None:
                raise
            skipped.update(dict.fromkeys(wanted, str(err)))
    if "nll" in metrics:
        values.update(likelihood_metrics(cfg, model, datamodule.val_set, device))
    if skipped:
        report["skipped"] = skipped
    return values, report


def folder_metrics(cfg, device) -> tuple[dict[str, float], dict]:
    """Sample metrics of the first ``n`` images of one folder against another (nothing cached:
    folders change)."""
    if not (cfg.real and cfg.fake):
        raise ConfigError("folder mode needs both real=DIR and fake=DIR")
    scorable = [m for m in quality.METRICS if m != "copy"]  # copy needs a run's training and held-out images
    metrics = list(cfg.metrics) if cfg.metrics is not None else scorable
    check_metric_names(metrics)
    if any(m not in scorable for m in metrics):
        raise ConfigError(f"folder mode scores {scorable} (unpaired images); got {metrics}")
    extractor = instantiate(cfg.extractor).to(device)
    channels = getattr(getattr(extractor, "net", None), "channels", 3)
    real_set = folder_set(cfg.real, "real", cfg.image_size, channels)
    fake_set = folder_set(cfg.fake, "fake", cfg.image_size, channels)
    n_real = len(real_set) if cfg.n is None else min(cfg.n, len(real_set))
    n_fake = len(fake_set) if cfg.n is None else min(cfg.n, len(fake_set))
    protocol = protocol_of(cfg)
    quality.check_request(metrics, n_real, n_fake, extractor, protocol)
    real = quality.extract(extractor, quality.real_batches(real_set, n_real, cfg.batch_size), device)
    fake = quality.extract(extractor, quality.real_batches(fake_set, n_fake, cfg.batch_size), device)
    report = {
        "real": str(Path(cfg.real).resolve()),
        "fake": str(Path(cfg.fake).resolve()),
        "files_read": {"real": len(real_set), "fake": len(fake_set)},
        "n_real": n_real,
        "n_fake": n_fake,
        "real_features_cached": False,
        "extractor": {"name": extractor.name, "provenance": extractor.provenance},
        "protocol": {**vars(protocol), "kid_subset_size": protocol.subset_size(min(n_real, n_fake))},
    }
    plan = quality.Plan(real_set, None, n_fake, "folder")
    return quality.compute(metrics, real, fake, extractor.name, protocol, plan), report


def run(cfg: DictConfig) -> dict[str, float]:
    if bool(cfg.ckpt) == bool(cfg.real or cfg.fake):
        raise ConfigError("pass either ckpt=PATH, or real=DIR and fake=DIR")
    device = pick_device(cfg.device)
    started = time.perf_counter()
    if cfg.ckpt:
        values, report = checkpoint_metrics(cfg, device)
        out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "evaluation"
    else:
        values, report = folder_metrics(cfg, device)
        out = Path(cfg.out) if cfg.out else Path("evaluation")
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
    if "copy" in report:
        lines.append(
            f"copy       nearest of {report['copy']['n_train']} training images, against "
            f"{report['copy']['n_held_out']} held-out ones (copy: share nearer than 95% of those; copyz < 0: nearer)"
        )
    lines.append(f"{'metric':<{width}}  value")
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in values.items()]
    lines += [f"skipped    {metric}: {why}" for metric, why in report.get("skipped", {}).items()]
    return "\n".join(lines)
