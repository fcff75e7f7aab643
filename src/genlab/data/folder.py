"""Any folder tree of images (png, jpg, webp, ...), e.g. a face crop dump or an ImageFolder tree."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from genlab.data.base import DataError, ImageDataModule, split_indices
from genlab.data.transforms import to_model_input

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def find_images(root: Path, key: str = "data.path", source: str | None = None) -> list[Path]:
    """Every image file under ``root`` (recursive, sorted); errors name ``key``, the path and, when
    given, where the images come from (``source``)."""
    get = f"; get the images from {source}" if source else ""
    if not root.is_dir():
        raise DataError(f"{key}={root} is not a directory; point {key} at a folder of images{get}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{key}={root} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some or fix {key}{get}")
    return files


def check_readable(files: list[Path], skip_bad: bool) -> list[Path]:
    """Drop (with a warning) or reject files PIL cannot parse, before training starts."""
    good = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.verify()
            good.append(path)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
            if not skip_bad:
                raise DataError(
                    f"cannot read image {path} ({err}); delete or replace it, or set data.skip_bad=true to skip bad files"
                ) from err
            warnings.warn(f"skipping unreadable image {path} ({err})", stacklevel=2)
    return good


class ImageFiles(Dataset):
    """Loads ``files`` lazily; ``labels`` index the top-level sub-folder (0 for a flat folder)."""

    def __init__(self, files: list[Path], labels: list[int], transform):
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            with Image.open(self.files[i]) as im:
                image = self.transform(im)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"cannot decode image {self.files[i]} ({err}); replace or delete it") from err
        return image, self.labels[i]


class FolderDataModule(ImageDataModule):
    def __init__(
        self,
        path: str,
        image_size: int = 64,
        channels: int = 3,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        skip_bad: bool = False,  # warn and skip unreadable files instead of failing
        hflip: bool = False,  # random horizontal flips for training
        random_crop: bool = False,  # train on random image_size crops at full resolution (val: centre crops)
        repeat: int = 1,  # training items per image per epoch (fresh crops each time with random_crop)
        source: str | None = None,  # where the images come from, for the error when data.path is empty
        val_path: str | None = None,  # a test set (e.g. BSD68), validated on whole; None = val_fraction of path
        **kwargs,
    ):
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        self.path = Path(path).expanduser()
        self.val_path = Path(val_path).expanduser() if val_path else None
        self.source = source
        find_images(self.path, source=source)  # fail at config time, before any model or logger exists
        if self.val_path is not None:
            find_images(self.val_path, key="data.val_path", source=source)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"data.repeat={repeat!r} is not valid: training items per image, an integer >= 1")
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.skip_bad, self.hflip, self.random_crop, self.repeat = skip_bad, hflip, random_crop, repeat

    def build(self):
        files = check_readable(find_images(self.path, source=self.source), self.skip_bad)
        classes = sorted({f.relative_to(self.path).parts[0] for f in files if len(f.relative_to(self.path).parts) > 1})
        index = {c: i for i, c in enumerate(classes)}
        labels = [index.get(f.relative_to(self.path).parts[0], 0) for f in files]
        train, val = split_indices(len(files), self.val_fraction, self.split_seed)

        def subset(idx, train: bool) -> ImageFiles:
            # With random_crop, validation takes the centre crop at the same full resolution training sees.
            transform = to_model_input(
                self.image_size,
                self.channels,
                hflip=self.hflip and train,
                random_crop=self.random_crop and train,
                resize=not self.random_crop,
            )
            return ImageFiles([files[i] for i in idx], [labels[i] for i in idx], transform)

        if self.val_path is None:
            return subset(train.tolist() * self.repeat, True), subset(val.tolist(), False)
        return subset(list(range(len(files))) * self.repeat, True), self.whole_images()

    def whole_images(self) -> ImageFiles:
        """The ``val_path`` images at their own size (cropped to a multiple of the degradation's scale,
        as super-resolution benchmarks do); differently sized images need ``data.val_batch_size=1``."""
        files = check_readable(find_images(self.val_path, key="data.val_path", source=self.source), self.skip_bad)
        if self.val_batch_size > 1 and len({image_size_of(f) for f in files}) > 1:
            raise DataError(
                f"data.val_path={self.val_path} holds images of different sizes, which cannot share a batch; "
                "set data.val_batch_size=1"
            )
        scale = self.degradation.scale if self.degradation is not None else 1
        transform = v2.Compose([to_model_input(None, self.channels), CropToMultiple(scale)])
        return ImageFiles(files, [0] * len(files), transform)


def image_size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


class CropToMultiple:
    """[C, H, W] cropped at the bottom and right to multiples of ``multiple`` (the benchmarks' "modcrop")."""

    def __init__(self, multiple: int):
        self.multiple = multiple

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        return image[..., : h - h % self.multiple, : w - w % self.multiple]
