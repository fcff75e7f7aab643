"""Two image domains without pairs, for translation models: folders laid out like the CycleGAN
datasets (``trainA/ trainB/ testA/ testB/``, downloaded on request), and the embedded
circles↔squares set ``shapes_unpaired`` whose test split knows the true translation.

Batches are dicts ``{"a": [N,C,H,W], "b": [N,C,H,W]}`` in [-1, 1]; ``shapes_unpaired``'s validation
batches add ``"b_true"``, the ground-truth B image of each ``"a"``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from genlab.data.base import DataError, ImageDataModule
from genlab.data.embedded import SHAPES, ShapesDataModule, render_shapes, sample_shape_params
from genlab.data.folder import ImageFiles, check_readable, find_images

log = logging.getLogger("genlab")

DOMAIN_FOLDERS = ("trainA", "trainB", "testA", "testB")


class UnpairedDataset(Dataset):
    """Item i is A[i mod |A|] with B[j]: j random on every access (``random_pairing``, training: a new
    pairing each epoch) or i mod |B| (evaluation: fixed). Length max(|A|, |B|), as the reference."""

    def __init__(self, a: Dataset, b: Dataset, random_pairing: bool, b_true: torch.Tensor | None = None):
        if b_true is not None and len(b_true) != len(a):
            raise ValueError(f"b_true has {len(b_true)} images for {len(a)} A images")
        self.a, self.b, self.random_pairing, self.b_true = a, b, random_pairing, b_true

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(torch.randint(len(self.b), ())) if self.random_pairing else i % len(self.b)
        item = {"a": _image(self.a[i % len(self.a)]), "b": _image(self.b[j])}
        if self.b_true is not None:
            item["b_true"] = self.b_true[i % len(self.a)]
        return item


def _image(item) -> torch.Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item  # ImageFiles items carry a label


def unpaired_transform(load_size: int, crop_size: int, channels: int, train: bool) -> v2.Compose:
    """The reference preprocessing: training resizes to load_size² (bicubic), crops crop_size² at
    random and flips at random; evaluation resizes to crop_size² (no crop, no flip)."""
    steps: list = [v2.Grayscale(1) if channels == 1 else v2.RGB()]
    if train:
        steps += [
            v2.Resize((load_size, load_size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.RandomCrop(crop_size),
            v2.RandomHorizontalFlip(),
        ]
    else:
        steps += [v2.Resize((crop_size, crop_size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True)]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    return v2.Compose(steps)


def download_and_unzip(url: str, path: Path) -> None:
    """Fetch ``url`` (a zip holding ``<name>/trainA/...``) and unpack it so that ``path/trainA`` exists.

    Any URL urllib opens works (http, https, file). The zip is written next to ``path`` under a
    temporary name and removed afterwards; members that would land outside ``path`` are refused.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}-") as tmp:
        archive = Path(tmp) / "download.zip"
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (unpacked / member).resolve().is_relative_to(unpacked.resolve()):
                    raise DataError(f"{url}: refusing zip member {member!r} outside the target folder")
            zf.extractall(unpacked)
        roots = [p.parent for p in unpacked.rglob("trainA") if p.is_dir()]
        if len(roots) != 1:
            raise DataError(f"{url} does not hold one trainA/ folder; found {len(roots)}")
        if path.exists():
            shutil.rmtree(path)
        shutil.move(str(roots[0]), str(path))


