"""What ``python evaluate.py`` does: FID/KID/IS/P&R of a checkpoint's samples against its own
training data, or of one image folder against another; a table on stdout and ``metrics.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genlab.checkpoint import load_model, load_run_config
from genlab.data.folder import ImageFiles, check_readable, find_images
from genlab.data.transforms import to_model_input
from genlab.generate import pick_device
from genlab.metrics import quality


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


def samples(model, n: int, batch_size: int, seed: int, device: torch.device):
    """``n`` images from the model's ``sample`` in batches, reproducible for ``seed``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    for i in range(0, n, batch_size):
        yield model.sample(min(batch_size, n - i), generator=generator)


def checkpoint_features(cfg, extractor, protocol, cache, device):
    """Real features of the run's own data (cached) and features of the model's samples."""
    model = load_model(cfg.ckpt, map_location=device)
    if not callable(getattr(model, "sample", None)):
        raise TypeError(
            f"{type(model).__name__} has no sample(n); evaluate.py scores unconditional generators "
            "(translation models: compare folders of outputs with real=DIR fake=DIR)"
        )
    datamodule = instantiate(load_run_config(cfg.ckpt)["data"])
    datamodule.setup("fit")
    dataset = getattr(datamodule, f"{cfg.split}_set")
    n_real, n_fake = min(cfg.n, len(dataset)), cfg.n
    quality.check_request(cfg.metrics, n_real, n_fake, extractor, protocol)
    name = quality.describe_dataset(datamodule, cfg.split)
    path = cache.path(name, cfg.split, datamodule.image_size, extractor, n_real)
    real, hit = cache.get(
        path, lambda: quality.extract(extractor, quality.real_batches(dataset, n_real, cfg.batch_size), device)
    )
    fake = quality.extract(extractor, samples(model, n_fake, cfg.batch_size, cfg.seed, device), device)
    source = {"ckpt": str(Path(cfg.ckpt).resolve()), "real": f"{name} {cfg.split}"}
    return real, fake, hit, source


def folder_features(cfg, extractor, protocol, device):
    """Features of the first ``n`` images of two folders (nothing cached: folders change)."""
    if not (cfg.real and cfg.fake):
        raise ValueError("folder mode needs both real=DIR and fake=DIR")
    channels = getattr(getattr(extractor, "net", None), "channels", 3)
    real_set = folder_set(cfg.real, "real", cfg.image_size, channels)
    fake_set = folder_set(cfg.fake, "fake", cfg.image_size, channels)
    n_real = len(real_set) if cfg.n is None else min(cfg.n, len(real_set))
    n_fake = len(fake_set) if cfg.n is None else min(cfg.n, len(fake_set))
    quality.check_request(cfg.metrics, n_real, n_fake, extractor, protocol)
    real = quality.extract(extractor, quality.real_batches(real_set, n_real, cfg.batch_size), device)
    fake = quality.extract(extractor, quality.real_batches(fake_set, n_fake, cfg.batch_size), device)
    return real, fake, False, {"real": str(Path(cfg.real).resolve()), "fake": str(Path(cfg.fake).resolve())}


def run(cfg: DictConfig) -> dict[str, float]:
    if bool(cfg.ckpt) == bool(cfg.real or cfg.fake):
        raise ValueError("pass either ckpt=PATH, or real=DIR and fake=DIR")
    device = pick_device(cfg.device)
    extractor = instantiate(cfg.extractor).to(device)
    protocol = protocol_of(cfg)
    started = time.perf_counter()
    if cfg.ckpt:
        real, fake, hit, source = checkpoint_features(
            cfg, extractor, protocol, quality.RealStatsCache(cfg.cache_dir), device
        )
        out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "evaluation"
    else:
        real, fake, hit, source = folder_features(cfg, extractor, protocol, device)
        out = Path(cfg.out) if cfg.out else Path("evaluation")

    values = quality.compute(cfg.metrics, real, fake, extractor.name, protocol)
    report = {
        "metrics": values,
        "extractor": {"name": extractor.name, "provenance": extractor.provenance},
        "n_real": len(real),
        "n_fake": len(fake),
        "real_features_cached": hit,
        "protocol": {**vars(protocol), "kid_subset_size": protocol.subset_size(min(len(real), len(fake)))},
        **source,
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
    lines = [
        f"extractor  {report['extractor']['name']}: {report['extractor']['provenance']}",
        f"samples    {report['n_fake']} generated/fake vs {report['n_real']} real"
        + (" (real features from cache)" if report["real_features_cached"] else ""),
        f"{'metric':<{width}}  value",
    ]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in values.items()]
    return "\n".join(lines)
