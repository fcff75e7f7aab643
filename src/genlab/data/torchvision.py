"""Standard datasets through torchvision: MNIST, Fashion-MNIST, CIFAR-10, ...

torchvision creates its folders before it downloads, so a fetch that fails offline would leave
empty ``data/mnist/MNIST/raw`` trees (or half-written archives) behind; :func:`undo_on_failure`
removes what the attempt created and nothing that was there before.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from hydra.utils import get_class

from genlab.data.base import DataError, ImageDataModule
from genlab.data.transforms import to_model_input


@contextlib.contextmanager
def undo_on_failure(root: Path) -> Iterator[None]:
    """On an exception, delete every file and folder under ``root`` (and ``root``'s missing parents)
    that did not exist when the block began; the user's own files stay."""
    top = root  # the outermost folder the block may create
    while not top.parent.exists():
        top = top.parent
    before = set(root.rglob("*")) if root.exists() else None
    try:
        yield
    except BaseException:
        if before is None:
            shutil.rmtree(top, ignore_errors=True)
        else:
            for path in sorted(set(root.rglob("*")) - before, reverse=True):  # children before parents
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset class with a ``train=`` flag; its test split is our validation set.

    ``layout`` tells a user without a network which files to put where (see conf/data/*.yaml).
    """

    def __init__(
        self,
        dataset: str,  # dotted class path, e.g. torchvision.datasets.MNIST
        root: str,
        download: bool = True,
        layout: str = "",
        image_size: int = 32,
        channels: int = 3,
        hflip: bool = False,
        **kwargs,
    ):
        super().__init__(image_size=image_size, channels=channels, **kwargs)
        self.dataset_class = get_class(dataset)
        self.root = Path(root).expanduser()  # torchvision expands ~ too; our messages and clean-up must agree
        self.download = download
        self.layout = layout
        self.hflip = hflip

    def _open(self, train: bool, download: bool):
        transform = to_model_input(self.image_size, self.channels, hflip=self.hflip and train)
        name = self.dataset_class.__name__
        try:
            return self.dataset_class(str(self.root), train=train, download=download, transform=transform)
        except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ... here
            how = "could not be downloaded" if download else "is missing or unreadable (data.download=false)"
            raise DataError(
                f"{name} {how} ({type(err).__name__}: {err}).\n"
                f"Put the dataset's files under {self.root.resolve()}"
                + (f", laid out as:\n  {self.layout}\n" if self.layout else "\n")
                + "or run where the network is reachable with data.download=true."
            ) from err

    def prepare_data(self) -> None:  # rank 0 only: the one place that may download
        with undo_on_failure(self.root):
            self._open(train=True, download=self.download)
            self._open(train=False, download=self.download)

    def build(self):
        return self._open(train=True, download=False), self._open(train=False, download=False)
