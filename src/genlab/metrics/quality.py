"""Sample-quality evaluation: features in, named numbers out; real-image features cached on disk.

The protocol is written into every key: ``fid1000[classifier]`` is FID between 1000 generated
images and up to 1000 real ones, on the ``classifier`` extractor's features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchmetrics import Metric

from genlab.metrics import functional as M
from genlab.metrics.inception import cache_dir

METRICS = ("fid", "kid", "is", "pr")
# Translation models are scored on what they make of one domain's images: fake = translate(source),
# compared with the target domain's real images.
DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}


@dataclass
class FeatureSet:
    features: torch.Tensor  # [N, D] float32
    logits: torch.Tensor | None = None  # [N, K] or None when the extractor has no classifier

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class Protocol:
    """Everything besides the images that changes a number (and so belongs in metrics.json)."""

    kid_subsets: int = 100
    kid_subset_size: int | None = None  # None = min(1000, n)
    is_splits: int = 10
    pr_k: int = 3
    seed: int = 0  # KID subsets
    allow_few_samples: bool = False  # compute FID even when n <= feature dim (singular covariance)

    def subset_size(self, n: int) -> int:
        return self.kid_subset_size if self.kid_subset_size is not None else min(1000, n)


class FeatureBank(Metric):
    """Features (and logits) of images, gathered across DDP ranks by torchmetrics on ``compute``."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("logits", default=[], dist_reduce_fx="cat")

    def update(self, out: dict[str, torch.Tensor | None]) -> None:
        self.features.append(out["features"].float())
        if out.get("logits") is not None:
            self.logits.append(out["logits"].float())

    def compute(self) -> FeatureSet:
        def cat(x):
            return x if isinstance(x, torch.Tensor) else (torch.cat(x) if x else None)

        return FeatureSet(cat(self.features).cpu(), None if cat(self.logits) is None else cat(self.logits).cpu())


def image_of(item) -> torch.Tensor:
    """The image in a dataset item or batch: the tensor itself, the first of a tuple, ``image``/first of a dict."""
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, (tuple, list)):
        return image_of(item[0])
    if isinstance(item, dict):
        return image_of(item["image"] if "image" in item else next(iter(item.values())))
    raise TypeError(f"cannot find an image in a {type(item).__name__}")