class UnpairedFolderDataModule(ImageDataModule):
    """``path/{trainA,trainB,testA,testB}`` image folders; the test folders are the validation set."""

    batches = "domains"  # {"a": ..., "b": ...}

    def __init__(
        self,
        path: str,
        image_size: int = 256,  # crop size (the reference's crop_size): what the model sees
        load_size: int = 286,  # training images are resized to load_size² before the random crop
        channels: int = 3,
        download: bool = False,  # fetch ``url`` into ``path`` when the folders are missing
        url: str | None = None,  # a zip of <name>/trainA/... (the standard sets' canonical location)
        skip_bad: bool = False,  # warn and skip unreadable files instead of failing
        batch_size: int = 1,
        **kwargs,
    ):
        super().__init__(image_size=image_size, channels=channels, batch_size=batch_size, **kwargs)
        if load_size < image_size:
            raise ValueError(f"data.load_size={load_size} must be >= data.image_size={image_size} (the crop)")
        self.path = Path(path).expanduser()
        self.load_size, self.download, self.url, self.skip_bad = load_size, download, url, skip_bad
        if not (self.download and self.url) and self.missing():
            raise DataError(self.how_to_provide())  # fail at config time, before any model exists

    def missing(self) -> list[str]:
        return [d for d in DOMAIN_FOLDERS if not (self.path / d).is_dir()]

    def how_to_provide(self, reason: str = "") -> str:
        where = f"{self.path.resolve()}/{{{','.join(DOMAIN_FOLDERS)}}}"
        fetch = (
            f"download {self.url}, unzip it and move the unzipped folder to {self.path.resolve()}, "
            f"or run with data.download=true where {self.url} is reachable"
            if self.url
            else "put your images there (or point data.path at such a folder)"
        )
        return (
            f"unpaired data at data.path={self.path} is missing {', '.join(self.missing())}{reason}.\n"
            f"Expected image folders {where}; {fetch}."
        )

    def prepare_data(self) -> None:  # one process per node: the only place that downloads
        if self.missing() and self.download and self.url:
            try:
                download_and_unzip(self.url, self.path)
            except (OSError, zipfile.BadZipFile) as err:  # URLError, timeouts, disk errors are OSErrors
                raise DataError(
                    self.how_to_provide(f" and could not be downloaded ({type(err).__name__}: {err})")
                ) from err
        if self.missing():
            raise DataError(self.how_to_provide())

    def domain_files(self, folder: str) -> list[Path]:
        """The image files of ``trainA`` / ``trainB`` / ``testA`` / ``testB`` (e.g. FID's reference set)."""
        return check_readable(find_images(self.path / folder, key=f"data.path/{folder}"), self.skip_bad)

    def build(self):
        if self.missing():
            raise DataError(self.how_to_provide())

        def domain(folder: str, train: bool) -> ImageFiles:
            files = self.domain_files(folder)
            transform = unpaired_transform(self.load_size, self.image_size, self.channels, train)
            return ImageFiles(files, [0] * len(files), transform)

        train = UnpairedDataset(domain("trainA", True), domain("trainB", True), random_pairing=True)
        val = UnpairedDataset(domain("testA", False), domain("testB", False), random_pairing=False)
        return train, val


class ShapesUnpairedDataModule(ShapesDataModule):
    """Domain A: filled circles; domain B: filled squares; colours, background, size and position
    drawn from the same distribution (:func:`genlab.data.embedded.sample_shape_params`). Training
    draws A and B independently. The validation split renders, for every A circle, the square with
    the same parameters as ``b_true``: the exact answer of A→B, so PSNR/SSIM measure translation."""

    batches = "domains"  # {"a": ..., "b": ...}
    name = "shapes_unpaired"

    def __init__(self, n_train: int = 2000, n_val: int = 200, **kwargs):
        super().__init__(n_train=n_train, n_val=n_val, **kwargs)

    # Seed offsets of the four independent streams: the val set does not change when n_train does.
    STREAMS = {"train_a": 0, "train_b": 1, "val_a": 1_000_003, "val_b": 1_000_004}

    def scenes(self, stream: str) -> dict[str, np.ndarray]:
        """Colours, radius and centre (pixels) of every image of ``stream`` (a key of :data:`STREAMS`);
        ``scenes("val_a")`` is the geometry of the validation circles and of their true squares."""
        n = self.n_train if stream.startswith("train") else self.n_val
        return sample_shape_params(np.random.default_rng(self.seed + self.STREAMS[stream]), n, self.image_size)

    def render(self, kind: str, params: dict[str, np.ndarray]) -> torch.Tensor:
        return render_shapes(np.full(len(params["fg"]), SHAPES.index(kind)), params, self.image_size)

    def build(self):
        a = self.render("circle", self.scenes("train_a"))
        b = self.render("square", self.scenes("train_b"))
        val_scenes = self.scenes("val_a")
        val_a, val_b = self.render("circle", val_scenes), self.render("square", self.scenes("val_b"))
        train = UnpairedDataset(a, b, random_pairing=True)
        val = UnpairedDataset(val_a, val_b, random_pairing=False, b_true=self.render("square", val_scenes))
        return train, val
