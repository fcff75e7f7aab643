"""Real photographs that ship inside scikit-image and scikit-learn, cut into crops: offline data for
restoration (``data=photos``), where digits and shapes are too simple to tell methods apart.

Train and validation are split by *photograph*, so a validation crop shows a scene the model never
saw. Training crops are drawn afresh on every access (``crops_per_epoch`` per epoch, positions from
torch's default RNG, which ``seed_everything(workers=True)`` seeds); validation crops sit at
positions fixed by ``seed``, spread evenly over the validation photographs.

Only pictures bundled in the wheels are used (some ``skimage.data`` images need a pooch download);
:data:`PHOTOS` lists them.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from genlab.data.base import DataError, ImageDataModule

# name -> (loader, what it shows). Synthetic images (logo, colorwheel, checkerboard), microscopy and
# medical scans, the motion-blurred clock and scanned text are left out; `cat` is `chelsea` again.
SKIMAGE_PHOTOS = {
    "astronaut": "Eileen Collins, RGB 512x512",
    "camera": "the cameraman, grey 512x512 (Set12's 'C.man')",
    "coffee": "a coffee cup, RGB 400x600",
    "chelsea": "a cat, RGB 300x451",
    "rocket": "a rocket launch, RGB 427x640",
    "coins": "Greek coins, grey 303x384",
    "moon": "the lunar surface, grey 512x512",
    "brick": "a brick wall, grey 512x512",
    "grass": "grass, grey 512x512",
    "gravel": "gravel, grey 512x512",
}
SKLEARN_PHOTOS = {"china": "a Chinese temple, RGB 427x640", "flower": "a flower, RGB 427x640"}
PHOTOS = {**SKIMAGE_PHOTOS, **SKLEARN_PHOTOS}


def load_photo(name: str, channels: int, zoom: float = 1.0) -> torch.Tensor:
    """Photograph ``name`` as [channels, H, W] in [-1, 1]; grey photographs are repeated to RGB and
    RGB ones converted to luma (ITU-R 601, PIL's ``L``) as ``channels`` asks; ``zoom`` resizes it
    first (antialiased bicubic)."""
    if name in SKIMAGE_PHOTOS:
        import skimage.data

        array = getattr(skimage.data, name)()
    elif name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    else:
        raise DataError(f"unknown photograph {name!r}; data=photos offers {', '.join(PHOTOS)}")
    image = Image.fromarray(array).convert("L" if channels == 1 else "RGB")
    if zoom != 1.0:
        image = image.resize((round(image.width * zoom), round(image.height * zoom)), Image.BICUBIC)
    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1)
    return tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def augment(crop: torch.Tensor) -> torch.Tensor:
    """One of the 8 flips/rotations by 90° (DnCNN's augmentation), from torch's default RNG."""
    k, flip = torch.randint(0, 4, ()).item(), torch.randint(0, 2, ()).item()
    crop = torch.rot90(crop, k, dims=(-2, -1))
    return crop.flip(-1) if flip else crop


class RandomCrops(Dataset):
    """``length`` crops per epoch: item i ignores i and cuts a fresh crop from a photograph picked
    with probability proportional to its area. Items are (crop, photograph index)."""

    def __init__(self, photos: list[torch.Tensor], size: int, length: int, augment: bool):
        self.photos, self.size, self.length, self.augment = photos, size, length, augment
        areas = torch.tensor([float(p.shape[-2] * p.shape[-1]) for p in photos])
        self.weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        k = int(torch.multinomial(self.weights, 1))
        photo = self.photos[k]
        top = torch.randint(0, photo.shape[-2] - self.size + 1, ()).item()
        left = torch.randint(0, photo.shape[-1] - self.size + 1, ()).item()
        crop = photo[:, top : top + self.size, left : left + self.size]
        return (augment(crop) if self.augment else crop.clone()), k


class FixedCrops(Dataset):
    """``n`` crops at positions drawn once from ``seed``; crop i comes from photograph i mod P."""

    def __init__(self, photos: list[torch.Tensor], size: int, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.photos, self.size, self.positions = photos, size, []
        for i in range(n):
            k = i % len(photos)
            h, w = photos[k].shape[-2:]
            top = torch.randint(0, h - size + 1, (), generator=generator).item()
            left = torch.randint(0, w - size + 1, (), generator=generator).item()
            self.positions.append((k, top, left))

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        k, top, left = self.positions[i]
        return self.photos[k][:, top : top + self.size, left : left + self.size].clone(), k


class PhotosDataModule(ImageDataModule):
    """Crops of real photographs, grey (``channels=1``) or RGB, split by photograph."""

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        train_photos: list[str] | None = None,  # None = every photograph not in val_photos
        val_photos: list[str] = ("camera", "chelsea", "flower"),
        crops_per_epoch: int = 2000,  # training set length: fresh random crops each epoch
        n_val: int = 96,  # validation crops, spread evenly over val_photos
        seed: int = 0,  # validation crop positions
        zoom: float = 1.0,  # resize the photographs first: 0.5 = twice the scene in a crop
        augment: bool = True,  # random flips and 90° rotations of training crops
        **kwargs,
    ):
        if channels not in (1, 3):
            raise ValueError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels}")
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        val_photos = list(val_photos)
        train_photos = [p for p in PHOTOS if p not in val_photos] if train_photos is None else list(train_photos)
        for key, names in (("data.train_photos", train_photos), ("data.val_photos", val_photos)):
            unknown = [n for n in names if n not in PHOTOS]
            if unknown or not names:
                raise DataError(f"{key}={names}: give one or more of {', '.join(PHOTOS)} (unknown: {unknown})")
        shared = sorted(set(train_photos) & set(val_photos))
        if shared:
            raise DataError(f"{shared} are in both data.train_photos and data.val_photos; the split is by photograph")
        self.train_photos, self.val_photos = train_photos, val_photos
        self.crops_per_epoch, self.n_val, self.seed = crops_per_epoch, n_val, seed
        self.zoom, self.augment = zoom, augment

    def _load(self, names: list[str]) -> list[torch.Tensor]:
        photos = [load_photo(n, self.channels, self.zoom) for n in names]
        for name, photo in zip(names, photos):
            if min(photo.shape[-2:]) < self.image_size:
                raise DataError(
                    f"photograph {name} is {photo.shape[-2]}x{photo.shape[-1]} px (data.zoom={self.zoom}), smaller "
                    f"than data.image_size={self.image_size}; lower data.image_size, raise data.zoom or drop {name}"
                )
        return photos

    def build(self):
        train = RandomCrops(self._load(self.train_photos), self.image_size, self.crops_per_epoch, self.augment)
        val = FixedCrops(self._load(self.val_photos), self.image_size, self.n_val, self.seed)
        return train, val
