"""Sample-quality evaluation: features in, named numbers out; real-image features cached on disk.

The protocol is written into every key: ``fid1000[classifier]`` is FID between 1000 generated
images and 1000 real ones, on the ``classifier`` extractor's features. :func:`plan` decides what is
compared (before any image is made), :func:`score` makes, extracts and scores it; the training
callback, ``evaluate.py`` and the benches all go through these two.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchmetrics import Metric

from genlab import surfaces
from genlab.errors import ConfigError, UserError
from genlab.metrics import functional as M
from genlab.metrics import keys
from genlab.metrics.inception import cache_dir

METRICS = ("fid", "kid", "is", "pr", "copy")
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
    copy_train: int = 10000  # copy: training images searched for each sample's nearest (all, when fewer)

    def subset_size(self, n: int) -> int:
        return self.kid_subset_size if self.kid_subset_size is not None else min(1000, n)


class FeatureBank(Metric):
    """Features (and logits) of images, gathered across DDP ranks by torchmetrics on ``compute``.
    With the images' :meth:`place` in the whole set, ``compute`` returns them in that order: the
    gather puts rank 0's share first, and KID's subsets and IS's splits depend on the order."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("logits", default=[], dist_reduce_fx="cat")
        self.add_state("positions", default=[], dist_reduce_fx="cat")

    def update(self, out: dict[str, torch.Tensor | None]) -> None:
        self.features.append(out["features"].float())
        if out.get("logits") is not None:
            self.logits.append(out["logits"].float())

    def place(self, positions: Sequence[int]) -> None:
        """Where the images this process extracted, in order, sit in the whole set."""
        self.positions.append(torch.as_tensor(positions, dtype=torch.long, device=self.device))

    def compute(self) -> FeatureSet:
        def cat(x):
            return x if isinstance(x, torch.Tensor) else (torch.cat(x) if x else None)

        features, logits, positions = cat(self.features), cat(self.logits), cat(self.positions)
        if positions is not None:
            if len(positions) != len(features):
                raise RuntimeError(f"{len(features)} features but {len(positions)} positions")
            order = torch.argsort(positions)
            features, logits = features[order], None if logits is None else logits[order]
        return FeatureSet(features.cpu(), None if logits is None else logits.cpu())


def image_of(item) -> torch.Tensor:
    """The image in a dataset item or batch: the tensor itself, the first of a tuple, ``image``/first of a dict."""
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, (tuple, list)):
        return image_of(item[0])
    if isinstance(item, dict):
        return image_of(item["image"] if "image" in item else next(iter(item.values())))
    raise TypeError(f"cannot find an image in a {type(item).__name__}")


def extract(
    extractor: nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    positions: Sequence[int] | None = None,
) -> FeatureSet:
    """The features of the images in ``batches``, gathered from every DDP rank; with ``positions``
    (where this rank's images sit in the whole set), in that order whatever the number of ranks."""
    bank = FeatureBank().to(device)
    for images in batches:
        bank.update(extractor(images.to(device)))
    if positions is not None:
        bank.place(positions)
    return bank.compute()


def check_request(
    metrics: Iterable[str], n_real: int, n_fake: int, extractor: nn.Module, protocol: Protocol, n_held_out: int = 0
) -> None:
    """Refuse, before any image is generated or extracted, what would give NaN or a meaningless number.
    ``n_held_out``: real images the model never trained on, which ``copy`` compares samples with."""
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    n = min(n_real, n_fake)
    if "fid" in metrics:
        M.check_fid(n, extractor.dim, protocol.allow_few_samples)
    if "kid" in metrics:
        M.check_kid(n, protocol.subset_size(n))
    if "is" in metrics:
        if not extractor.has_logits:
            raise ConfigError(
                f"IS needs class logits, which the {extractor.name} extractor from {extractor.provenance} lacks; "
                "use the standard torch-fidelity weights (inception_weights=standard downloads them once; or "
                "inception_weights=PATH to a local copy), or drop 'is' from the metrics"
            )
        if n_fake < protocol.is_splits:
            raise ConfigError(f"IS over {protocol.is_splits} splits needs n >= {protocol.is_splits}, got {n_fake}")
    if "pr" in metrics and n <= protocol.pr_k:
        raise ConfigError(f"precision/recall with k={protocol.pr_k} needs n > {protocol.pr_k}, got {n}")
    if "copy" in metrics and n_held_out < 2:
        raise ConfigError(
            "copy compares a sampler's outputs with its training images and with held-out ones (the val split); "
            f"it needs a model that samples, scored against its train split, and >= 2 held-out images (got {n_held_out})"
        )