def extract(extractor: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> FeatureSet:
    bank = FeatureBank().to(device)
    for images in batches:
        bank.update(extractor(images.to(device)))
    return bank.compute()


def check_request(metrics: Iterable[str], n_real: int, n_fake: int, extractor: nn.Module, protocol: Protocol) -> None:
    """Refuse, before any image is generated or extracted, what would give NaN or a meaningless number."""
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    n = min(n_real, n_fake)
    if "fid" in metrics:
        M.check_fid(n, extractor.dim, protocol.allow_few_samples)
    if "kid" in metrics:
        M.check_kid(n, protocol.subset_size(n))
    if "is" in metrics:
        if not extractor.has_logits:
            raise ValueError(
                f"IS needs class logits, which the {extractor.name} extractor from {extractor.provenance} lacks; "
                "use the standard torch-fidelity weights (inception_weights=standard downloads them once; or "
                "inception_weights=PATH to a local copy), or drop 'is' from the metrics"
            )
        if n_fake < protocol.is_splits:
            raise ValueError(f"IS over {protocol.is_splits} splits needs n >= {protocol.is_splits}, got {n_fake}")
    if "pr" in metrics and n <= protocol.pr_k:
        raise ValueError(f"precision/recall with k={protocol.pr_k} needs n > {protocol.pr_k}, got {n}")


def compute(
    metrics: Iterable[str], real: FeatureSet, fake: FeatureSet, name: str, protocol: Protocol, tag: str = ""
) -> dict[str, float]:
    """``{"fid{n}[name]": ..., "kid{n}[name]": ..., "kid{n}_std[name]": ..., ...}`` with n = len(fake)
    followed by ``tag`` (translators: ``fid200_a2b[classifier]``)."""
    n, out = f"{len(fake)}{tag}", {}  # n: the key's sample count (and direction)
    for metric in metrics:
        if metric == "fid":
            out[f"fid{n}[{name}]"] = M.fid(real.features, fake.features)
        elif metric == "kid":
            size = protocol.subset_size(min(len(real), len(fake)))
            mean, std = M.kid(real.features, fake.features, protocol.kid_subsets, size, protocol.seed)
            out[f"kid{n}[{name}]"], out[f"kid{n}_std[{name}]"] = mean, std
        elif metric == "is":
            out[f"is{n}[{name}]"], out[f"is{n}_std[{name}]"] = M.inception_score(fake.logits, protocol.is_splits)
        elif metric == "pr":
            out[f"precision{n}[{name}]"], out[f"recall{n}[{name}]"] = M.precision_recall(
                real.features, fake.features, protocol.pr_k
            )
    return out


class RealStatsCache:
    """Real-image features on disk, one file per (dataset, split, image size, extractor, n)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory else cache_dir() / "stats"

    def path(self, dataset: str, split: str, image_size: int, extractor: nn.Module, n: int) -> Path:
        ident = json.dumps([dataset, split, image_size, extractor.name, extractor.provenance, n])
        digest = hashlib.sha1(ident.encode()).hexdigest()[:12]
        label = dataset.split("(")[0].strip().replace(" ", "_").replace("/", "_")[:40]
        return self.directory / f"{label}-{split}-{image_size}px-{extractor.name}-n{n}-{digest}.pt"

    def load(self, path: Path) -> FeatureSet | None:
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return FeatureSet(saved["features"], saved.get("logits"))

    def save(self, path: Path, stats: FeatureSet) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # atomic: a reader sees all or nothing
        torch.save({"features": stats.features, "logits": stats.logits}, tmp)
        os.replace(tmp, path)

    def get(self, path: Path, compute_fn: Callable[[], FeatureSet]) -> tuple[FeatureSet, bool]:
        """``(stats, hit)``: the cached stats, or ``compute_fn()`` saved for next time."""
        stats = self.load(path)
        if stats is not None:
            return stats, True
        stats = compute_fn()
        self.save(path, stats)
        return stats, False


def describe_dataset(datamodule, split: str) -> str:
    """A stable identity for a datamodule's split: its class, its simple settings (not batch sizes)
    and the split's length (a folder that gained or lost files gets new statistics)."""
    skip = {
        "batch_size",
        "val_batch_size",
        "num_workers",
        "prepare_data_per_node",
        "allow_zero_length_dataloader_with_multiple_devices",
    }
    settings = {
        k: str(v)
        for k, v in sorted(vars(datamodule).items())
        if not k.startswith("_") and k not in skip and isinstance(v, (int, float, str, bool, Path))
    }
    size = len(getattr(datamodule, f"{split}_set"))
    return f"{type(datamodule).__name__} ({json.dumps(settings, sort_keys=True)}, {size} images)"


def real_batches(dataset, n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterable[torch.Tensor]:
    """The first ``n`` images of ``dataset`` in order; rank r takes indices r, r + W, ... of them."""
    indices = list(range(rank, n, world_size))
    for i in range(0, len(indices), batch_size):
        yield torch.stack([image_of(dataset[j]) for j in indices[i : i + batch_size]])


def is_translator(model) -> bool:
    return callable(getattr(model, "translate", None))


def default_split(model) -> str:
    """Generators are compared with the training images (the distribution they learn); translators
    with the held-out target domain (the CycleGAN papers' test-set protocol)."""
    return "val" if is_translator(model) else "train"


def scored_sets(model, dataset, direction: str = "a2b"):
    """``(reference, source)``: the real images the model's output is compared with, and the images a
    translator translates (None for generators, which sample)."""
    if not is_translator(model):
        return dataset, None
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}: use 'a2b' or 'b2a'")
    source, target = DIRECTIONS[direction]
    if not hasattr(dataset, target):
        raise ValueError(f"{type(model).__name__} needs two-domain data (an unpaired dataset with .a and .b)")
    return getattr(dataset, target), getattr(dataset, source)


def model_batches(
    model,
    source,
    n: int,
    batch_size: int,
    generator: torch.Generator,
    direction: str = "a2b",
    rank: int = 0,
    world_size: int = 1,
) -> Iterable[torch.Tensor]:
    """This rank's share of ``n`` images from the model: ``sample`` batches, or translations of the
    first ``n`` images of ``source`` (the same split between ranks as :func:`real_batches`)."""
    if source is not None:
        for images in real_batches(source, n, batch_size, rank, world_size):
            yield model.translate(images, direction)
        return
    share = len(range(rank, n, world_size))
    for i in range(0, share, batch_size):
        yield model.sample(min(batch_size, share - i), generator=generator)
