"""Any folder tree of images (png, jpg, webp, ...), e.g. a face crop dump or an ImageFolder tree."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from genlab.data.base import DataError, ImageDataModule, split_indices
from genlab.data.transforms import to_model_input

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def find_images(root: Path, key: str = "data.path") -> list[Path]:
    """Every image file under ``root`` (recursive, sorted); errors name ``key`` and the path."""
    if not root.is_dir():
        raise DataError(f"{key}={root} is not a directory; point {key} at a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{key}={root} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some or fix {key}")
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
        **kwargs,
    ):
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        self.path = Path(path).expanduser()
        find_images(self.path)  # fail at config time, before any model or logger exists
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.skip_bad, self.hflip = skip_bad, hflip

    def build(self):
        files = check_readable(find_images(self.path), self.skip_bad)
        classes = sorted({f.relative_to(self.path).parts[0] for f in files if len(f.relative_to(self.path).parts) > 1})
        index = {c: i for i, c in enumerate(classes)}
        labels = [index.get(f.relative_to(self.path).parts[0], 0) for f in files]
        train, val = split_indices(len(files), self.val_fraction, self.split_seed)

        def subset(idx, train: bool) -> ImageFiles:
            transform = to_model_input(self.image_size, self.channels, hflip=self.hflip and train)
            return ImageFiles([files[i] for i in idx], [labels[i] for i in idx], transform)

        return subset(train.tolist(), True), subset(val.tolist(), False)