def compute(
    metrics: Iterable[str],
    real: FeatureSet,
    fake: FeatureSet,
    name: str,
    protocol: Protocol,
    plan: Plan,
    stage: str | None = None,
    copy_refs: tuple[FeatureSet, FeatureSet] | None = None,
) -> dict[str, float]:
    """``{"fid{n}[name]": ..., "kid{n}[name]": ..., "kid{n}_std[name]": ..., ...}``, keys spelled by
    :meth:`Plan.key` (``stage="val"`` prefixes ``val/``). ``copy`` needs ``copy_refs``: features of
    the training images searched and of the held-out ones."""
    out = {}
    for metric in metrics:
        if metric == "fid":
            values = (M.fid(real.features, fake.features),)
        elif metric == "kid":
            size = protocol.subset_size(min(len(real), len(fake)))
            values = M.kid(real.features, fake.features, protocol.kid_subsets, size, protocol.seed)
        elif metric == "is":
            values = M.inception_score(fake.logits, protocol.is_splits)
        elif metric == "copy":
            train, held_out = copy_refs
            values = M.copying(train.features, held_out.features, fake.features)
        else:
            values = M.precision_recall(real.features, fake.features, protocol.pr_k)
        for stat, value in zip(keys.STATISTICS[metric], values, strict=True):
            out[plan.key(stat, name, stage)] = value
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


SAMPLE_CHUNK = 50  # images per latent draw in sample-quality evaluations and generate.py (see sample_chunks)
GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: multiplying by it spreads consecutive seeds over 32 bits (Knuth)


def chunk_seed(seed: int, j: int) -> int:
    """The generator seed of chunk ``j`` of the samples ``seed`` names. It stays below 2^32 because
    PyTorch's CPU generator keeps only the low 32 bits of a seed (``seed * 2**32 + j`` names the
    same images for every seed there). Seed s starts at s * 2^32 / golden ratio (mod 2^32) and
    counts up by chunk: seeds below 10,000 are >= 287,291 chunks (14 million images) apart, and
    seed 0's chunk j is seed j."""
    return (seed * GOLDEN + j) % 2**32


def shard(n: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """The indices of ``n`` items that rank r of W takes: r, r + W, ..."""
    return list(range(rank, n, world_size))


def real_batches(dataset, n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterable[torch.Tensor]:
    """The first ``n`` images of ``dataset`` in order; rank r takes its :func:`shard` of them."""
    indices = shard(n, rank, world_size)
    for i in range(0, len(indices), batch_size):
        yield torch.stack([image_of(dataset[j]) for j in indices[i : i + batch_size]])


def default_split(model) -> str:
    """Generators are compared with the training images (the distribution they learn); translators
    with the held-out target domain (the CycleGAN papers' test-set protocol)."""
    return "val" if surfaces.can(model, surfaces.Translator) else "train"


@dataclass
class Plan:
    """What one sample-quality evaluation compares: ``n`` images from the model (samples, or
    translations of the first ``n`` of ``source``) against the first ``n`` of ``reference``."""

    reference: object  # dataset of real images
    source: object | None  # translators: the dataset translated; None: the model samples
    n: int
    split: str  # the datamodule's split: train | val
    direction: str | None = None  # translators only
    held_out: object | None = None  # samplers scored against train: the val split (for ``copy``)

    @property
    def n_held_out(self) -> int:
        return min(self.n, len(self.held_out)) if self.held_out is not None else 0

    @property
    def label(self) -> str:
        """The real images in cache keys and reports: ``train``, or ``val-b`` for a translator's target."""
        return self.split if self.direction is None else f"{self.split}-{DIRECTIONS[self.direction][1]}"

    def key(self, stat: str, extractor: str, stage: str | None = "val") -> str:
        return keys.sample_key(stat, self.n, extractor, self.direction, stage)


def plan(model, datamodule, n: int, split: str | None = None, direction: str = "a2b", where: str = "") -> Plan:
    """Decide, before any image is made, what scoring ``model`` compares; ``where`` names the config
    (``callbacks.sample_quality``) in messages. Asking for more images than the real set has scores
    all of it, with a warning naming the count used: a key never claims a count that was not used."""
    translator = surfaces.can(model, surfaces.Translator)
    if not (translator or surfaces.can(model, surfaces.Sampler)):
        raise surfaces.MissingSurface(
            f"sample-quality metrics need a model that samples or translates. {surfaces.describe(model)}"
        )
    split = split or default_split(model)
    dataset = getattr(datamodule, f"{split}_set", None)
    if dataset is None:
        raise UserError(f"{where or 'sample quality'}: the data has no {split!r} split; set {where}.split=train|val")
    source = None
    if translator:
        if direction not in DIRECTIONS:
            raise UserError(f"{where}.direction={direction!r}: use 'a2b' or 'b2a'")
        source_domain, target_domain = DIRECTIONS[direction]
        if not hasattr(dataset, target_domain):
            raise UserError(
                f"{type(model).__name__} is scored on two-domain data (translations of A against B), but "
                f"{type(datamodule).__name__} has one domain; use data=shapes_unpaired, unpaired_folder or a CycleGAN set"
            )
        reference, source = getattr(dataset, target_domain), getattr(dataset, source_domain)
    else:
        reference, direction = dataset, None
    held_out = getattr(datamodule, "val_set", None) if source is None and split == "train" else None
    result = Plan(reference, source, n, split, direction, held_out)
    available = min(len(reference), len(source)) if source is not None else len(reference)
    if available < n and source is None:  # translators: n caps the held-out images, as documented
        warnings.warn(
            f"{where or 'sample quality'}: n={n} asked, but the {result.label} split has {available} real images; "
            f"scoring {available} against {available} (keys say {available})",
            stacklevel=2,
        )
    result.n = min(n, available)
    return result


@dataclass
class Ranks:
    """This process's place in a DDP job (one process: rank 0 of 1) and how to share a value."""

    rank: int = 0
    world: int = 1
    broadcast: Callable = lambda value: value  # rank 0's value on every rank

    @classmethod
    def of(cls, trainer) -> Ranks:
        return cls(trainer.global_rank, trainer.world_size, lambda value: trainer.strategy.broadcast(value, src=0))


def score(
    model,
    plan: Plan,
    extractor: nn.Module,
    metrics: Iterable[str],
    protocol: Protocol,
    *,
    real_name: str,
    image_size: int,
    cache: RealStatsCache | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 250,
    seed: int = 0,
    ranks: Ranks | None = None,
    stage: str | None = None,
) -> tuple[dict[str, float], dict]:
    """Make, extract and score the images ``plan`` describes; returns (values, report).

    Under DDP every rank calls this together: each makes and extracts its share, torchmetrics
    gathers the features, and every rank computes the same numbers. ``real_name`` identifies the
    real images in the feature cache (:func:`describe_dataset`)."""
    metrics = list(metrics)
    ranks = ranks or Ranks()
    check_request(metrics, plan.n, plan.n, extractor, protocol, plan.n_held_out)

    def real_features(dataset, n: int, label: str) -> tuple[FeatureSet, bool]:
        """The first ``n`` images' features, from the cache when it has them (and whether it had)."""
        path = cache.path(real_name, label, image_size, extractor, n) if cache is not None else None
        # Rank 0 decides hit or miss for everyone: ranks that disagreed would wait on each other forever.
        hit = bool(ranks.broadcast(path is not None and path.is_file()))
        if hit:
            return cache.load(path), hit
        batches = real_batches(dataset, n, batch_size, ranks.rank, ranks.world)
        features = extract(extractor, batches, device, shard(n, ranks.rank, ranks.world))
        if len(features) != n:  # a gather that lost a rank's share would bias everything
            raise RuntimeError(f"gathered {len(features)}/{n} real features")
        if path is not None and ranks.rank == 0:
            cache.save(path, features)
        return features, hit

    real, hit = real_features(plan.reference, plan.n, plan.label)
    batches = model_batches(model, plan, batch_size, seed, device, ranks)
    fake = extract(extractor, batches, device, model_positions(plan, ranks))
    if len(fake) != plan.n:
        raise RuntimeError(f"gathered {len(fake)}/{plan.n} fake features")
    report = {"n_real": plan.n, "n_fake": plan.n, "real": f"{real_name} {plan.label}", "real_features_cached": hit}
    copy_refs = None
    if "copy" in metrics:
        n_train = min(len(plan.reference), protocol.copy_train)
        train = real if n_train == plan.n else real_features(plan.reference, n_train, plan.label)[0]
        copy_refs = train, real_features(plan.held_out, plan.n_held_out, "held-out")[0]
        report["copy"] = {"n_train": n_train, "n_held_out": plan.n_held_out}
    values = compute(metrics, real, fake, extractor.name, protocol, plan, stage, copy_refs)
    return values, report


def chunk_spans(n: int, rank: int = 0, world: int = 1) -> list[tuple[int, int, int]]:
    """``(j, first, stop)`` for each chunk of ``n`` samples that rank ``rank`` of ``world`` makes:
    chunk ``j`` holds images ``first`` to ``stop - 1`` and falls to rank ``j mod world``. Chunks of
    :data:`SAMPLE_CHUNK`; every rank needs a share (torchmetrics gathers from all of them), so with
    fewer chunks than processes, chunks of one image."""
    chunk = SAMPLE_CHUNK if math.ceil(n / SAMPLE_CHUNK) >= world else 1
    return [(j, j * chunk, min(n, (j + 1) * chunk)) for j in range(rank, math.ceil(n / chunk), world)]


def sample_chunks(
    model, n: int, seed: int, device: torch.device | str, rank: int = 0, world: int = 1, **options
) -> Iterator[torch.Tensor]:
    """Rank ``rank``'s share of ``n`` samples named by ``seed``, one tensor per :func:`chunk_spans`
    chunk, chunk ``j`` drawn by ``model.sample`` (with ``options``) from a generator seeded with
    :func:`chunk_seed`. One random stream cut into batches would draw other latents for every batch
    size (``torch.randn`` does not give the same numbers when the same count is drawn in other
    pieces); fixed chunks make the images a function of the seed."""
    for j, first, stop in chunk_spans(n, rank, world):
        generator = torch.Generator(device=device).manual_seed(chunk_seed(seed, j))
        yield model.sample(stop - first, generator=generator, **options)


def model_positions(plan: Plan, ranks: Ranks) -> list[int]:
    """Where the images :func:`model_batches` makes on this rank sit among the plan's ``n``."""
    if plan.source is not None:
        return shard(plan.n, ranks.rank, ranks.world)
    return [i for _, first, stop in chunk_spans(plan.n, ranks.rank, ranks.world) for i in range(first, stop)]


def model_batches(
    model, plan: Plan, batch_size: int, seed: int, device: torch.device | str, ranks: Ranks
) -> Iterable[torch.Tensor]:
    """This rank's share of the plan's ``n`` images from the model, about ``batch_size`` at a time:
    translations of the first ``n`` images of the source (the same split between ranks as
    :func:`real_batches`), or this rank's :func:`sample_chunks`. So a seed names the same ``n``
    samples whatever ``batch_size`` and the number of processes, and the training log's
    ``val/fid1000[...]``, ``evaluate.py`` and ``generate.py`` agree on a checkpoint."""
    if plan.source is not None:
        for images in real_batches(plan.source, plan.n, batch_size, ranks.rank, ranks.world):
            yield model.translate(images, plan.direction)
        return
    pending: list[torch.Tensor] = []
    count = 0
    for images in sample_chunks(model, plan.n, seed, device, ranks.rank, ranks.world):
        pending.append(images)
        count += len(images)
        if count >= batch_size:
            yield torch.cat(pending)
            pending, count = [], 0
    if pending:
        yield torch.cat(pending)
